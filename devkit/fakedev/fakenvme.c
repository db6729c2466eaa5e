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
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 4096
#define PATH_LEN 1024 /* short: a reading thread's stack is its reader's RSS */
#define STATE_SIZE (256 * sizeof(uint32_t))

/* What the shim knows of one DEVDIR; never freed, so close() and fork need no lock. */
struct log {
    struct log *next;
    unsigned id;
    int count;        /* pages in its sequence; 0: the one page log-XX.bin */
    int index;        /* which page data holds, or -1 */
    int status;       /* an NVMe status when the file is missing, else 0 */
    uint8_t *data;
    size_t size;
};

struct control {
    int gone, err, hang_ms, status, hang_identify_ms;
};

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

static struct device *fd_device[MAX_FDS];
static long fd_nsid[MAX_FDS]; /* -1: a controller node */

static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);
static const volatile uint64_t *generation; /* $FAKENVME_DIR/generation, or NULL */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t devices_lock = PTHREAD_MUTEX_INITIALIZER; /* devices, the map */
static struct device *devices;
static char *map_text;       /* $FAKENVME_DIR/devices as last read */
static uint64_t map_generation;
static int map_fresh;

/* A whole small file into a malloc'd buffer (NUL-terminated), or NULL; *size its length. */
static char *slurp(const char *path, size_t *size)
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

static void resolve(void)
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

static struct device *lookup(const char *path)
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

static struct control device_control(struct device *d, int *log_commands)
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

static int copy_from(const char *devdir, const char *name, uint64_t offset, uint8_t *addr,
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
static int log_page(struct device *d, unsigned log_id, int last_chunk, uint64_t offset,
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
