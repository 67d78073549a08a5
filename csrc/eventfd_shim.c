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

static const uint64_t EFX_FAILED = UINT64_MAX;

/* A read that did not return 8 bytes.  A short read or EOF (n >= 0) comes
 * from an fd that is not an eventfd; it gets EINVAL so that errno 0 keeps
 * meaning "a genuine count of UINT64_MAX". */
static uint64_t efx_read_failed(ssize_t n)
{
    if (n >= 0)
        errno = EINVAL;
    return EFX_FAILED;
}

static int efx_create(unsigned int initval, int flags)
{
    int fd = eventfd(initval, flags);
    return fd < 0 ? -errno : fd;
}

static uint64_t efx_read(int fd)
{
    uint64_t value;
    errno = 0; /* a kernel-side overflow can make UINT64_MAX a real count */
    ssize_t n = read(fd, &value, sizeof value);
    if (n != sizeof value)
        return efx_read_failed(n);
    return value;
}

static uint64_t efx_take(int fd)
{
    uint64_t value;
    errno = 0; /* 0 with errno 0 is a genuine 0, read from a non-eventfd */
    ssize_t n = read(fd, &value, sizeof value);
    if (n == sizeof value)
        return value;
    if (n >= 0)
        errno = EINVAL; /* a short read: not an eventfd either */
    return 0;
}

static uint64_t efx_read_nowait(int fd)
{
    uint64_t value;
    struct iovec iov = {&value, sizeof value};
    errno = 0;
    ssize_t n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
    if (n != sizeof value)
        return efx_read_failed(n);
    return value;
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

static uint64_t efx_wait_read(int fd, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? 0 : efx_now_ms() + timeout_ms;
    for (;;) {
        int revents = efx_poll(fd, POLLIN, timeout_ms);
        if (revents < 0) {
            errno = -revents;
            return EFX_FAILED;
        }
        if (revents == 0)
            return 0;
        if (revents & POLLNVAL) {
            errno = EBADF;
            return EFX_FAILED;
        }
        uint64_t value = efx_read_nowait(fd);
        if (value != EFX_FAILED || errno == 0 || errno != EAGAIN)
            return value;
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
