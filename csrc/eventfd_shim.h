/* cffi cdef for the eventfd shim (csrc/eventfd_shim.c).
 *
 * Calling convention, for every function of every shim in csrc/: a call
 * reports its failure in its own result, never through errno read after it
 * returns.  (CPython may run a signal handler between a cffi call's return
 * and the next Python line; a handler that calls a shim overwrites
 * ffi.errno, and the interrupted call would then decide from the handler's.)
 *
 *   - A function returns an int: >= 0 on success, -errno on failure.
 *   - A result that does not fit an int (a 64-bit count, a pair, a handle)
 *     is written through a pointer that the caller allocates for that one
 *     call (ffi.new), never a buffer shared between calls.
 *   - One exception, the hot read: efx_take() returns the count, or 0 when
 *     the read failed, for whatever reason.  0 is never an eventfd count and
 *     a failed read takes nothing, so the caller learns the reason by
 *     repeating the read with efx_read(), once signal handlers have run.
 *
 * cffi releases the GIL around every call.
 */

#define EFD_CLOEXEC ...
#define EFD_NONBLOCK ...
#define EFD_SEMAPHORE ...
#define POLLIN ...
#define POLLPRI ...
#define POLLOUT ...
#define POLLERR ...
#define POLLHUP ...
#define POLLNVAL ...

/* eventfd2(initval, flags): the new fd, or -errno. */
int efx_create(unsigned int initval, int flags);

/* read(2) of the 8-byte counter into *count: 0, or -errno (EINVAL for a
 * short read or EOF: the fd is not an eventfd).  efx_read, efx_read_nowait
 * and efx_write are eventfd_ext/eventfd_io.h's, shared with C peers. */
int efx_read(int fd, uint64_t *count);

/* The hot read: the count, or 0 if the read failed (see above).  One
 * argument makes it a METH_O builtin, the cheapest cffi crossing: a count
 * returned through an ffi.new pointer (an allocation per call), or a
 * struct returned by value (a conversion), costs a large share of a
 * write+read pair (docs/bench.md, "Zero for failure on reads", has the
 * figures).  Only an fd that is not an eventfd can make a read that takes
 * something and still gives 0 (fewer than 8 bytes, or 8 zero bytes);
 * repeated, such a read reads on. */
uint64_t efx_take(int fd);

/* Like efx_read, but never blocks whatever the fd's mode (RWF_NOWAIT):
 * -EAGAIN when the count is zero. */
int efx_read_nowait(int fd, uint64_t *count);

/* efx_take that never blocks (RWF_NOWAIT): the count, or 0 when there is
 * none or the read failed; the caller repeats it with efx_read_nowait to
 * tell which. */
uint64_t efx_take_nowait(int fd);

/* write(2) of the 8-byte value: 0, or -errno. */
int efx_write(int fd, uint64_t value);

/* efx_write(fd, 1), the common signal: one argument makes it a METH_O
 * builtin, which skips the argument tuple cffi builds for two. */
int efx_signal(int fd);

/* poll(2) on one fd: the revents (0 on timeout), or -errno.
 * timeout_ms < 0 waits forever. */
int efx_poll(int fd, int events, int timeout_ms);

/* ---- EventFD: the eventfd behind the lifecycle core (owner.h) ---------
 * Every call enters and leaves the owner; -EFX_ECLOSED once closed.  No
 * call sleeps but efx_efd_poll, which close() wakes.  (A write that waits
 * for room at the counter's maximum on a blocking fd is the exception:
 * eventfd has no non-blocking write of its own; close() then closes the
 * fd only once that write returns.) */

/* New (efx_create's result) or adopted (fd then owned): 0, or -errno. */
int efx_efd_create(unsigned int initval, int flags, efx_owner_t **out);
int efx_efd_adopt(int fd, efx_owner_t **out);

/* The count, or 0 (none, closed, or failed): never blocks (RWF_NOWAIT). */
uint64_t efx_efd_take(efx_owner_t *o);
/* Never blocks: 0 with *count; 1 when empty and the fd is blocking (the
 * caller waits); -EAGAIN when empty and non-blocking; -errno. */
int efx_efd_read(efx_owner_t *o, uint64_t *count);
/* A read that waits, in one crossing: take the count into *count, sleeping
 * in poll(2) (close() wakes it) while it is zero.  1 with the count, 0 when
 * timeout_ms passed, -EINTR (the caller runs handlers and calls again with
 * the time left), -EAGAIN when timeout_ms < 0 and the fd is non-blocking
 * (with a timeout it waits whatever the mode), -errno. */
int efx_efd_wait_read(efx_owner_t *o, int timeout_ms, uint64_t *count);
/* write(2) of the value: 0, or -errno; efx_efd_signal writes 1. */
int efx_efd_write(efx_owner_t *o, uint64_t value);
int efx_efd_signal(efx_owner_t *o);
/* poll(2) for events until timeout_ms or close(): the revents, 0 on
 * timeout, -EINTR, -errno. */
int efx_efd_poll(efx_owner_t *o, int events, int timeout_ms);
/* A wait's steps, with the Doorbell's signatures (bell_owner.h), each
 * looking only (the caller then takes).  spin: yield, then look with
 * poll(0), until readable or min(spin_ns, limit_ns) passed: 1, 0 when
 * nothing came, -errno.  sleep: poll(POLLIN) until readable, timeout_ms
 * or close(): 1, 0 on timeout, -EINTR, -errno (spun_ns unused). */
int efx_efd_spin(efx_owner_t *o, int64_t spin_ns, int64_t limit_ns);
int efx_efd_sleep(efx_owner_t *o, int timeout_ms, int64_t spun_ns);
/* O_NONBLOCK of the fd (value < 0: read it): 0 or 1, or -errno. */
int efx_efd_nonblocking(efx_owner_t *o, int value);
