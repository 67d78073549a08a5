/* The Doorbell's C API, for C peers that share a Doorbell with Python
 * processes: an eventfd-like counter in shared memory with a user-space
 * fast path.  The shared layout is doorbell_layout.h, the protocol
 * csrc/DOORBELL.md; the implementation, doorbell.c, is all static: a C
 * peer #includes it (csrc/tests/bell_peer.c does).  Python's Doorbell
 * uses the same functions behind the lifecycle core (bell_owner.h).
 *
 * Calling convention as in eventfd_shim.h: an int >= 0 or -errno, never
 * errno.  A handle (struct efx_bell *) is private to one process: it holds
 * the mapping, the eventfd's number and the adaptive spin budget.  Threads
 * may share a handle.  The fds belong to the caller, who keeps them open
 * until detach.
 *
 * timeout_ms: < 0 waits forever, 0 never blocks.
 * spin_ns: < 0 the handle's adaptive budget, 0 never spins, > 0 spins up
 * to that many nanoseconds (bounded by the timeout) before sleeping.
 *
 * Counting is exact, at every caller: a take returns exactly what it took
 * (a failed wake-up ring after it is not reported, since the count is the
 * caller's); a write adds its value once or not at all, and its result
 * says which, so that no caller retries a write that added.
 */
#ifndef EFX_DOORBELL_H
#define EFX_DOORBELL_H

#include <stdint.h>

#include "doorbell_layout.h"

#define EFX_BELL_INFO_N 11

struct efx_bell;
typedef struct efx_bell efx_bell_t;

/* New Doorbell with count initval: a memfd (MFD_CLOEXEC, sealed against
 * shrinking and growing) holding the layout, and an eventfd (EFD_CLOEXEC
 * | EFD_NONBLOCK), both returned to the caller, who owns them.  flags: 0
 * or EFX_BELL_SEMAPHORE.  0, or -errno (nothing left open on failure). */
static int efx_bell_create(unsigned int initval, int flags, int *memfd_out, int *efd_out,
                           struct efx_bell **bell_out);

/* Map an existing Doorbell.  -EINVAL when the memfd is too small, not
 * sealed (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), or its magic,
 * version, size or flags are not this build's; else 0 or -errno. */
static int efx_bell_attach(int memfd, int efd, struct efx_bell **bell_out);

/* Unmap and free the handle (NULL: no-op); the fds stay open.  0. */
static int efx_bell_detach(struct efx_bell *bell);

/* Add n.  0: added.  -errno: nothing added (-EINVAL for 2**64-1; -EAGAIN
 * when the count would pass 2**64-2 and timeout_ms is 0 or no read made
 * room in time; -EINTR on a signal while waiting for room: retry).  A
 * positive errno: added, but the wake-up write(eventfd) failed, so
 * sleepers and pollers may not learn of it: never retry it. */
static int efx_bell_write(struct efx_bell *bell, uint64_t n, int timeout_ms);

/* Take without a syscall: the whole count (semaphore: 1) into *out.  0,
 * or -EAGAIN when the count is 0. */
static int efx_bell_take(struct efx_bell *bell, uint64_t *out);

/* For a poller that saw the eventfd readable: its token, then the count,
 * into *out.  0, or -EAGAIN (spurious: poll again). */
static int efx_bell_poll_take(struct efx_bell *bell, uint64_t *out);

/* Take (into *out), spinning then sleeping on the eventfd as needed: 1, 0
 * on timeout, -EINTR on a signal (call again with the time left), -EBADF
 * if the eventfd is closed, -errno. */
static int efx_bell_wait_read(struct efx_bell *bell, int timeout_ms, int64_t spin_ns,
                              uint64_t *out);

/* Wait until the count is nonzero without taking it: 1, 0 on timeout,
 * -EINTR, -errno. */
static int efx_bell_wait(struct efx_bell *bell, int timeout_ms, int64_t spin_ns);

/* Polling: between watch_enter and watch_exit every write rings the
 * eventfd, and watch_enter rings at once if a count is pending, so the
 * eventfd is readable whenever the count is nonzero.  Calls nest (a
 * counter).  0 or -errno (counted even then: exit it). */
static int efx_bell_watch_enter(struct efx_bell *bell);
static int efx_bell_watch_exit(struct efx_bell *bell);

/* Snapshot for tests: fills out[0 .. min(n, EFX_BELL_INFO_N)) with count,
 * sleepers, watchers, writers_waiting, rings, sleeps, spins_paid,
 * spins_failed, writer_waits, the handle's spin budget (ns), flags.
 * Returns the number filled. */
static int efx_bell_info(struct efx_bell *bell, uint64_t *out, int n);

/* The wake-up eventfd's kernel id recorded in the page (0: none), and its
 * recording by the creator before the page is shared. */
static uint64_t efx_bell_eventfd_id(struct efx_bell *bell);
static int efx_bell_set_eventfd_id(struct efx_bell *bell, uint64_t id);

#endif
