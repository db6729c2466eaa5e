/* The fake device's state, shared by the shim's two halves (fakenvme.c: the calls it
 * takes over; fakestate.c: what it knows of each device). Nothing here is exported: the
 * shim's names must not take the place of a program's own. */
#ifndef FAKENVME_H
#define FAKENVME_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define PATH_LEN 1024 /* short: a reading thread's stack is its reader's RSS */

#pragma GCC visibility push(hidden)

/* One log id of a device: its page count and the page last read. */
struct log {
    struct log *next;
    unsigned id;
    int count;        /* pages in its sequence; 0: the one page log-XX.bin; -1: unknown */
    int index;        /* which page data holds: -2 log-XX.bin, -1 none */
    uint8_t *data;    /* NULL when the file is missing */
    size_t size;
};

struct control {
    int gone, err, hang_ms, status, hang_identify_ms;
};

/* What the shim knows of one DEVDIR; never freed, so close() and fork need no lock. */
struct device {
    struct device *next;
    pthread_mutex_t lock;
    uint64_t generation; /* of what is cached; stale when the shared one moved */
    int fresh;
    struct control control;
    int log_commands;
    uint32_t *positions;  /* DEVDIR/state, or own memory when it cannot be mapped */
    struct log *logs;
    char devdir[];
};

extern int (*real_openat)(int, const char *, int, ...);
extern int (*real_close)(int);
extern int (*real_ioctl)(int, unsigned long, ...);

/* Resolves the real calls and maps the generation counter, once. */
void resolve(void);
/* A whole small file into a malloc'd buffer (NUL-terminated), or NULL; *size its length. */
char *slurp(const char *path, size_t *size);
/* The fake device configured for path, or NULL. */
struct device *lookup(const char *path);
/* The device's control as its files say now; *log_commands whether commands are logged. */
struct control device_control(struct device *d, int *log_commands);
/* Copies len bytes at offset of DEVDIR/name into addr; an NVMe status when it cannot. */
int copy_from(const char *devdir, const char *name, uint64_t offset, uint8_t *addr,
              uint32_t len);
/* Answers a Get Log Page chunk from log-XX.bin or the current page of a sequence. */
int log_page(struct device *d, unsigned log_id, int last_chunk, uint64_t offset,
             uint8_t *addr, uint32_t len);

#pragma GCC visibility pop

#endif
