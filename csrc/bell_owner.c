/* The Doorbell object: the protocol of eventfd_ext/doorbell.h (the C
 * API shipped for C peers) behind the lifecycle core of owner.c.  Declarations and conventions are in bell_owner.h.
 *
 * Every function enters the owner, works, and leaves, in one crossing.
 * Waits are split in steps that each return to Python (take; spin, looking
 * only; sleep, looking only; take again), so that a signal handler runs
 * between them and a raising one leaves the count in the counter.
 */
#include "owner.c"
#include <eventfd_ext/doorbell.h>

struct efxd_watch {
    struct efx_owner *owner; /* NULL once exited */
    uint32_t generation;     /* the process (fork generation) that counted it */
};

static int efxd_release(struct efx_owner *o, int close_fds)
{
    int err = 0;
    if (close_fds) {
        efxo_close_fd(o->fd, &err);
        efxo_close_fd(o->fd2, &err);
    }
    return err;
}

static void efxd_wake(struct efx_owner *o)
{
    efxb_wake_writers(o->bell); /* a write waiting for room at the maximum */
}

static void efxd_free(struct efx_owner *o)
{
    efx_bell_detach(o->bell);
}

static int efxd_fds(struct efx_owner *o, int *out)
{
    out[0] = o->fd2; /* the memfd, then the eventfd: from_fds's order */
    out[1] = o->fd;
    return 2;
}

static const struct efxo_kind efxd_kind = {EFX_KIND_DOORBELL, efxd_release, efxd_wake, efxd_free,
                                           efxd_fds};

static int efxd_cancelled(void *o)
{
    return efxo_closed(o);
}

static int efxd_result(int r)
{
    return r == -ECANCELED ? -EFX_ECLOSED : r;
}

static int efxd_new(struct efx_bell *bell, int memfd, int efd, efx_owner_t **out)
{
    struct efx_owner *o = efxo_new(&efxd_kind, efd, memfd);
    if (!o)
        return -ENOMEM;
    o->bell = bell;
    *out = o;
    return 0;
}

static int efx_db_create(unsigned int initval, int flags, efx_owner_t **out)
{
    int memfd, efd;
    struct efx_bell *bell;
    int r = efx_bell_create(initval, flags, &memfd, &efd, &bell);
    if (r)
        return r;
    r = efxd_new(bell, memfd, efd, out);
    if (r) {
        efx_bell_detach(bell);
        close(memfd);
        close(efd);
    }
    return r;
}

static int efx_db_adopt(int memfd, int efd, uint64_t eventfd_id, efx_owner_t **out)
{
    struct efx_bell *bell;
    int r = efx_bell_attach(memfd, efd, &bell);
    if (r)
        return r;
    uint64_t recorded = efx_bell_eventfd_id(bell);
    if (recorded && eventfd_id && recorded != eventfd_id) {
        efx_bell_detach(bell);
        return -EXDEV; /* an eventfd, but not this page's */
    }
    /* Non-blocking, as efx_bell_create makes it: then its tokens are read
     * with read(2) on a kernel whose eventfds refuse RWF_NOWAIT (< 5.10).
     * The open file's flag, shared by every holder; no holder's Doorbell
     * reads it in a way that could block either way. */
    int fl = fcntl(efd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(efd, F_SETFL, fl | O_NONBLOCK))) {
        r = -errno;
        efx_bell_detach(bell);
        return r;
    }
    r = efxd_new(bell, memfd, efd, out);
    if (r)
        efx_bell_detach(bell);
    return r;
}

static int efx_db_set_eventfd_id(efx_owner_t *o, uint64_t id)
{
    return efx_bell_set_eventfd_id(o->bell, id);
}

static int efx_db_memfd(efx_owner_t *o)
{
    return efxo_closed(o) ? -EFX_ECLOSED : o->fd2;
}

/* The count of this process's watch() calls, if made in this process. */
static inline int efxd_watching(struct efx_owner *o)
{
    uint64_t w = atomic_load_explicit(&o->watching, memory_order_relaxed);
    return (w & 0xffffffffu) && (w >> 32) == efxo_gen();
}

static uint64_t efx_db_take(efx_owner_t *o)
{
    if (efxo_enter(o))
        return 0;
    /* Inside watch(), a poller may have been woken by the eventfd: its
     * token goes before the count, as efxb_sleep does. */
    uint64_t v = efxd_watching(o) ? efx_bell_poll_take(o->bell) : efx_bell_take(o->bell);
    efxo_leave(o);
    return v;
}

static int efx_db_write(efx_owner_t *o, uint64_t n, int timeout_ms)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    struct efxb_cancel cancel = {efxd_cancelled, o, -1};
    r = efxd_result(efxb_write(o->bell, n, timeout_ms, &cancel));
    efxo_leave(o);
    return r;
}

static int efx_db_signal(efx_owner_t *o)
{
    return efx_db_write(o, 1, 0);
}

static int efx_db_spin(efx_owner_t *o, int64_t spin_ns, int64_t limit_ns)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    struct efxb_cancel cancel = {efxd_cancelled, o, -1};
    r = efxd_result(efxb_spin(o->bell, spin_ns, limit_ns, &cancel));
    efxo_leave(o);
    return r;
}

static int efx_db_sleep(efx_owner_t *o, int timeout_ms, int64_t spun_ns)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    if (timeout_ms == 0) { /* a look, not a sleep */
        r = efxb_pending(o->bell);
        efxo_leave(o);
        return r;
    }
    struct efxo_sleeper me;
    int w = efxo_sleep_begin(o, &me);
    if (w >= 0) {
        struct efxb_cancel cancel = {efxd_cancelled, o, w};
        r = efxd_result(efxb_sleep(o->bell, efxb_deadline(timeout_ms), spun_ns, &cancel));
        efxo_sleep_end(o, &me);
    } else {
        r = w;
    }
    efxo_leave(o);
    return r;
}

static int efx_db_watch_enter(efx_owner_t *o, struct efxd_watch *token)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    uint32_t gen = (uint32_t)efxo_gen();
    uint64_t w = atomic_load_explicit(&o->watching, memory_order_relaxed), n;
    do /* a count from before a fork is the parent's: start again at 0 */
        n = (w >> 32) == gen ? w + 1 : ((uint64_t)gen << 32 | 1);
    while (!atomic_compare_exchange_weak_explicit(&o->watching, &w, n, memory_order_seq_cst,
                                                  memory_order_relaxed));
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    token->owner = o;
    token->generation = gen;
    r = efx_bell_watch_enter(o->bell); /* counted even when its ring fails */
    efxo_leave(o);
    return r < 0 ? r : 0;
}

/* Exit a watch: once per token, and only in the process that entered it
 * (a forked child's copy of a token is not a watcher of its own).  Also
 * after close: the shared watchers count must come down, or every
 * holder's write would ring for good.  0. */
static int efx_db_watch_exit(struct efxd_watch *token)
{
    struct efx_owner *o = token->owner;
    if (!o)
        return 0;
    token->owner = NULL;
    if (token->generation == (uint32_t)efxo_gen()) {
        uint64_t w = atomic_load_explicit(&o->watching, memory_order_relaxed), n;
        do
            n = (w >> 32) == token->generation && (w & 0xffffffffu) ? w - 1 : w;
        while (!atomic_compare_exchange_weak_explicit(&o->watching, &w, n, memory_order_seq_cst,
                                                      memory_order_relaxed));
        efx_bell_watch_exit(o->bell);
    }
    efxo_unref(o);
    return 0;
}

/* The token's allocator (ffi.new_allocator): a token dropped without an
 * exit, by an exception anywhere, exits as it is freed. */
static void *efx_db_watch_alloc(size_t size)
{
    return calloc(1, size);
}

static void efx_db_watch_free(void *token)
{
    efx_db_watch_exit(token);
    free(token);
}

static int efx_db_drain_token(efx_owner_t *o)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    uint64_t tokens;
    r = efxb_read_tokens(o->bell, &tokens);
    if (!r && efxb_pending(o->bell))
        efxb_ring(o->bell); /* the count stays: its token, for the others */
    efxo_leave(o);
    return r == -EAGAIN ? 0 : r ? r : 1;
}

static int efx_db_info(efx_owner_t *o, uint64_t *out, int n)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    r = efx_bell_info(o->bell, out, n);
    efxo_leave(o);
    return r;
}
