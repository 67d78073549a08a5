/* cffi cdef for the Doorbell object (csrc/bell_owner.c): the shared
 * counter of eventfd_ext/doorbell.h (the C API for C peers; its protocol
 * is docs/doorbell-protocol.md) behind the lifecycle core (owner.h).
 *
 * Conventions as in owner.h: >= 0, -errno, or -EFX_ECLOSED once closed.
 * Counting is exact: a take returns what it took; a write adds once or
 * not at all, and says which (see efx_db_write).
 *
 * timeout_ms: < 0 waits forever, 0 never blocks.  spin_ns: < 0 the
 * handle's adaptive budget, 0 no spin, > 0 that many nanoseconds.
 */

#define EFX_BELL_SEMAPHORE ...
#define EFX_BELL_INFO_N ...

/* A new Doorbell with count initval (flags: 0 or EFX_BELL_SEMAPHORE): its
 * memfd is sealed against shrinking and growing.  0, or -errno. */
int efx_db_create(unsigned int initval, int flags, efx_owner_t **out);

/* Adopt a Doorbell's fds (the object then owns them): -EINVAL when the
 * memfd is not a sealed Doorbell page of this build's layout, -EXDEV when
 * eventfd_id (its kernel id, 0: unknown) is not the one the page
 * recorded; the fds stay the caller's on failure. */
int efx_db_adopt(int memfd, int efd, uint64_t eventfd_id, efx_owner_t **out);
int efx_db_set_eventfd_id(efx_owner_t *o, uint64_t id);
/* The memfd, or -EFX_ECLOSED. */
int efx_db_memfd(efx_owner_t *o);

/* Take without a syscall: the count (semaphore: 1), or 0 when there is
 * none or the object is closed.  Inside watch(), the eventfd's token
 * first. */
uint64_t efx_db_take(efx_owner_t *o);

/* Add n: 0 added; -errno nothing added (-EINVAL for 2**64-1, -EAGAIN when
 * full and no room came in time, -EINTR on a signal while waiting for
 * room, -EFX_ECLOSED); a positive errno: added, but waking the sleepers
 * failed (never retry it).  efx_db_signal is efx_db_write(o, 1, 0). */
int efx_db_write(efx_owner_t *o, uint64_t n, int timeout_ms);
int efx_db_signal(efx_owner_t *o);

/* A wait's steps, each looking only (the caller then takes):
 * spin: up to the budget, never past limit_ns from now: 1 when a count is
 * pending, 0 when none came, -EFX_ECLOSED.
 * sleep: on the eventfd until a count is pending or timeout_ms passes: 1,
 * 0 on timeout, -EINTR, -EFX_ECLOSED, -errno.  spun_ns: what this wait
 * already spun, for the adaptive budget. */
int efx_db_spin(efx_owner_t *o, int64_t spin_ns, int64_t limit_ns);
int efx_db_sleep(efx_owner_t *o, int timeout_ms, int64_t spun_ns);

/* watch(): while a token is entered, every write rings the eventfd, and
 * entering rings at once if a count is pending.  Tokens come from
 * ffi.new_allocator(efx_db_watch_alloc, efx_db_watch_free): a token freed
 * without an exit exits then.  Exit is idempotent, and a no-op in a
 * forked child.  Enter: 0, -errno (entered even then), -EFX_ECLOSED. */
struct efxd_watch { ...; };
int efx_db_watch_enter(efx_owner_t *o, struct efxd_watch *token);
int efx_db_watch_exit(struct efxd_watch *token);
void *efx_db_watch_alloc(size_t size);
void efx_db_watch_free(void *token);

/* For an awaiter woken by the eventfd, which looks but does not take:
 * take the token, and ring again if a count is pending, for the other
 * pollers and sleepers.  1 if a token was taken, 0, -errno. */
int efx_db_drain_token(efx_owner_t *o);

/* Snapshot for tests: count, sleepers, watchers, writers_waiting, rings,
 * sleeps, spins_paid, spins_failed, writer_waits, the handle's spin
 * budget (ns), flags.  The number filled, or -EFX_ECLOSED. */
int efx_db_info(efx_owner_t *o, uint64_t *out, int n);
