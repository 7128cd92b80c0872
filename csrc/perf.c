/* perf.c: event counters through perf_event_open(2), for the hardware
 * split-lock and bus-lock events and, in tests, software events.
 * Counters open disabled with a group read format that carries the enabled
 * and running times; the caller enables them around the work to count.
 * Needs: Linux (any architecture). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "splitlock.h"

#ifdef __linux__
#include <linux/perf_event.h>

int slp_perf_open(const struct slp_perf_event *event, int pid, int cpu, int group_fd, int *fd)
{
    struct perf_event_attr attr;
    long r;

    if (event == NULL || fd == NULL)
        return SLP_EINVAL;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = event->type;
    attr.config = event->config;
    attr.config1 = event->config1;
    attr.config2 = event->config2;
    attr.disabled = group_fd == -1; /* members follow their leader */
    attr.exclude_kernel = event->exclude_kernel ? 1 : 0;
    attr.exclude_hv = event->exclude_hv ? 1 : 0;
    attr.inherit = event->inherit ? 1 : 0;
    attr.read_format = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED |
                       PERF_FORMAT_TOTAL_TIME_RUNNING;
    r = syscall(SYS_perf_event_open, &attr, pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC);
    if (r < 0)
        return SLP_ESYS;
    *fd = (int)r;
    return SLP_OK;
}

int slp_perf_ctl(int fd, int what, int group)
{
    unsigned long request;
    unsigned long arg = group ? PERF_IOC_FLAG_GROUP : 0;

    switch (what) {
    case SLP_PERF_ENABLE:
        request = PERF_EVENT_IOC_ENABLE;
        break;
    case SLP_PERF_DISABLE:
        request = PERF_EVENT_IOC_DISABLE;
        break;
    case SLP_PERF_RESET:
        request = PERF_EVENT_IOC_RESET;
        break;
    default:
        return SLP_EINVAL;
    }
    return ioctl(fd, request, arg) == 0 ? SLP_OK : SLP_ESYS;
}

int slp_perf_read(int leader_fd, struct slp_perf_values *values)
{
    ssize_t n;

    if (values == NULL)
        return SLP_EINVAL;
    memset(values, 0, sizeof(*values));
    n = read(leader_fd, values, sizeof(*values));
    if (n < 0)
        return SLP_ESYS;
    if ((size_t)n < 3 * sizeof(uint64_t) || values->nr > SLP_PERF_MAX_GROUP) {
        errno = EIO;
        return SLP_ESYS;
    }
    return SLP_OK;
}

#else /* !__linux__ */

int slp_perf_open(const struct slp_perf_event *event, int pid, int cpu, int group_fd, int *fd)
{
    (void)event; (void)pid; (void)cpu; (void)group_fd; (void)fd;
    return SLP_EUNSUPPORTED;
}

int slp_perf_ctl(int fd, int what, int group)
{
    (void)fd; (void)what; (void)group;
    return SLP_EUNSUPPORTED;
}

int slp_perf_read(int leader_fd, struct slp_perf_values *values)
{
    (void)leader_fd; (void)values;
    return SLP_EUNSUPPORTED;
}

#endif

int slp_perf_close(int fd)
{
    return close(fd) == 0 ? SLP_OK : SLP_ESYS;
}
