/* The eventfd's 8-byte read and write, and the monotonic clock in
 * nanoseconds: header-only (every function static inline), shared by the
 * Doorbell's C API (eventfd_ext/doorbell.h) and the package's own shims,
 * and usable by any C program.  Find the folder to put on the include
 * path with eventfd_ext.get_include().
 *
 * Calling convention, as everywhere in eventfd_ext: a function reports its
 * failure in its result (-errno), never through errno read after it.
 *
 * It needs _GNU_SOURCE (preadv2) defined before the first system header:
 * define it at the top of the file, or pass -D_GNU_SOURCE.
 */
#ifndef EVENTFD_EXT_EVENTFD_IO_H
#define EVENTFD_EXT_EVENTFD_IO_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <features.h>
#if defined(__GLIBC__) && !defined(__USE_GNU)
#error "eventfd_ext: define _GNU_SOURCE before the first #include (a system header came first without it)"
#endif

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008 /* linux/fs.h; older libc headers lack it */
#endif

/* CLOCK_MONOTONIC in nanoseconds: what every timed loop and deadline of
 * the package measures with. */
static inline int64_t efx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The result of a read(2) of the 8-byte counter: 0, or -errno.  A short
 * read or EOF comes from an fd that is not an eventfd: EINVAL. */
static inline int efx_read_result(ssize_t n)
{
    if (n == sizeof(uint64_t))
        return 0;
    return n < 0 ? -errno : -EINVAL;
}

/* read(2) of the counter into *count: 0, or -errno. */
static inline int efx_read(int fd, uint64_t *count)
{
    return efx_read_result(read(fd, count, sizeof *count));
}

/* Like efx_read, but never blocks whatever the fd's mode (RWF_NOWAIT):
 * -EAGAIN when the count is zero. */
static inline int efx_read_nowait(int fd, uint64_t *count)
{
    struct iovec iov = {count, sizeof *count};
    return efx_read_result(preadv2(fd, &iov, 1, -1, RWF_NOWAIT));
}

/* write(2) of the 8-byte value: 0, or -errno (EINVAL for a short write:
 * not an eventfd). */
static inline int efx_write(int fd, uint64_t value)
{
    ssize_t n = write(fd, &value, sizeof value);
    if (n == sizeof value)
        return 0;
    return n < 0 ? -errno : -EINVAL;
}

#endif
