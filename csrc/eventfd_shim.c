/* The eventfd shim: the only C between Python and the eventfd syscalls,
 * on raw fds (the drop-ins) and behind the lifecycle core (EventFD).
 * Declarations and the calling convention are in eventfd_shim.h; the
 * 8-byte read and write themselves (efx_read, efx_read_nowait, efx_write)
 * are in eventfd_ext/eventfd_io.h, shared with the Doorbell. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* eventfd_io.h (preadv2); Python.h defines it first in the cffi build */
#endif
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <eventfd_ext/eventfd_io.h>

#include "owner.c"

static int efx_create(unsigned int initval, int flags)
{
    int fd = eventfd(initval, flags);
    return fd < 0 ? -errno : fd;
}

static uint64_t efx_take(int fd)
{
    uint64_t value;
    return efx_read(fd, &value) ? 0 : value;
}

static uint64_t efx_take_nowait(int fd)
{
    uint64_t value;
    return efx_read_nowait(fd, &value) ? 0 : value;
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

/* ---- EventFD: an eventfd behind the lifecycle core ------------------- */

static int efxe_release(struct efx_owner *o, int close_fds)
{
    int err = 0;
    if (close_fds)
        efxo_close_fd(o->fd, &err);
    return err;
}

static int efxe_fds(struct efx_owner *o, int *out)
{
    out[0] = o->fd;
    return 1;
}

static const struct efxo_kind efxe_kind = {EFX_KIND_EVENTFD, efxe_release, NULL, NULL, efxe_fds};

static int efx_efd_adopt(int fd, efx_owner_t **out)
{
    struct efx_owner *o = efxo_new(&efxe_kind, fd, -1);
    if (!o)
        return -ENOMEM;
    *out = o;
    return 0;
}

static int efx_efd_create(unsigned int initval, int flags, efx_owner_t **out)
{
    int fd = efx_create(initval, flags);
    if (fd < 0)
        return fd;
    int r = efx_efd_adopt(fd, out);
    if (r)
        close(fd);
    return r;
}

static uint64_t efx_efd_take(efx_owner_t *o)
{
    if (efxo_enter(o))
        return 0;
    uint64_t v = efx_take_nowait(o->fd);
    efxo_leave(o);
    return v;
}

/* Take the count without blocking: 0; when empty, the fd's mode says
 * whether to wait: 1 (blocking), -EAGAIN (non-blocking); else -errno (the
 * read's own, e.g. -EOPNOTSUPP from a kernel without RWF_NOWAIT: the mode
 * is asked only once the read has found the count empty). */
static int efxe_read(int fd, uint64_t *count)
{
    int r = efx_read_nowait(fd, count);
    if (r == -EAGAIN) {
        int fl = fcntl(fd, F_GETFL);
        r = fl < 0 ? -errno : (fl & O_NONBLOCK) ? -EAGAIN : 1;
    }
    return r;
}

static int efx_efd_read(efx_owner_t *o, uint64_t *count)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    r = efxe_read(o->fd, count);
    efxo_leave(o);
    return r;
}

static int efx_efd_write(efx_owner_t *o, uint64_t value)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    r = efx_write(o->fd, value);
    efxo_leave(o);
    return r;
}

static int efx_efd_signal(efx_owner_t *o)
{
    return efx_efd_write(o, 1);
}

static int efx_efd_poll(efx_owner_t *o, int events, int timeout_ms)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    r = efxo_poll(o, o->fd, events, timeout_ms);
    efxo_leave(o);
    return r;
}

static int efx_efd_wait_read(efx_owner_t *o, int timeout_ms, uint64_t *count)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    for (;;) {
        /* No timeout: the fd's mode says whether to wait (1: wait). */
        r = timeout_ms < 0 ? efxe_read(o->fd, count) : efx_read_nowait(o->fd, count);
        if (r != (timeout_ms < 0 ? 1 : -EAGAIN)) {
            r = r ? r : 1;
            break;
        }
        /* Empty: sleep until readable.  Taking in the same crossing loses
         * nothing to a signal: poll returns at once with EINTR when one
         * comes, before anything is taken. */
        r = efxo_poll(o, o->fd, POLLIN, timeout_ms);
        if (r > 0) {
            r = 0; /* readable: read again (another reader may be first) */
            continue;
        }
        /* 0: timed out (the caller looks at its deadline); -EINTR; -errno */
        break;
    }
    efxo_leave(o);
    return r;
}

static int efx_efd_sleep(efx_owner_t *o, int timeout_ms, int64_t spun_ns)
{
    int r = efx_efd_poll(o, POLLIN, timeout_ms);
    return r > 0 ? 1 : r;
}

static int efx_efd_spin(efx_owner_t *o, int64_t spin_ns, int64_t limit_ns)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    int64_t end = efx_now_ns() + (spin_ns < limit_ns ? spin_ns : limit_ns);
    for (;;) {
        /* Yield first: on a shared CPU only the yield lets the writer run
         * (without it, a spin there costs several times a sleep). */
        sched_yield();
        int revents = efx_poll(o->fd, POLLIN, 0);
        if (revents == -EINTR) {
            r = 0; /* a signal: back to Python, whose handlers run now */
            break;
        }
        if (revents < 0 || (revents & POLLNVAL)) {
            r = revents < 0 ? revents : -EBADF;
            break;
        }
        if (revents) {
            r = 1; /* readable: the caller takes, in a call of its own */
            break;
        }
        if (efxo_closed(o)) {
            r = -EFX_ECLOSED;
            break;
        }
        if (efx_now_ns() >= end)
            break;
    }
    efxo_leave(o);
    return r;
}

static int efx_efd_nonblocking(efx_owner_t *o, int value)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    int fl = fcntl(o->fd, F_GETFL);
    if (fl < 0)
        r = -errno;
    else if (value < 0)
        r = (fl & O_NONBLOCK) != 0;
    else if (fcntl(o->fd, F_SETFL, value ? fl | O_NONBLOCK : fl & ~O_NONBLOCK))
        r = -errno;
    efxo_leave(o);
    return r;
}
