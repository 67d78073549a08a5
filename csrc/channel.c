/* The Channel object: the ring of <eventfd_ext/channel.h> behind the
 * lifecycle core (owner.h), for the cffi module; its calls are declared in
 * channel.h beside this file.  Included after bell_owner.c (the Doorbell's
 * object, and the lifecycle core): the module's list puts it there.
 */
#include <eventfd_ext/channel.h>

#define EFX_CHAN_INFO_N 10

static int efxc_release(struct efx_owner *o, int close_fds)
{
    int err = 0;
    if (close_fds) {
        efxo_close_fd(o->fd2, &err);
        efxo_close_fd(o->fd, &err);
        efxo_close_fd(o->chan->space_efd, &err);
    }
    return err;
}

static void efxc_owner_wake(struct efx_owner *o)
{
    efxb_wake_writers(o->chan->space); /* senders asleep waiting for room */
}

static void efxc_owner_free(struct efx_owner *o)
{
    efx_chan_detach(o->chan);
}

static int efxc_fds(struct efx_owner *o, int *out)
{
    out[0] = o->chan->memfd; /* from_fds's order */
    out[1] = o->chan->data_efd;
    out[2] = o->chan->space_efd;
    return 3;
}

static const struct efxo_kind efxc_kind = {EFX_KIND_CHANNEL, efxc_release, efxc_owner_wake,
                                           efxc_owner_free, efxc_fds};

static int efxc_owner_new(struct efx_chan *ch, efx_owner_t **out)
{
    /* fileno() is data's eventfd: pollers wait for messages. */
    struct efx_owner *o = efxo_new(&efxc_kind, ch->data_efd, ch->memfd);
    if (!o)
        return -ENOMEM;
    o->chan = ch;
    o->bell = ch->data; /* so that the Doorbell's steps (efx_db_*) wait on data */
    *out = o;
    return 0;
}

static int efx_ch_create(uint64_t capacity, efx_owner_t **out)
{
    int fds[3];
    struct efx_chan *ch;
    int r = efx_chan_create(capacity, fds, &ch);
    if (r)
        return r;
    r = efxc_owner_new(ch, out);
    if (r) {
        efx_chan_detach(ch);
        for (int i = 0; i < 3; i++)
            close(fds[i]);
    }
    return r;
}

static int efx_ch_adopt(int memfd, int data_efd, int space_efd, uint64_t data_id,
                        uint64_t space_id, efx_owner_t **out)
{
    struct efx_chan *ch;
    int r = efx_chan_attach(memfd, data_efd, space_efd, &ch);
    if (r)
        return r;
    uint64_t want[2] = {ch->shm->data.eventfd_id, ch->shm->space.eventfd_id};
    if ((want[0] && data_id && want[0] != data_id) || (want[1] && space_id && want[1] != space_id)) {
        efx_chan_detach(ch);
        return -EXDEV; /* eventfds, but not this channel's */
    }
    r = efxc_owner_new(ch, out);
    if (r)
        efx_chan_detach(ch);
    return r;
}

static int efx_ch_set_eventfd_ids(efx_owner_t *o, uint64_t data_id, uint64_t space_id)
{
    o->chan->shm->data.eventfd_id = data_id; /* before sharing: plain stores */
    o->chan->shm->space.eventfd_id = space_id;
    return 0;
}

static uint64_t efx_ch_capacity(efx_owner_t *o)
{
    return o->chan ? o->chan->capacity : 0;
}

static int efx_ch_sendv(efx_owner_t *o, const struct efx_chan_part *parts, int nparts)
{
    uint64_t total = 0;
    for (int i = 0; i < nparts; i++)
        total += parts[i].len;
    int r = efxo_enter(o);
    if (r)
        return r;
    r = efxc_push(o->chan, parts, nparts, total);
    efxo_leave(o);
    return r;
}

static int efx_ch_send(efx_owner_t *o, const char *data, size_t len)
{
    struct efx_chan_part part = {data, len};
    return efx_ch_sendv(o, &part, 1);
}

static int64_t efx_ch_recv(efx_owner_t *o, char *buf, size_t size)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    /* Inside watch(), a poller may have been woken by the eventfd: its
     * token goes before the message, as the Doorbell's take does. */
    if (efxd_watching(o))
        efxb_drain(o->bell);
    int64_t n = efxc_pop(o->chan, buf, size);
    efxo_leave(o);
    return n;
}

static int efx_ch_shutdown(efx_owner_t *o)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    r = efxc_shutdown(o->chan);
    efxo_leave(o);
    return r;
}

static int efx_ch_wait_room(efx_owner_t *o, uint64_t n, int timeout_ms, int64_t spin_ns)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    struct efxb_cancel cancel = {efxd_cancelled, o, -1};
    r = efxd_result(efxc_wait_room(o->chan, n, timeout_ms, spin_ns, &cancel));
    efxo_leave(o);
    return r;
}

static int efx_ch_space_fd(efx_owner_t *o)
{
    return efxo_closed(o) ? -EFX_ECLOSED : o->chan->space_efd;
}

static int efx_ch_space_watch(efx_owner_t *o, int delta)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    struct efx_bell_layout *space = &o->chan->shm->space;
    if (delta > 0) {
        /* The watcher's store->load pair with efxc_wake_space: room that
         * is there already makes the fd readable at once. */
        atomic_fetch_add_explicit(&space->watchers, 1, memory_order_seq_cst);
        EFXB_STORE_LOAD();
        if (efxc_room(o->chan, EFX_CHAN_RECORD))
            efxb_ring(o->chan->space);
    } else {
        atomic_fetch_sub_explicit(&space->watchers, 1, memory_order_seq_cst);
    }
    efxo_leave(o);
    return 0;
}

static int efx_ch_space_drain(efx_owner_t *o)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    r = efxb_drain(o->chan->space);
    efxo_leave(o);
    return r;
}

static int efx_ch_info(efx_owner_t *o, uint64_t *out, int n)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    struct efx_chan_layout *shm = o->chan->shm;
    uint64_t v[EFX_CHAN_INFO_N] = {
        o->chan->capacity,
        atomic_load(&shm->head),
        atomic_load(&shm->tail),
        atomic_load(&shm->messages),
        atomic_load(&shm->flags),
        atomic_load(&shm->recoveries),
        atomic_load(&shm->data.count),
        atomic_load(&shm->space.writers_waiting),
        atomic_load(&shm->data.sleepers),
        atomic_load(&shm->space.watchers),
    };
    if (n > EFX_CHAN_INFO_N)
        n = EFX_CHAN_INFO_N;
    for (int i = 0; i < n; i++)
        out[i] = v[i];
    efxo_leave(o);
    return n < 0 ? 0 : n;
}
