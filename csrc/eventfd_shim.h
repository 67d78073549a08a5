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
 * short read or EOF: the fd is not an eventfd). */
int efx_read(int fd, uint64_t *count);

/* The hot read: the count, or 0 if the read failed (see above).  One
 * argument makes it a METH_O builtin, the cheapest cffi crossing: a count
 * returned through an ffi.new pointer would add ~400 ns to a ~700 ns
 * write+read pair, a struct returned by value ~200 ns (measured 2026-12-02).  Only an
 * fd that is not an eventfd can make a read that takes something and still
 * gives 0 (fewer than 8 bytes, or 8 zero bytes); repeated, such a read
 * reads on. */
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

/* Wait up to timeout_ms for the count to be nonzero, then take it into
 * *count with a non-blocking read, all in one crossing.  1 when a count was
 * taken, 0 on timeout, or -errno (-EINTR included: the caller runs signal
 * handlers and calls again with the time left; -EBADF for a closed fd).  A
 * count drained by another reader between poll and read sends it back to
 * poll, never into a blocking read. */
int efx_wait_read(int fd, int timeout_ms, uint64_t *count);
