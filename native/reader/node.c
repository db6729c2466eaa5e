/* Which nodes a reader may open, and how: directly under the device root, named as an
 * NVMe controller or namespace, a device once opened, read-only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/nvme_ioctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reader.h"

/* One line on stderr (the agent's log) for each request refused. */
void refused(const char *format, ...)
{
    char line[PATH_MAX + 256];
    va_list ap;

    va_start(ap, format);
    vsnprintf(line, sizeof(line), format, ap);
    va_end(ap);
    fprintf(stderr, "nitrometer-reader: refused: %s\n", line);
}

/* 1 a controller node (nvmeN), 2 a namespace node (nvmeNnM), 0 anything else. */
int node_kind(const char *name)
{
    const char *p;

    if (strncmp(name, "nvme", 4) != 0)
        return 0;
    p = name + 4;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '\0')
        return 1;
    if (*p++ != 'n' || *p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == '\0' ? 2 : 0;
}

/* The resolved path of a node directly under the root, into real; 0 or REFUSED. A node
 * that does not exist resolves through its directory (its open then fails ENOENT). */
int check_path(const char *path, const char *root, char *real)
{
    char dir[PATH_MAX], dir_real[PATH_MAX];
    const char *slash, *name;
    struct stat st;
    size_t root_len = strlen(root);

    /* The path named as the root (resolved at start) names it, and a last component that is
     * no link resolves to itself: one lstat instead of realpath's walk of every component. */
    if (strncmp(path, root, root_len) == 0 && path[root_len] == '/' &&
        strlen(path) < PATH_MAX && !strchr(path + root_len + 1, '/') &&
        strcmp(path + root_len + 1, ".") != 0 && strcmp(path + root_len + 1, "..") != 0 &&
        (lstat(path, &st) == 0 ? !S_ISLNK(st.st_mode) : errno == ENOENT)) {
        strcpy(real, path);
    } else if (!realpath(path, real)) {
        if (errno != ENOENT || lstat(path, &st) == 0) /* lstat: a dangling link */
            goto outside;
        slash = strrchr(path, '/');
        if (!slash)
            snprintf(dir, sizeof(dir), ".");
        else
            snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
        if (!realpath(dir, dir_real))
            goto outside;
        name = slash ? slash + 1 : path;
        if (snprintf(real, PATH_MAX, "%s/%s", strcmp(dir_real, "/") ? dir_real : "",
                     name) >= PATH_MAX)
            goto outside;
    }
    slash = strrchr(real, '/');
    if (!slash || strlen(root) != (size_t)(slash == real ? 1 : slash - real) ||
        strncmp(real, root, strlen(root)) != 0)
        goto outside;
    if (!node_kind(slash + 1)) {
        refused("%s is not an NVMe device node", path);
        return REFUSED;
    }
    return 0;
outside:
    refused("%s is not under %s", path, root);
    return REFUSED;
}

/* The node opened read-only, or -errno, or REFUSED when it is no device node. */
int open_node(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), err;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        err = errno;
        close(fd);
        return -err;
    }
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
        close(fd);
        refused("%s is not a device node", path);
        return REFUSED;
    }
    return fd;
}

/* The kernel's nsid for a namespace node, the whole controller's for a controller node. */
int namespace_id(int fd, const char *path, uint32_t *nsid)
{
    int rc;

    if (node_kind(strrchr(path, '/') + 1) == 1) {
        *nsid = CONTROLLER_NSID;
        return 0;
    }
    rc = ioctl(fd, NVME_IOCTL_ID);
    if (rc < 0)
        return -errno;
    *nsid = (uint32_t)rc;
    return 0;
}
