/* What the fake device shim knows of each device, kept in memory between changes (see
 * fakenvme.c for the files and $FAKENVME_DIR/generation). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fakenvme.h"

#define STATE_SIZE (256 * sizeof(uint32_t))

int (*real_openat)(int, const char *, int, ...);
int (*real_close)(int);
int (*real_ioctl)(int, unsigned long, ...);
static const volatile uint64_t *generation; /* $FAKENVME_DIR/generation, or NULL */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t devices_lock = PTHREAD_MUTEX_INITIALIZER; /* devices, the map */
static struct device *devices;
static char *map_text;       /* $FAKENVME_DIR/devices as last read */
static uint64_t map_generation;
static int map_fresh;

/* A whole small file into a malloc'd buffer (NUL-terminated), or NULL; *size its length. */
char *slurp(const char *path, size_t *size)
{
    int fd = real_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    struct stat st;
    char *buf = NULL;
    ssize_t got = 0, n;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) != NULL) {
        while (got < st.st_size && (n = read(fd, buf + got, (size_t)(st.st_size - got))) > 0)
            got += n;
        buf[got] = '\0';
        if (size)
            *size = (size_t)got;
    }
    real_close(fd);
    return buf;
}

static void *map_file(const char *path, size_t size, int writable)
{
    int fd = real_openat(AT_FDCWD, path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
    struct stat st;
    void *addr = MAP_FAILED;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size >= size)
        addr = mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                    fd, 0);
    real_close(fd);
    return addr == MAP_FAILED ? NULL : addr;
}

static void lock_devices(void) { pthread_mutex_lock(&devices_lock); }
static void unlock_devices(void) { pthread_mutex_unlock(&devices_lock); }

static void setup(void)
{
    const char *dir = getenv("FAKENVME_DIR");
    char path[PATH_LEN];

    real_openat = dlsym(RTLD_NEXT, "openat");
    real_close = dlsym(RTLD_NEXT, "close");
    real_ioctl = dlsym(RTLD_NEXT, "ioctl");
    if (dir) {
        snprintf(path, sizeof(path), "%s/generation", dir);
        generation = map_file(path, sizeof(uint64_t), 0);
    }
    pthread_atfork(lock_devices, unlock_devices, unlock_devices);
}

void resolve(void)
{
    pthread_once(&once, setup);
}

/* The shared generation into *now; 0 when there is none (then nothing is cached). */
static int current_generation(uint64_t *now)
{
    if (!generation)
        return 0;
    *now = __atomic_load_n(generation, __ATOMIC_ACQUIRE);
    return 1;
}

/* The DEVDIR configured for path, copied into out, or NULL. With devices_lock held. */
static const char *lookup_locked(const char *path, char *out, size_t size)
{
    const char *dir = getenv("FAKENVME_DIR");
    char map[PATH_LEN];
    uint64_t now = 0;
    size_t len = strlen(path);
    const char *line, *next;

    if (!dir)
        return NULL;
    if (!current_generation(&now) || !map_fresh || now != map_generation) {
        free(map_text);
        snprintf(map, sizeof(map), "%s/devices", dir);
        map_text = slurp(map, NULL);
        map_generation = now;
        map_fresh = 1;
    }
    for (line = map_text; line && *line; line = next) {
        size_t end = strcspn(line, "\n"), dir_len = end - len - 1;

        next = line + end + (line[end] != '\0');
        if (end <= len + 1 || line[len] != ' ' || strncmp(line, path, len) != 0)
            continue;
        if (dir_len >= size)
            return NULL;
        memcpy(out, line + len + 1, dir_len);
        out[dir_len] = '\0';
        return out;
    }
    return NULL;
}

/* The device of DEVDIR, made on first use; with devices_lock held. */
static struct device *device_locked(const char *devdir)
{
    struct device *d;
    char path[PATH_LEN];

    for (d = devices; d; d = d->next)
        if (strcmp(d->devdir, devdir) == 0)
            return d;
    d = calloc(1, sizeof(*d) + strlen(devdir) + 1);
    if (!d)
        return NULL;
    strcpy(d->devdir, devdir);
    pthread_mutex_init(&d->lock, NULL);
    snprintf(path, sizeof(path), "%s/state", devdir);
    d->positions = map_file(path, STATE_SIZE, 1);
    if (!d->positions)
        d->positions = calloc(256, sizeof(uint32_t)); /* read-only fixtures: this process's */
    if (!d->positions) {
        free(d);
        return NULL;
    }
    d->next = devices;
    devices = d;
    return d;
}

struct device *lookup(const char *path)
{
    char devdir[PATH_LEN - 256];
    struct device *d = NULL;

    if (!path)
        return NULL;
    lock_devices();
    if (lookup_locked(path, devdir, sizeof(devdir)))
        d = device_locked(devdir);
    unlock_devices();
    return d;
}

static int errno_named(const char *name)
{
    static const struct { const char *n; int e; } names[] = {
        {"EACCES", EACCES}, {"EPERM", EPERM}, {"EIO", EIO}, {"ENODEV", ENODEV},
        {"ENXIO", ENXIO}, {"ENOENT", ENOENT}, {"EINTR", EINTR}, {"ETIMEDOUT", ETIMEDOUT},
        {"ENOTTY", ENOTTY}, {"EINVAL", EINVAL},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i].n, name) == 0)
            return names[i].e;
    return EIO;
}

static struct control read_control(const char *devdir)
{
    struct control c = {0, 0, 0, 0, 0};
    char path[PATH_LEN], *text, *line, *next;

    snprintf(path, sizeof(path), "%s/control", devdir);
    text = slurp(path, NULL);
    for (line = text; line && *line; line = next) {
        next = line + strcspn(line, "\n");
        if (*next)
            *next++ = '\0';
        line[strcspn(line, "\r")] = '\0';
        if (strcmp(line, "gone") == 0)
            c.gone = 1;
        else if (strncmp(line, "errno=", 6) == 0)
            c.err = errno_named(line + 6);
        else if (strncmp(line, "hang-identify=", 14) == 0)
            c.hang_identify_ms = atoi(line + 14);
        else if (strncmp(line, "hang=", 5) == 0)
            c.hang_ms = atoi(line + 5);
        else if (strncmp(line, "status=", 7) == 0)
            c.status = (int)strtol(line + 7, NULL, 16);
    }
    free(text);
    return c;
}

/* With d->lock held: what is cached is what the files say now (re-read when the shared
 * generation moved, or always without one). */
static void refresh_locked(struct device *d)
{
    char path[PATH_LEN];
    uint64_t now = 0;

    if (current_generation(&now) && d->fresh && now == d->generation)
        return;
    d->control = read_control(d->devdir);
    snprintf(path, sizeof(path), "%s/commands.off", d->devdir);
    d->log_commands = access(path, F_OK) != 0;
    for (struct log *l = d->logs; l; l = l->next) {
        l->count = -1; /* counted again at its next read */
        l->index = -1;
    }
    d->generation = now;
    d->fresh = 1;
}

struct control device_control(struct device *d, int *log_commands)
{
    struct control c;

    pthread_mutex_lock(&d->lock);
    refresh_locked(d);
    c = d->control;
    if (log_commands)
        *log_commands = d->log_commands;
    pthread_mutex_unlock(&d->lock);
    return c;
}

/* Copies len bytes at offset of a page into addr; an NVMe status when it cannot. */
static int copy_page(const uint8_t *data, size_t size, uint64_t offset, uint8_t *addr,
                     uint32_t len)
{
    if (!data)
        return 0x109; /* Invalid Log Page */
    if (offset >= size)
        return 0x2; /* Invalid Field in Command: offset past the page */
    memset(addr, 0, len);
    memcpy(addr, data + offset, size - offset < len ? size - offset : len);
    return 0;
}

int copy_from(const char *devdir, const char *name, uint64_t offset, uint8_t *addr,
                     uint32_t len)
{
    char path[PATH_LEN];
    size_t size = 0;
    char *data;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", devdir, name);
    data = slurp(path, &size);
    rc = copy_page((uint8_t *)data, size, offset, addr, len);
    free(data);
    return rc;
}

/* With d->lock held: the log's cache entry, its page count known. */
static struct log *log_locked(struct device *d, unsigned log_id)
{
    struct log *l;
    char path[PATH_LEN], *text;

    for (l = d->logs; l && l->id != log_id; l = l->next)
        ;
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l)
            return NULL;
        l->id = log_id;
        l->count = -1;
        l->next = d->logs;
        d->logs = l;
    }
    if (l->count < 0) {
        snprintf(path, sizeof(path), "%s/log-%02x.seq", d->devdir, log_id);
        text = slurp(path, NULL);
        l->count = text ? atoi(text) : 0;
        if (l->count < 0)
            l->count = 0;
        free(text);
        l->index = -1;
    }
    return l;
}

/* With d->lock held: l->data holds page index (of the sequence, or log-XX.bin for -2). */
static void load_locked(struct device *d, struct log *l, int index)
{
    char path[PATH_LEN];

    if (index < 0)
        snprintf(path, sizeof(path), "%s/log-%02x.bin", d->devdir, l->id);
    else
        snprintf(path, sizeof(path), "%s/log-%02x.%d.bin", d->devdir, l->id, index);
    free(l->data);
    l->size = 0;
    l->data = (uint8_t *)slurp(path, &l->size);
    l->index = index;
}

/* log-XX.bin, or the current page of a sequence (moving on after the last chunk). */
int log_page(struct device *d, unsigned log_id, int last_chunk, uint64_t offset,
                    uint8_t *addr, uint32_t len)
{
    uint32_t *position = &d->positions[log_id & 0xff], pos;
    struct log *l;
    int rc;

    pthread_mutex_lock(&d->lock);
    refresh_locked(d);
    l = log_locked(d, log_id);
    if (!l) {
        pthread_mutex_unlock(&d->lock);
        return 0x6; /* Internal Error */
    }
    if (l->count == 0) {
        if (l->index != -2)
            load_locked(d, l, -2);
        rc = copy_page(l->data, l->size, offset, addr, len);
        pthread_mutex_unlock(&d->lock);
        return rc;
    }
    pos = __atomic_load_n(position, __ATOMIC_ACQUIRE);
    if (pos >= (uint32_t)l->count)
        pos = (uint32_t)l->count - 1;
    if (l->index != (int)pos)
        load_locked(d, l, (int)pos);
    rc = copy_page(l->data, l->size, offset, addr, len);
    /* Another process may have moved it. The page read, its copy goes: the next is another
     * page, and one per device held to the end would be 8 KiB of the reader's RSS each. */
    if (last_chunk && pos + 1 < (uint32_t)l->count &&
        __atomic_compare_exchange_n(position, &pos, pos + 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        free(l->data);
        l->data = NULL;
        l->index = -1;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}
