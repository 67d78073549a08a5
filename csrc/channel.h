/* cffi cdef for the Channel object (csrc/channel.c): a bounded queue of
 * byte messages in one sealed memfd (layout, records and the C peers' API:
 * <eventfd_ext/channel.h>), behind the lifecycle core (owner.h).  Its handle's
 * Doorbell is the "data" page, so the Doorbell's wait steps and watch()
 * (efx_db_spin, efx_db_sleep, efx_db_watch_enter, efx_db_drain_token,
 * bell_owner.h) wait for messages on it.
 *
 * Conventions as in owner.h: >= 0, -errno, or -EFX_ECLOSED once closed.
 * A call that finds the ring's lock held past a slice (a stopped holder)
 * returns -EINTR: call again, after the signal handlers ran.
 */

#define EFX_CHAN_MIN_CAPACITY ...
#define EFX_CHAN_MAX_CAPACITY ...
#define EFX_CHAN_RECORD ...
#define EFX_CHAN_INFO_N ...

/* A part of a message: efx_ch_sendv gathers its parts into one record. */
struct efx_chan_part {
    const void *data;
    size_t len;
};

/* A new Channel with capacity ring bytes (a multiple of 8, within the
 * limits; -EINVAL otherwise).  0, or -errno. */
int efx_ch_create(uint64_t capacity, efx_owner_t **out);
/* Adopt a Channel's fds (memfd, data eventfd, space eventfd): -EINVAL when
 * the memfd is not a sealed Channel of this build's layout, -EXDEV when an
 * eventfd's kernel id (0: unknown) is not the one the page recorded; the
 * fds stay the caller's on failure. */
int efx_ch_adopt(int memfd, int data_efd, int space_efd, uint64_t data_id, uint64_t space_id,
                 efx_owner_t **out);
int efx_ch_set_eventfd_ids(efx_owner_t *o, uint64_t data_id, uint64_t space_id);
/* The ring's bytes, as mapped by this holder. */
uint64_t efx_ch_capacity(efx_owner_t *o);

/* Queue one message: 0; -EAGAIN no room now; -EPIPE shut down; -EMSGSIZE
 * it can never fit (nothing queued); -EINTR; -EFX_ECLOSED. */
int efx_ch_send(efx_owner_t *o, const char *data, size_t len);
int efx_ch_sendv(efx_owner_t *o, const struct efx_chan_part *parts, int nparts);
/* Take the oldest message into buf and return its length; a length above
 * size means it did not fit and stays queued (nothing copied).  -EAGAIN
 * empty; -EPIPE empty and shut down; -EINTR; -EFX_ECLOSED. */
int64_t efx_ch_recv(efx_owner_t *o, char *buf, size_t size);
/* End the stream for every holder (idempotent): 0, -EINTR, -EFX_ECLOSED. */
int efx_ch_shutdown(efx_owner_t *o);

/* Wait until an n-byte message fits, or the channel is shut down: spin
 * (spin_ns; < 0 the adaptive budget; at most 1 ms), then sleep up to
 * timeout_ms (< 0 no limit).  1 room, 0 none came, -EINTR, -EFX_ECLOSED. */
int efx_ch_wait_room(efx_owner_t *o, uint64_t n, int timeout_ms, int64_t spin_ns);

/* Pollers awaiting room: the space eventfd, readable after a receive while
 * watched (delta +1 enters, rings at once if there is room; -1 exits). */
int efx_ch_space_fd(efx_owner_t *o);
int efx_ch_space_watch(efx_owner_t *o, int delta);
/* Take the space eventfd's token: 0 or -errno. */
int efx_ch_space_drain(efx_owner_t *o);

/* Snapshot for tests: capacity, head, tail, messages, flags, recoveries,
 * data count, senders waiting for room, receivers asleep, space watchers.
 * The number filled, or -EFX_ECLOSED. */
int efx_ch_info(efx_owner_t *o, uint64_t *out, int n);
