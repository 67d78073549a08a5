/* cffi cdef for the eventfd shim (csrc/eventfd_shim.c).
 *
 * Calling convention, chosen for the cheapest cffi crossing: every function
 * takes plain integers and returns its result directly.  Functions that return
 * an int report failure as a negative errno; functions that return a counter
 * value report failure as EFX_FAILED with errno set (the value a successful
 * read can only return after a kernel-side overflow, which the caller tells
 * apart by errno == 0).  cffi releases the GIL around every call.
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

static const uint64_t EFX_FAILED;

/* eventfd2(initval, flags): the new fd, or -errno. */
int efx_create(unsigned int initval, int flags);

/* read(2) of the 8-byte counter: the count, or EFX_FAILED with errno set. */
uint64_t efx_read(int fd);

/* efx_read with 0 for failure: the count, or 0 with errno set (EINVAL for
 * a short read).  An eventfd's count is never read as 0, so the fast path
 * tests the result for zero, which Python does faster than comparing it
 * with EFX_FAILED, a three-digit int; 0 with errno 0 is a genuine 0, which
 * only an fd that is not an eventfd gives. */
uint64_t efx_take(int fd);

/* Like efx_read, but never blocks whatever the fd's mode (RWF_NOWAIT):
 * EAGAIN when the count is zero. */
uint64_t efx_read_nowait(int fd);

/* write(2) of the 8-byte value: 0, or -errno. */
int efx_write(int fd, uint64_t value);

/* efx_write(fd, 1), the common signal: one argument makes it a METH_O
 * builtin, which skips the argument tuple cffi builds for two. */
int efx_signal(int fd);

/* poll(2) on one fd: the revents (0 on timeout), or -errno.
 * timeout_ms < 0 waits forever. */
int efx_poll(int fd, int events, int timeout_ms);

/* Wait up to timeout_ms for the count to be nonzero, then take it with a
 * non-blocking read, all in one crossing.  Returns the count, 0 on timeout,
 * or EFX_FAILED with errno set (EINTR included: the caller runs signal
 * handlers and calls again with the time left).  A count drained by another
 * reader between poll and read sends it back to poll, never into a blocking
 * read. */
uint64_t efx_wait_read(int fd, int timeout_ms);
