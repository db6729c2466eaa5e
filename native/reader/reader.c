/*
 * The reader: Get Log Page 0xD0 and Identify Controller on NVMe nodes under the device
 * root, for the agent, over one SOCK_SEQPACKET socket.
 *
 * The main thread receives and checks requests; each device node has one worker thread
 * (created on first use, with a small stack) that runs its requests in turn, so a device
 * hung in its ioctl holds up only its own requests and replies go out as they are ready,
 * matched by id. Page reads and Identify of one node have a worker each: a controller slow
 * to identify is still polled. A page worker keeps its node open between reads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "reader.h" /* first: the core's header includes nothing */
#include "nitrometer_native.h"

#define WORKER_STACK (128 * 1024) /* a page, and room for libc (only what is used stays) */

struct request {
    uint32_t id, nsid, length;
};

struct worker {
    struct worker *next; /* in the table, most recently used first */
    pthread_mutex_t mu; /* its queue, busy and retired: only it and the main thread meet */
    /* Its queue, in place: at most MAX_IN_FLIGHT requests are queued in all, so a
     * request costs no allocation (nor the arena lock every thread would share). */
    struct request queue[MAX_IN_FLIGHT];
    unsigned first, queued;
    /* A futex, not a condition variable: glibc's relocks the mutex as contended after a
     * wait, so every request cost one more futex call at the unlock. */
    uint32_t wake_seq;   /* moved on each wake-up */
    int sleeping;        /* waiting on wake_seq: a wake-up needs the system call */
    int busy;        /* running a request */
    int retired;     /* out of the table: leaves once its queue is empty */
    int fd;          /* page worker: the node, open between reads, or -1 */
    uint32_t nsid;   /* the one namespace the open node answers for */
    uint8_t opcode;  /* OP_GET_LOG_PAGE or OP_IDENTIFY */
    char path[];     /* the node, resolved */
};

static int sock = -1;
static char root[PATH_MAX];
/* The table and its count; taken before a worker's own lock, never after. Only the main
 * thread and a worker leaving take it, so a worker's request takes no lock it shares. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct worker *table;
static unsigned workers, in_flight; /* in_flight: atomic, requests queued or running */

/* One message per reply: SEQPACKET sends each whole, so workers need no lock between them. */
static void reply(uint32_t id, uint8_t kind, int32_t code, const uint8_t *data, size_t len)
{
    uint8_t header[REPLY_SIZE];
    struct iovec iov[2] = {{header, REPLY_SIZE}, {(void *)data, len}};
    struct msghdr msg;

    put_le32(header, id);
    header[4] = kind;
    put_le32(header + 5, (uint32_t)code);
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = len ? 2 : 1;
    while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ; /* a failed send: the agent is gone, recv sees it */
}

static void reply_code(uint32_t id, int rc)
{
    if (rc == REFUSED)
        reply(id, REPLY_ERRNO, EPERM, NULL, 0);
    else if (rc < 0)
        reply(id, REPLY_ERRNO, -rc, NULL, 0);
    else
        reply(id, REPLY_NVME_STATUS, rc, NULL, 0);
}

static void drop_fd(struct worker *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

/* Runs one request; the reply is sent from here. */
static void serve(struct worker *w, const struct request *req)
{
    uint8_t data[MAX_PAGE] __attribute__((aligned(64))); /* what the device writes */
    size_t len = w->opcode == OP_IDENTIFY ? NM_IDENTIFY_LEN : req->length;
    int rc, fd;

    if (w->opcode == OP_IDENTIFY) {
        fd = open_node(w->path);
        if (fd < 0) {
            reply_code(req->id, fd);
            return;
        }
        rc = nm_identify_controller(fd, data);
        close(fd);
    } else {
        if (w->fd < 0) {
            fd = open_node(w->path);
            if (fd < 0) {
                reply_code(req->id, fd);
                return;
            }
            rc = namespace_id(fd, w->path, &w->nsid);
            if (rc != 0) {
                close(fd);
                reply_code(req->id, rc);
                return;
            }
            w->fd = fd;
        }
        if (req->nsid != w->nsid) {
            refused("%s answers for namespace %#x, not %#x", w->path, w->nsid, req->nsid);
            drop_fd(w);
            reply_code(req->id, REFUSED);
            return;
        }
        rc = nm_get_log_page(w->fd, req->nsid, LOG_ID, data, req->length);
        if (rc != 0)
            drop_fd(w); /* opened afresh next time: the node may have gone and come back */
    }
    if (rc != 0) {
        reply_code(req->id, rc);
        return;
    }
    reply(req->id, REPLY_OK, 0, data, len);
}

static void unlink_worker(struct worker *w)
{
    for (struct worker **p = &table; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            workers--;
            return;
        }
    }
}

/* With w->mu held: 1 when the worker sleeps and needs wake() (after the unlock, so it
 * wakes to a free lock); a worker busy with a request finds its queue when done. */
static int wake_locked(struct worker *w)
{
    if (!w->sleeping)
        return 0;
    __atomic_store_n(&w->wake_seq, w->wake_seq + 1, __ATOMIC_RELEASE);
    return 1;
}

static void wake(struct worker *w)
{
    syscall(SYS_futex, &w->wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* With w->mu held, and held again on return; may return without a wake-up (the caller
 * checks its queue again). */
static void sleep_until_woken(struct worker *w)
{
    uint32_t seen = w->wake_seq;

    w->sleeping = 1;
    pthread_mutex_unlock(&w->mu);
    /* Returns at once when wake_seq moved since it was read: no wake-up is lost. */
    syscall(SYS_futex, &w->wake_seq, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
    pthread_mutex_lock(&w->mu);
    w->sleeping = 0;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct request req;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->queued) {
            if (w->opcode == OP_IDENTIFY && !w->retired) { /* Identify is rare: no stay */
                pthread_mutex_unlock(&w->mu); /* the table's lock first */
                pthread_mutex_lock(&lock);
                pthread_mutex_lock(&w->mu);
                if (!w->queued) {
                    unlink_worker(w);
                    w->retired = 1;
                }
                pthread_mutex_unlock(&lock);
                continue;
            }
            if (w->retired) {
                pthread_mutex_unlock(&w->mu);
                drop_fd(w);
                pthread_mutex_destroy(&w->mu);
                free(w);
                return NULL;
            }
            sleep_until_woken(w);
        }
        req = w->queue[w->first];
        w->first = (w->first + 1) % MAX_IN_FLIGHT;
        w->queued--;
        w->busy = 1;
        pthread_mutex_unlock(&w->mu);
        serve(w, &req);
        __atomic_fetch_sub(&in_flight, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&w->mu);
        w->busy = 0;
    }
}

/* With the lock held: the least recently used worker with nothing to do leaves the table
 * (a device long detached, most likely). Idle stays idle meanwhile: only this thread
 * queues. */
static void retire_idle(void)
{
    struct worker **p, **idle = NULL, *w;
    int is_idle;

    for (p = &table; *p; p = &(*p)->next) {
        pthread_mutex_lock(&(*p)->mu);
        is_idle = !(*p)->busy && !(*p)->queued;
        pthread_mutex_unlock(&(*p)->mu);
        if (is_idle)
            idle = p;
    }
    if (!idle)
        return;
    w = *idle;
    *idle = w->next;
    workers--;
    pthread_mutex_lock(&w->mu);
    w->retired = 1;
    if (wake_locked(w))
        wake(w); /* under its lock: once let go, it may leave and free itself */
    pthread_mutex_unlock(&w->mu);
}

/* With the lock held: the worker for (path, opcode), moved to the front; a new one when
 * there is none, taking the place of the least recently used idle one when the table is
 * full. NULL with *err set when no thread can be started. */
static struct worker *worker_for(const char *path, uint8_t opcode, int *err)
{
    struct worker **p, *w;
    pthread_attr_t attr;
    size_t stack = WORKER_STACK;

    for (p = &table; *p; p = &(*p)->next) {
        w = *p;
        if (w->opcode == opcode && strcmp(w->path, path) == 0) {
            *p = w->next;
            w->next = table;
            table = w;
            return w;
        }
    }
    if (workers >= MAX_OPEN)
        retire_idle();
    w = calloc(1, sizeof(*w) + strlen(path) + 1);
    if (!w) {
        *err = ENOMEM;
        return NULL;
    }
    strcpy(w->path, path);
    w->opcode = opcode;
    w->fd = -1;
#ifdef PTHREAD_STACK_MIN
    if (stack < (size_t)PTHREAD_STACK_MIN)
        stack = PTHREAD_STACK_MIN;
#endif
    if ((*err = pthread_mutex_init(&w->mu, NULL)) != 0) {
        free(w);
        return NULL;
    }
    if ((*err = pthread_attr_init(&attr)) == 0) {
        pthread_t thread;

        if ((*err = pthread_attr_setstacksize(&attr, stack)) == 0 &&
            (*err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) == 0)
            *err = pthread_create(&thread, &attr, work, w);
        pthread_attr_destroy(&attr);
    }
    if (*err != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    w->next = table;
    table = w;
    workers++;
    return w;
}

/* Checks one request and queues it on its device's worker, or answers it at once. */
static void handle(const uint8_t *msg, size_t len)
{
    uint32_t id = len >= 4 ? get_le32(msg) : 0, nsid, length;
    char path[PATH_MAX], real[PATH_MAX];
    struct request req;
    struct worker *w;
    uint8_t opcode, log_id;
    int busy, sleeping, err = 0;

    if (len <= REQUEST_SIZE || len - REQUEST_SIZE >= sizeof(path) ||
        memchr(msg + REQUEST_SIZE, '\0', len - REQUEST_SIZE)) {
        reply_code(id, -EINVAL); /* malformed: refused, and the next one is served */
        return;
    }
    opcode = msg[4];
    log_id = msg[5];
    nsid = get_le32(msg + 6);
    length = get_le32(msg + 10);
    memcpy(path, msg + REQUEST_SIZE, len - REQUEST_SIZE);
    path[len - REQUEST_SIZE] = '\0';
    if (opcode == OP_GET_LOG_PAGE) {
        if (log_id != LOG_ID || length == 0 || length > MAX_PAGE) {
            refused("log page %#04x of %u bytes is not allowed", log_id, length);
            reply_code(id, REFUSED);
            return;
        }
    } else if (opcode != OP_IDENTIFY) {
        refused("admin opcode %#04x is not allowed", opcode);
        reply_code(id, REFUSED);
        return;
    }
    if (check_path(path, root, real) != 0) {
        reply_code(id, REFUSED);
        return;
    }
    req = (struct request){id, nsid, length};
    pthread_mutex_lock(&lock);
    /* Only this thread adds to in_flight: past the cap, nothing new is started either. */
    busy = __atomic_load_n(&in_flight, __ATOMIC_RELAXED) >= MAX_IN_FLIGHT;
    w = busy ? NULL : worker_for(real, opcode, &err);
    if (w) {
        __atomic_fetch_add(&in_flight, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&w->mu);
        w->queue[(w->first + w->queued++) % MAX_IN_FLIGHT] = req;
        sleeping = wake_locked(w);
        pthread_mutex_unlock(&w->mu);
        if (sleeping) /* it cannot leave meanwhile: that takes the table's lock */
            wake(w);
    }
    pthread_mutex_unlock(&lock);
    if (!w)
        reply_code(id, busy ? -EBUSY : -err);
}

void reader_main(int sock_fd, const char *dev_root, pid_t keeper)
{
    uint8_t msg[REQUEST_SIZE + PATH_MAX];
    ssize_t n;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != keeper)
        _exit(0); /* the keeper is gone already */
    signal(SIGCHLD, SIG_DFL);
    mallopt(M_ARENA_MAX, 1); /* workers barely allocate: no arena of their own */
    sock = sock_fd;
    snprintf(root, sizeof(root), "%s", dev_root);
    for (;;) {
        n = recv(sock, msg, sizeof(msg), MSG_TRUNC); /* MSG_TRUNC: the whole length */
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the agent dropped this reader */
        handle(msg, (size_t)n > sizeof(msg) ? sizeof(msg) + 1 : (size_t)n);
    }
    _exit(0);
}
