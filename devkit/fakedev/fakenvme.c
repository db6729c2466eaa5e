/*
 * LD_PRELOAD shim: makes configured paths look like Amazon NVMe devices.
 *
 * $FAKENVME_DIR/devices holds lines "PATH DEVDIR". Opening PATH gives a real fd
 * (on /dev/null) that this shim remembers; NVME_IOCTL_ADMIN_CMD on it is answered
 * from DEVDIR/identify.bin (Identify Controller) and DEVDIR/log-XX.bin (Get Log
 * Page XX, hex). DEVDIR/control is re-read on every open and ioctl, so a test can
 * make a device fail and recover while the process runs:
 *   gone          open fails ENOENT, ioctl fails ENODEV
 *   errno=NAME    ioctl fails with EACCES, EPERM, EIO, ENODEV, ENXIO, EINTR, ETIMEDOUT,
 *                 ENOTTY
 *   hang=MS       ioctl waits MS ms (past a non-zero timeout_ms it fails ETIMEDOUT)
 *   hang-identify=MS  Identify Controller alone waits MS ms, then answers
 *   status=HEX    ioctl completes with that NVMe status
 * DEVDIR/mode, "UID GID MODE" (MODE octal), is checked on every open as the kernel's
 * discretionary access control would: owner, then group (effective and supplementary),
 * then other bits; CAP_DAC_OVERRIDE passes any open, CAP_DAC_READ_SEARCH a read-only one.
 * A refused open fails EACCES. Without the file every open passes.
 * NVME_IOCTL_ID answers a namespace node's nsid (the N of nvmeXnN, or DEVDIR/nsid), and
 * fails ENOTTY on a controller node, as the kernel does.
 * Every command is appended to DEVDIR/commands (unless DEVDIR/commands.off exists), every
 * open's flags to DEVDIR/opens.
 * A sequence of pages: DEVDIR/log-XX.seq holds N, and the reads are answered from
 * log-XX.0.bin .. log-XX.<N-1>.bin in turn (one page per whole read: the last chunk moves
 * on), staying on the last; DEVDIR/state (256 little-endian uint32, one per log id, mapped
 * shared) says which is next.
 *
 * The steady path reads no file: the device map, control, commands.off and the pages are
 * kept in memory and read again only when $FAKENVME_DIR/generation (a uint64 the fixture
 * bumps after each change it makes, mapped shared) has moved. Without that file every
 * call reads them afresh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fakenvme.h"

#define MAX_FDS 4096

static struct device *fd_device[MAX_FDS];
static long fd_nsid[MAX_FDS]; /* -1: a controller node */

static void append(const char *devdir, const char *file, const char *text)
{
    char path[PATH_LEN];
    int fd;
    ssize_t ignored;

    snprintf(path, sizeof(path), "%s/%s", devdir, file);
    fd = real_openat(AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd >= 0) {
        ignored = write(fd, text, strlen(text)); /* O_APPEND: whole lines, even across processes */
        (void)ignored;
        real_close(fd);
    }
}

static int in_group(gid_t gid)
{
    gid_t groups[256];
    int n;

    if (getegid() == gid)
        return 1;
    n = getgroups(256, groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

static int has_capability(int cap)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];

    if (syscall(SYS_capget, &header, data) != 0)
        return 0;
    return (data[cap / 32].effective >> (cap % 32)) & 1;
}

/* 0 when DEVDIR/mode lets this process open the node with flags, else EACCES. */
static int access_denied(const char *devdir, int flags)
{
    char path[PATH_LEN];
    unsigned uid, gid, mode, bits, want;
    FILE *f;
    int fields;

    snprintf(path, sizeof(path), "%s/mode", devdir);
    f = fopen(path, "re");
    if (!f)
        return 0;
    fields = fscanf(f, "%u %u %o", &uid, &gid, &mode);
    fclose(f);
    if (fields != 3)
        return 0;
    want = (flags & O_ACCMODE) == O_RDONLY ? 4 : (flags & O_ACCMODE) == O_WRONLY ? 2 : 6;
    if (geteuid() == uid)
        bits = mode >> 6 & 7;
    else if (in_group(gid))
        bits = mode >> 3 & 7;
    else
        bits = mode & 7;
    if ((bits & want) == want || has_capability(CAP_DAC_OVERRIDE) ||
        (want == 4 && has_capability(CAP_DAC_READ_SEARCH)))
        return 0;
    return EACCES;
}

/* The nsid of a namespace node (DEVDIR/nsid, else the N of nvmeXnN); -1 for a controller. */
static long node_nsid(const char *devdir, const char *path)
{
    const char *base = strrchr(path, '/'), *n;
    char file[PATH_LEN];
    FILE *f;
    long value = -1;

    snprintf(file, sizeof(file), "%s/nsid", devdir);
    f = fopen(file, "re");
    if (f) {
        if (fscanf(f, "%ld", &value) != 1)
            value = -1;
        fclose(f);
        return value;
    }
    base = base ? base + 1 : path;
    if (strncmp(base, "nvme", 4) != 0)
        return -1;
    n = strchr(base + 4, 'n');
    return n ? strtol(n + 1, NULL, 10) : -1;
}

/* Every open variant ends here; dirfd is AT_FDCWD for the plain ones. */
static int fake_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    struct device *d;
    char text[64];
    int fd;

    resolve();
    d = lookup(path);
    if (!d)
        return real_openat(dirfd, path, flags, mode);
    snprintf(text, sizeof(text), "flags=%#o\n", flags & O_ACCMODE);
    append(d->devdir, "opens", text);
    if (device_control(d, NULL).gone) {
        errno = ENOENT;
        return -1;
    }
    if (access_denied(d->devdir, flags)) {
        errno = EACCES;
        return -1;
    }
    fd = real_openat(AT_FDCWD, "/dev/null", O_RDONLY | (flags & O_CLOEXEC), 0);
    if (fd < 0 || fd >= MAX_FDS)
        return fd;
    fd_nsid[fd] = node_nsid(d->devdir, path);
    fd_device[fd] = d;
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return fake_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return fake_openat(AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return fake_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return fake_openat(dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE builds call these when the flags are known not to need a mode. */
int __open_2(const char *path, int flags) { return fake_openat(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return fake_openat(AT_FDCWD, path, flags, 0); }

int close(int fd)
{
    resolve();
    if (fd >= 0 && fd < MAX_FDS)
        fd_device[fd] = NULL;
    return real_close(fd);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int admin(struct device *d, struct nvme_admin_cmd *cmd)
{
    int log_commands;
    struct control c = device_control(d, &log_commands);
    uint8_t *addr = (uint8_t *)(uintptr_t)cmd->addr;
    char text[256];

    if (log_commands) {
        snprintf(text, sizeof(text),
                 "opcode=%u nsid=%#x cdw10=%#x cdw11=%#x cdw12=%#x cdw13=%#x data_len=%u "
                 "timeout_ms=%u\n",
                 cmd->opcode, cmd->nsid, cmd->cdw10, cmd->cdw11, cmd->cdw12, cmd->cdw13,
                 cmd->data_len, cmd->timeout_ms);
        append(d->devdir, "commands", text);
    }
    if (c.gone) {
        errno = ENODEV;
        return -1;
    }
    if (c.hang_ms) {
        if (cmd->timeout_ms && (uint32_t)c.hang_ms > cmd->timeout_ms) {
            sleep_ms((int)cmd->timeout_ms);
            errno = ETIMEDOUT;
            return -1;
        }
        sleep_ms(c.hang_ms);
    }
    if (c.err) {
        errno = c.err;
        return -1;
    }
    if (c.status)
        return c.status;
    if (cmd->opcode == 0x06) {
        if (c.hang_identify_ms)
            sleep_ms(c.hang_identify_ms);
        if ((cmd->cdw10 & 0xff) != 1 || cmd->data_len < 4096)
            return 0x2;
        return copy_from(d->devdir, "identify.bin", 0, addr, 4096);
    }
    if (cmd->opcode == 0x02) {
        uint32_t numd = ((cmd->cdw11 & 0xffff) << 16 | cmd->cdw10 >> 16) + 1;
        uint64_t offset = (uint64_t)cmd->cdw13 << 32 | cmd->cdw12;

        /* The device writes exactly NUMD dwords: a buffer of another size is a bug. */
        if ((uint64_t)numd * 4 != cmd->data_len)
            return 0x2;
        return log_page(d, cmd->cdw10 & 0xff, !(cmd->cdw10 & (1u << 15)), offset, addr,
                        cmd->data_len);
    }
    return 0x1; /* Invalid Command Opcode */
}

int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    void *arg;

    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);
    resolve();
    if (fd < 0 || fd >= MAX_FDS || !fd_device[fd])
        return real_ioctl(fd, request, arg);
    if (request == NVME_IOCTL_ID && fd_nsid[fd] >= 0)
        return (int)fd_nsid[fd];
    if (request != NVME_IOCTL_ADMIN_CMD) {
        errno = ENOTTY;
        return -1;
    }
    return admin(fd_device[fd], arg);
}
