/* The two NVMe admin commands nitrometer sends: Identify Controller and Get Log Page. */
#include <errno.h>
#include <linux/nvme_ioctl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include "nitrometer_native.h"

#define OPC_GET_LOG_PAGE 0x02
#define OPC_IDENTIFY 0x06
#define CNS_CONTROLLER 1
#define CHUNK_LEN 4096u
#define RAE_BIT (1u << 15)
/*
 * 0 lets the kernel use its admin timeout (60 s). Never shorter: in nvme-pci an admin
 * command that times out resets the controller, and with it every namespace on it.
 * Slowness is the caller's to handle, in user space.
 */
#define KERNEL_DEFAULT_TIMEOUT 0u

static int admin(int fd, struct nvme_admin_cmd *cmd)
{
    int rc = ioctl(fd, NVME_IOCTL_ADMIN_CMD, cmd);

    if (rc < 0)
        return -errno;
    return rc; /* > 0: the controller's NVMe status */
}

/*
 * Chunks of 4 KiB with the log page offset set, as nvme-cli does; Retain
 * Asynchronous Event on every chunk but the last.
 */
int nm_get_log_page(int fd, uint32_t nsid, uint8_t log_id, uint8_t *buf, uint32_t len)
{
    if (buf == NULL || len == 0 || len % 4 != 0)
        return -EINVAL;
    for (uint32_t offset = 0; offset < len; offset += CHUNK_LEN) {
        uint32_t chunk = len - offset < CHUNK_LEN ? len - offset : CHUNK_LEN;
        uint32_t numd = chunk / 4 - 1; /* zero-based dword count */
        int last = offset + chunk >= len;
        struct nvme_admin_cmd cmd;
        int rc;

        memset(&cmd, 0, sizeof(cmd));
        cmd.opcode = OPC_GET_LOG_PAGE;
        cmd.nsid = nsid;
        cmd.addr = (uint64_t)(uintptr_t)(buf + offset);
        cmd.data_len = chunk;
        cmd.cdw10 = log_id | (numd & 0xffffu) << 16 | (last ? 0 : RAE_BIT);
        cmd.cdw11 = numd >> 16;
        cmd.cdw12 = offset; /* log page offset, low 32 bits */
        cmd.cdw13 = 0;
        cmd.timeout_ms = KERNEL_DEFAULT_TIMEOUT;
        rc = admin(fd, &cmd);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int nm_identify_controller(int fd, uint8_t *buf)
{
    struct nvme_admin_cmd cmd;

    if (buf == NULL)
        return -EINVAL;
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = OPC_IDENTIFY;
    cmd.addr = (uint64_t)(uintptr_t)buf;
    cmd.data_len = NM_IDENTIFY_LEN;
    cmd.cdw10 = CNS_CONTROLLER;
    cmd.timeout_ms = KERNEL_DEFAULT_TIMEOUT;
    return admin(fd, &cmd);
}
