/* cffi cdef for the Doorbell (csrc/doorbell.c): an eventfd-like counter in
 * shared memory with a user-space fast path.  The shared layout itself is
 * csrc/doorbell_layout.h (plain C11, with _Atomic: not parseable by cffi);
 * to cffi a Doorbell handle is opaque.  The protocol is csrc/DOORBELL.md.
 *
 * Calling convention as in eventfd_shim.h: an int >= 0 or -errno, never
 * errno; 64-bit results through a pointer the caller allocates per call.
 *
 * A handle (struct efx_bell *) is private to one process: it holds the
 * mapping, the eventfd's number and the adaptive spin budget.  Threads may
 * share a handle.  The fds belong to the caller: the Doorbell functions
 * never close them, and the caller must keep them open until detach.
 *
 * timeout_ms: < 0 waits forever, 0 never blocks.
 * spin_ns: < 0 the handle's adaptive budget, 0 never spins, > 0 spins up
 * to that many nanoseconds (bounded by the timeout) before sleeping.
 */

#define EFX_BELL_SEMAPHORE ...
#define EFX_BELL_VERSION ...
#define EFX_BELL_SIZE ...
#define EFX_BELL_INFO_N ...

/* The handle, opaque to cffi: ffi.new("efx_bell_t **") for the out-pointer. */
typedef struct efx_bell efx_bell_t;

/* New Doorbell with count initval: a memfd (MFD_CLOEXEC) holding the
 * layout and an eventfd (EFD_CLOEXEC | EFD_NONBLOCK), both returned to the
 * caller, who owns them.  flags: 0 or EFX_BELL_SEMAPHORE (else -EINVAL).
 * 0, or -errno (nothing left open on failure). */
int efx_bell_create(unsigned int initval, int flags, int *memfd_out,
                    int *efd_out, struct efx_bell **bell_out);

/* Map an existing Doorbell (e.g. fds inherited or received by SCM_RIGHTS).
 * 0, or -EINVAL when the memfd is too small or its magic, version, size or
 * flags are not this build's, or -errno. */
int efx_bell_attach(int memfd, int efd, struct efx_bell **bell_out);

/* Unmap and free the handle (NULL: no-op).  The fds stay open.  A thread
 * still inside a call on the handle must have returned first.  0. */
int efx_bell_detach(struct efx_bell *bell);

/* Add n (one CAS).  0; -EINVAL for n == 2**64-1; -EAGAIN when the count
 * would pass 2**64-2 and timeout_ms == 0 or no read made room in time;
 * -EINTR on a signal while waiting for room (nothing added: retry);
 * -errno (e.g. -EBADF) when the wake-up write(eventfd) failed: the count
 * WAS added, but sleepers and pollers may not learn of it. */
int efx_bell_write(struct efx_bell *bell, uint64_t n, int timeout_ms);

/* Take without a syscall: the whole count (semaphore: 1) into *out.
 * 0, or -EAGAIN when the count is 0, or -errno from a wake-up ring (the
 * count WAS taken into *out). */
int efx_bell_take(struct efx_bell *bell, uint64_t *out);

/* The hot paths, one argument each (a METH_O builtin, no argument tuple):
 * efx_bell_take1 is efx_bell_take returning the count, or 0 when there is
 * none (a count is never 0; a failed wake-up ring after the take is not
 * reported: the caller that needs it uses efx_bell_take); efx_bell_signal
 * is efx_bell_write(bell, 1, 0) (-EAGAIN at the maximum: the caller then
 * waits as its mode says). */
uint64_t efx_bell_take1(struct efx_bell *bell);
int efx_bell_signal(struct efx_bell *bell);

/* Take, spinning then sleeping on the eventfd as needed.  1 with *out, 0
 * on timeout, -EINTR on a signal (call again with the time left), -EBADF
 * if the eventfd is closed, -errno. */
int efx_bell_wait_read(struct efx_bell *bell, int timeout_ms,
                       int64_t spin_ns, uint64_t *out);

/* Python's waits spin and sleep in two crossings, never one: a signal
 * that arrives while C spins runs its Python handler only once the call
 * returns, and a sleep begun after it would wait with the handler pending
 * (a Ctrl-C ignored, a handler's write never made).  C callers, which have
 * no such handlers, may use efx_bell_wait_read's spin_ns.
 *
 * efx_bell_spin: try, then spin (spin_ns as efx_bell_wait_read, bounded
 * by timeout_ms) without sleeping: 1 with *out (out NULL: only look), 0 if
 * nothing came, -errno.  efx_bell_spin_take: the same with no timeout,
 * returning the count or 0.  efx_bell_read: take, sleeping as
 * efx_bell_wait_read with no timeout and no spin, and return the count; 0
 * when the wait failed (EINTR, a closed eventfd) and took nothing: the
 * caller repeats through efx_bell_wait_read, which says why (efx_take's
 * convention).  One crossing each: a wrapper's ffi.new, closure and
 * timeout loop cost more than a yield on a shared CPU (~1.5 us a read). */
int efx_bell_spin(struct efx_bell *bell, int timeout_ms, int64_t spin_ns, uint64_t *out);
uint64_t efx_bell_spin_take(struct efx_bell *bell, int64_t spin_ns);
uint64_t efx_bell_read(struct efx_bell *bell);

/* Wait until the count is nonzero without taking it: 1, 0 on timeout,
 * -EINTR, -errno. */
int efx_bell_wait(struct efx_bell *bell, int timeout_ms, int64_t spin_ns);

/* Polling: between watch_enter and watch_exit every write rings the
 * eventfd, and watch_enter rings at once if a count is pending, so the
 * eventfd is readable whenever the count is nonzero.  Calls nest (a
 * counter).  0 or -errno. */
int efx_bell_watch_enter(struct efx_bell *bell);
int efx_bell_watch_exit(struct efx_bell *bell);

/* For a poller that saw the eventfd readable: take the token, then the
 * count.  0 with *out, -EAGAIN (spurious: poll again), -errno. */
int efx_bell_poll_take(struct efx_bell *bell, uint64_t *out);

/* Snapshot for tests: fills out[0 .. min(n, EFX_BELL_INFO_N)) with count,
 * sleepers, watchers, writers_waiting, rings, sleeps, spins_paid,
 * spins_failed, writer_waits, the handle's spin budget (ns), flags.
 * Returns the number filled. */
int efx_bell_info(struct efx_bell *bell, uint64_t *out, int n);

/* The wake-up eventfd's kernel id recorded in the page (0: none), and its
 * recording by the creator before the page is shared. */
uint64_t efx_bell_eventfd_id(struct efx_bell *bell);
int efx_bell_set_eventfd_id(struct efx_bell *bell, uint64_t id);

/* Any eventfd, no shared memory: non-blocking reads (RWF_NOWAIT) in a
 * spin loop for up to spin_ns (<= 0: no spin), then poll + read as
 * efx_wait_read.  Kernel semantics (semaphore mode reads 1).  1 with *out,
 * 0 on timeout, -errno (-EINTR: retry with the time left). */
int efx_spin_read(int fd, int timeout_ms, int64_t spin_ns, uint64_t *out);

/* EventFD's spin, in one crossing and without sleeping (see
 * efx_bell_spin for why): the count, or 0 when the fd is non-blocking and
 * empty, the spin found nothing, or the read failed; the caller then reads
 * as it would without a spin (efx_take, or a poll), which sleeps or says
 * why. */
uint64_t efx_spin_take(int fd, int64_t spin_ns);
