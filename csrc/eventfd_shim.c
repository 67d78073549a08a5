/* The eventfd shim: the only C between Python and the eventfd syscalls.
 * Declarations and the calling convention are in eventfd_shim.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* preadv2; Python.h defines it first in the cffi build */
#endif
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008 /* linux/fs.h; older libc headers lack it */
#endif

/* The result of a read(2) of the 8-byte counter: 0, or -errno.  A short
 * read or EOF comes from an fd that is not an eventfd: EINVAL. */
static int efx_read_result(ssize_t n)
{
    if (n == sizeof(uint64_t))
        return 0;
    return n < 0 ? -errno : -EINVAL;
}

static int efx_create(unsigned int initval, int flags)
{
    int fd = eventfd(initval, flags);
    return fd < 0 ? -errno : fd;
}

static int efx_read(int fd, uint64_t *count)
{
    return efx_read_result(read(fd, count, sizeof *count));
}

static uint64_t efx_take(int fd)
{
    uint64_t value;
    return efx_read(fd, &value) ? 0 : value;
}

static int efx_read_nowait(int fd, uint64_t *count)
{
    struct iovec iov = {count, sizeof *count};
    return efx_read_result(preadv2(fd, &iov, 1, -1, RWF_NOWAIT));
}

static uint64_t efx_take_nowait(int fd)
{
    uint64_t value;
    return efx_read_nowait(fd, &value) ? 0 : value;
}

static int efx_write(int fd, uint64_t value)
{
    ssize_t n = write(fd, &value, sizeof value);
    if (n == sizeof value)
        return 0;
    return n < 0 ? -errno : -EINVAL; /* short write: not an eventfd */
}

static int efx_signal(int fd)
{
    return efx_write(fd, 1);
}

static int efx_poll(int fd, int events, int timeout_ms)
{
    struct pollfd pfd = {fd, (short)events, 0};
    int n = poll(&pfd, 1, timeout_ms);
    if (n < 0)
        return -errno;
    return n ? pfd.revents : 0;
}

static int64_t efx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int efx_wait_read(int fd, int timeout_ms, uint64_t *count)
{
    int64_t deadline = timeout_ms < 0 ? 0 : efx_now_ms() + timeout_ms;
    for (;;) {
        int revents = efx_poll(fd, POLLIN, timeout_ms);
        if (revents <= 0)
            return revents; /* timeout, or -errno */
        if (revents & POLLNVAL)
            return -EBADF;
        int r = efx_read_nowait(fd, count);
        if (r != -EAGAIN)
            return r ? r : 1;
        /* Another reader took the count between poll and read: wait again
         * for what is left of the timeout. */
        if (timeout_ms >= 0) {
            int64_t left = deadline - efx_now_ms();
            if (left <= 0)
                return 0;
            timeout_ms = (int)left;
        }
    }
}
