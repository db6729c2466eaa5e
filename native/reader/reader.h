/*
 * The privileged side of nitrometer without an interpreter: the keeper (keeper.c) and the
 * reader it forks (reader.c). The wire formats and limits are those of
 * nitrometer/privsep.py, which the agent's side (nitrometer/broker.py) speaks.
 */
#ifndef NITROMETER_READER_H
#define NITROMETER_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* request: <IBBII id, opcode, log id, nsid, length, then the path; reply: <IBi id, kind,
 * code, then the data; keeper <-> agent: <BI kind, reader pid, then text */
#define REQUEST_SIZE 14
#define REPLY_SIZE 9
#define KEEPER_MESSAGE_SIZE 5
#define MAX_KEEPER_MESSAGE 1024
#define MAX_ENDED_TEXT 900
enum { REPLY_OK = 0, REPLY_ERRNO = 1, REPLY_NVME_STATUS = 2 };
enum { KEEPER_NEWS = 1, KEEPER_REPLACE = 2 };

#define OP_GET_LOG_PAGE 0x02
#define OP_IDENTIFY 0x06
#define LOG_ID 0xD0
#define MAX_PAGE 8192
#define MAX_IN_FLIGHT 64 /* requests queued or running; past it a request fails EBUSY */
#define MAX_OPEN 256     /* devices with a worker (and an open descriptor) at once */
#define CONTROLLER_NSID 0xFFFFFFFFu

static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#define REFUSED (-1000) /* not an errno: a request outside what is allowed (EPERM) */

/* node.c */
void refused(const char *format, ...) __attribute__((format(printf, 1, 2)));
int node_kind(const char *name);
int check_path(const char *path, const char *root, char *real);
int open_node(const char *path);
int namespace_id(int fd, const char *path, uint32_t *nsid);

/* Serves the agent on sock until it closes; never returns. */
void reader_main(int sock, const char *dev_root, pid_t keeper) __attribute__((noreturn));

#endif
