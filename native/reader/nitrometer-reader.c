/*
 * nitrometer-reader CONTROL_FD DEV_ROOT AGENT_PID
 *
 * The keeper: started by the agent (nitrometer/keeper.py) before it drops its privileges,
 * it keeps CAP_SYS_ADMIN (and, when not root, CAP_DAC_READ_SEARCH) and nothing else for as
 * long as the agent runs. It forks readers (reader.c) and hands the agent a socket to each
 * over CONTROL_FD (SCM_RIGHTS): the first at start, a new one whenever a reader dies, and
 * one in place of a reader the agent reports as no longer answering (killed first). A
 * reader that dies young is replaced after a growing pause, so one that cannot start does
 * not spin. Single-threaded; it ends when the agent closes CONTROL_FD or dies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reader.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define YOUNG 10.0       /* seconds: a reader that dies younger failed to start */
#define FIRST_PAUSE 0.5  /* seconds before replacing a reader that died young; doubles */
#define MAX_PAUSE 8.0    /* a reader killed once is back within a second or two */

static int wake[2] = {-1, -1}; /* SIGCHLD's self-pipe */

static struct {
    int control;
    const char *root;
    pid_t current; /* the reader the agent is using, or 0 */
    double started, next_start;
    unsigned young_deaths;
    char ended[MAX_ENDED_TEXT + 1]; /* how the last reader ended, told with the next one */
} k;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_child(int sig)
{
    int saved = errno;
    ssize_t ignored = write(wake[1], "", 1);

    (void)sig;
    (void)ignored;
    errno = saved;
}

/* Keep only what reading the devices takes, in every set. Without CAP_SETPCAP the
 * bounding set stays; where capset is denied (the unit's syscall filter) the sets stay
 * as the unit gave them, which is these two. */
static void limit_capabilities(void)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    uint64_t keep = 1ull << CAP_SYS_ADMIN, permitted;
    int last = 40;
    FILE *f;

    if (syscall(SYS_capget, &header, data) != 0)
        return;
    if (geteuid() != 0 && (data[0].effective >> CAP_DAC_READ_SEARCH & 1))
        keep |= 1ull << CAP_DAC_READ_SEARCH; /* EC2's nodes are root's alone */
    f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f) {
        if (fscanf(f, "%d", &last) != 1)
            last = 40;
        fclose(f);
    }
    for (int cap = 0; cap <= last && cap < 64; cap++)
        if (!(keep >> cap & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
            errno != EINVAL)
            break; /* EPERM: no CAP_SETPCAP */
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); /* fails only before 4.3 */
    permitted = data[0].permitted | (uint64_t)data[1].permitted << 32;
    keep &= permitted;
    for (int i = 0; i < 2; i++) {
        data[i].effective = data[i].permitted = (uint32_t)(keep >> (32 * i));
        data[i].inheritable = 0;
    }
    (void)syscall(SYS_capset, &header, data); /* denied: the sets stay as they are */
}

static void describe_end(pid_t pid, int status, char *out, size_t size)
{
    static const struct { int sig; const char *name; } names[] = {
        {SIGHUP, "SIGHUP"}, {SIGINT, "SIGINT"}, {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"}, {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"},
        {SIGUSR2, "SIGUSR2"}, {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"},
        {SIGTERM, "SIGTERM"}, {SIGSYS, "SIGSYS"}, {SIGXCPU, "SIGXCPU"},
    };

    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (names[i].sig == sig) {
                snprintf(out, size, "reader %d was killed by %s", (int)pid, names[i].name);
                return;
            }
        }
        snprintf(out, size, "reader %d was killed by signal %d", (int)pid, sig);
        return;
    }
    snprintf(out, size, "reader %d exited with status %d", (int)pid, WEXITSTATUS(status));
}

static void reader_ended(const char *how)
{
    double pause = 0.0;

    k.young_deaths = now() - k.started < YOUNG ? k.young_deaths + 1 : 0;
    if (k.young_deaths) {
        pause = FIRST_PAUSE;
        for (unsigned i = 1; i < k.young_deaths && pause < MAX_PAUSE; i++)
            pause *= 2;
        if (pause > MAX_PAUSE)
            pause = MAX_PAUSE;
    }
    snprintf(k.ended, sizeof(k.ended), "%s", how);
    k.current = 0;
    k.next_start = now() + pause;
}

/* KEEPER_NEWS(pid) + how the previous reader ended, with the reader's socket. */
static int send_news(pid_t pid, int fd)
{
    uint8_t msg[KEEPER_MESSAGE_SIZE + MAX_ENDED_TEXT];
    size_t text = strlen(k.ended);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {msg, KEEPER_MESSAGE_SIZE + text};
    struct msghdr header;
    struct cmsghdr *cmsg;
    ssize_t n;

    msg[0] = KEEPER_NEWS;
    put_le32(msg + 1, (uint32_t)pid);
    memcpy(msg + KEEPER_MESSAGE_SIZE, k.ended, text);
    memset(&header, 0, sizeof(header));
    memset(&control, 0, sizeof(control));
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    header.msg_control = control.buf;
    header.msg_controllen = sizeof(control.buf);
    cmsg = CMSG_FIRSTHDR(&header);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    while ((n = sendmsg(k.control, &header, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -1 : 0;
}

static void start_reader(void)
{
    pid_t keeper = getpid(), pid;
    int pair[2];
    char how[128];

    k.started = now();
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        snprintf(how, sizeof(how), "no reader could start: socketpair: %s", strerror(errno));
        reader_ended(how);
        return;
    }
    pid = fork();
    if (pid == 0) {
        close(k.control);
        close(wake[0]);
        close(wake[1]);
        close(pair[1]);
        reader_main(pair[0], k.root, keeper);
    }
    close(pair[0]);
    if (pid < 0) {
        snprintf(how, sizeof(how), "no reader could start: fork: %s", strerror(errno));
        close(pair[1]);
        reader_ended(how);
        return;
    }
    k.current = pid;
    if (send_news(pid, pair[1]) != 0)
        _exit(0); /* the agent is gone; the reader follows (PR_SET_PDEATHSIG) */
    close(pair[1]);
    k.ended[0] = '\0';
}

static void reap(void)
{
    char how[128];
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == k.current) {
            describe_end(pid, status, how, sizeof(how));
            reader_ended(how);
        }
    }
}

/* KEEPER_REPLACE(pid) + why: kill that reader (not waited for: one stuck in an ioctl may
 * take until the kernel lets go) and start another at once. */
static void on_request(const uint8_t *msg, size_t len)
{
    char how[MAX_ENDED_TEXT + 1];
    pid_t pid;

    if (len < KEEPER_MESSAGE_SIZE || msg[0] != KEEPER_REPLACE)
        return;
    pid = (pid_t)get_le32(msg + 1);
    if (pid != k.current || pid <= 0)
        return; /* about a reader already replaced */
    kill(pid, SIGKILL);
    snprintf(how, sizeof(how), "reader %d %.*s: killed", (int)pid,
             (int)(len - KEEPER_MESSAGE_SIZE), (const char *)msg + KEEPER_MESSAGE_SIZE);
    reader_ended(how);
    k.next_start = 0.0;
}

static void keep(void)
{
    uint8_t msg[MAX_KEEPER_MESSAGE];
    char drain[64];
    struct pollfd fds[2];
    int timeout;
    ssize_t n;

    start_reader();
    for (;;) {
        timeout = -1;
        if (!k.current) {
            double wait = k.next_start - now();

            timeout = wait > 0 ? (int)(wait * 1000) + 1 : 0;
        }
        fds[0] = (struct pollfd){.fd = k.control, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = wake[0], .events = POLLIN};
        if (poll(fds, 2, timeout) < 0 && errno != EINTR) {
            perror("nitrometer-reader: poll");
            exit(1);
        }
        while (read(wake[0], drain, sizeof(drain)) > 0)
            ;
        reap();
        if (fds[0].revents) {
            n = recv(k.control, msg, sizeof(msg), MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                exit(0); /* the agent is gone */
            if (n > 0)
                on_request(msg, (size_t)n);
        }
        if (!k.current && now() >= k.next_start)
            start_reader();
    }
}

static int number(const char *text, long *value)
{
    char *end;

    errno = 0;
    *value = strtol(text, &end, 10);
    return errno == 0 && end != text && *end == '\0' && *value >= 0 && *value <= INT_MAX;
}

int main(int argc, char **argv)
{
    static char root[PATH_MAX];
    struct sigaction child;
    long control, agent;

    if (argc != 4 || !number(argv[1], &control) || !number(argv[3], &agent) ||
        fcntl((int)control, F_GETFD) < 0) {
        fprintf(stderr, "usage: nitrometer-reader CONTROL_FD DEV_ROOT AGENT_PID "
                "(started by `nitrometer run`, not by hand)\n");
        return 2;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != (pid_t)agent)
        return 0; /* the agent died before it could be watched */
    signal(SIGINT, SIG_IGN); /* a terminal's ^C is the agent's to handle */
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    k.control = (int)control;
    if (fcntl(k.control, F_SETFD, FD_CLOEXEC) != 0 || pipe2(wake, O_CLOEXEC | O_NONBLOCK)) {
        perror("nitrometer-reader");
        return 1;
    }
    k.root = realpath(argv[2], root) ? root : argv[2];
    limit_capabilities();
    memset(&child, 0, sizeof(child));
    child.sa_handler = on_child;
    child.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&child.sa_mask);
    if (sigaction(SIGCHLD, &child, NULL) != 0) {
        perror("nitrometer-reader: sigaction");
        return 1;
    }
    keep();
}
