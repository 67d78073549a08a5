/* The lifecycle core of every fd owner (EventFD, Doorbell, MaskFD): one
 * handle per object, through which every call that touches the object's
 * fds enters and leaves.  Declarations and the guarantees are in owner.h.
 *
 * The state word packs the closed and detached bits, the fork generation
 * the count belongs to, and the calls in flight:
 *
 *   bit 63 CLOSED   close() has begun: every later enter fails
 *   bit 62 DETACHED close() was detach(): the last leaver closes nothing
 *   bit 61 RELEASED the fds were released (closed, or given up)
 *   bits 32-60      the fork generation of the count below
 *   bits 0-31       calls in flight (close() counts itself as one)
 *
 * The real close(2) is made by whoever brings the count to 0 while CLOSED
 * is set, so a number this object had cannot be reused while one of its
 * calls still runs.  A forked child starts a new generation: the calls its
 * parent's other threads had in flight do not exist there, so the first
 * enter of a new generation restarts the count at 0.
 */
#ifndef EFX_OWNER_C
#define EFX_OWNER_C
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* -EFX_ECLOSED: the object is closed (Python raises ValueError).  Above
 * every errno, so that it never means anything else. */
#define EFX_ECLOSED 0x10000

#define EFX_KIND_EVENTFD 1
#define EFX_KIND_DOORBELL 2
#define EFX_KIND_MASKFD 3
#define EFX_KIND_CHANNEL 4

#define EFXO_CLOSED (UINT64_C(1) << 63)
#define EFXO_DETACHED (UINT64_C(1) << 62)
#define EFXO_RELEASED (UINT64_C(1) << 61)
#define EFXO_GEN_SHIFT 32
#define EFXO_GEN_MASK ((UINT64_C(1) << 29) - 1)
#define EFXO_CALLS_MASK UINT64_C(0xffffffff)
#define EFXO_FLAGS (EFXO_CLOSED | EFXO_DETACHED | EFXO_RELEASED)

struct efx_bell;
struct efx_chan;
struct mfx_handle;
struct efx_owner;

/* What differs between the kinds of owner, as data (one table a kind). */
struct efxo_kind {
    int kind;
    /* Close the fds (close_fds: 0 for detach()) once the last call left:
     * 0, or the -errno of the first close(2) that failed (all are made). */
    int (*release)(struct efx_owner *o, int close_fds);
    /* Wake what the wake fd cannot reach (the Doorbell's futex), at close. */
    void (*wake)(struct efx_owner *o);
    /* Free the kind's own memory, once nothing refers to the handle. */
    void (*free)(struct efx_owner *o);
    /* The fds that make the object, in from_fds's order, into out (room
     * for 3): how many.  Called inside a call (entered). */
    int (*fds)(struct efx_owner *o, int *out);
};

/* A call asleep in poll(2), listed in its owner so that close() can wake
 * it: the thread's own wake fd (one per thread, not per object). */
struct efxo_sleeper {
    int wake_fd;
    struct efxo_sleeper *next;
};

struct efx_owner {
    _Atomic uint64_t state;
    /* The sleepers list's lock: generation << 1 | held.  A list from
     * another generation is the parent's (its nodes live on threads this
     * child does not have): it counts as empty. */
    _Atomic uint64_t sleepers_lock;
    struct efxo_sleeper *sleepers;
    _Atomic int refs;      /* the Python object, plus one per watch token */
    /* The Doorbell's watch() calls of this process: generation << 32 | n. */
    _Atomic uint64_t watching;
    const struct efxo_kind *ops;
    int fd;                  /* fileno() */
    int fd2;                 /* Doorbell, Channel: the memfd; -1 otherwise */
    struct efx_bell *bell;   /* Doorbell, Channel */
    struct mfx_handle *mask; /* MaskFD only */
    struct efx_chan *chan;   /* Channel only (its bell: the data Doorbell) */
};
typedef struct efx_owner efx_owner_t; /* the cdef's name */

/* Bumped in every forked child (pthread_atfork), read on every enter. */
static _Atomic uint32_t efxo_fork_gen;

static void efxo_after_fork_in_child(void)
{
    atomic_fetch_add_explicit(&efxo_fork_gen, 1, memory_order_relaxed);
}

__attribute__((constructor)) static void efxo_register_fork_hook(void)
{
    pthread_atfork(NULL, NULL, efxo_after_fork_in_child);
}

static inline uint64_t efxo_gen(void)
{
    return atomic_load_explicit(&efxo_fork_gen, memory_order_relaxed) & EFXO_GEN_MASK;
}

static struct efx_owner *efxo_new(const struct efxo_kind *ops, int fd, int fd2)
{
    struct efx_owner *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    atomic_init(&o->state, efxo_gen() << EFXO_GEN_SHIFT);
    atomic_init(&o->sleepers_lock, efxo_gen() << 1);
    o->sleepers = NULL;
    atomic_init(&o->refs, 1);
    atomic_init(&o->watching, 0);
    o->ops = ops;
    o->fd = fd;
    o->fd2 = fd2;
    return o;
}

static int efxo_release(struct efx_owner *o, uint64_t state)
{
    /* Only the caller that brought the count to 0 with CLOSED set gets
     * here, once per generation; RELEASED makes it once for good. */
    uint64_t s = atomic_fetch_or_explicit(&o->state, EFXO_RELEASED, memory_order_acq_rel);
    if (s & EFXO_RELEASED)
        return 0;
    return o->ops->release(o, !(state & EFXO_DETACHED));
}

/* Leave a call: the last one out after close() releases the fds (0, or
 * the -errno of a failed close(2), which only close() reports). */
static int efxo_leave(struct efx_owner *o)
{
    uint64_t s = atomic_fetch_sub_explicit(&o->state, 1, memory_order_acq_rel);
    if ((s & EFXO_CALLS_MASK) == 1 && (s & EFXO_CLOSED))
        return efxo_release(o, s);
    return 0;
}

/* close(2), keeping the first failure in *err. */
static void efxo_close_fd(int fd, int *err)
{
    if (fd >= 0 && close(fd) && !*err && errno != EINTR) /* EINTR: closed anyway */
        *err = -errno;
}

/* Count one more call in flight, in this process's generation. */
static uint64_t efxo_count_in(struct efx_owner *o)
{
    uint64_t gen = efxo_gen();
    uint64_t s = atomic_load_explicit(&o->state, memory_order_relaxed);
    uint64_t n;
    do {
        if (((s >> EFXO_GEN_SHIFT) & EFXO_GEN_MASK) == gen)
            n = s + 1;
        else /* first call in a forked child: the parent's calls are not here */
            n = (s & EFXO_FLAGS) | (gen << EFXO_GEN_SHIFT) | 1;
    } while (!atomic_compare_exchange_weak_explicit(&o->state, &s, n, memory_order_seq_cst,
                                                    memory_order_relaxed));
    return n;
}

/* Enter a call: 0, or -EFX_ECLOSED (and nothing is held). */
static inline int efxo_enter(struct efx_owner *o)
{
    if (efxo_count_in(o) & EFXO_CLOSED) {
        efxo_leave(o);
        return -EFX_ECLOSED;
    }
    return 0;
}

static int efxo_closed(struct efx_owner *o)
{
    return (atomic_load_explicit(&o->state, memory_order_seq_cst) & EFXO_CLOSED) != 0;
}

/* Each thread's wake fd: an eventfd made on the thread's first sleep,
 * closed when it exits; a forked child makes its own (the parent's is
 * shared with it, and a wake meant for one would reach both). */
static __thread int efxo_thread_wake = -1;
static __thread uint64_t efxo_thread_wake_gen;
static pthread_key_t efxo_wake_key;
static pthread_once_t efxo_wake_once = PTHREAD_ONCE_INIT;

static void efxo_close_thread_wake(void *fd)
{
    close((int)(intptr_t)fd - 1);
}

static void efxo_make_wake_key(void)
{
    pthread_key_create(&efxo_wake_key, efxo_close_thread_wake);
}

static int efxo_wake_fd(void)
{
    if (efxo_thread_wake >= 0 && efxo_thread_wake_gen == efxo_gen())
        return efxo_thread_wake;
    pthread_once(&efxo_wake_once, efxo_make_wake_key);
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (efxo_thread_wake >= 0 && efxo_thread_wake_gen != efxo_gen())
        close(efxo_thread_wake); /* the copy a fork left this thread */
    efxo_thread_wake = fd;
    efxo_thread_wake_gen = efxo_gen();
    pthread_setspecific(efxo_wake_key, (void *)(intptr_t)(fd + 1));
    return fd;
}

static void efxo_lock_sleepers(struct efx_owner *o)
{
    uint64_t gen = efxo_gen();
    for (;;) {
        uint64_t s = atomic_load_explicit(&o->sleepers_lock, memory_order_relaxed);
        if ((s >> 1) != gen) { /* the parent's list: this child has none */
            if (atomic_compare_exchange_weak_explicit(&o->sleepers_lock, &s, gen << 1 | 1,
                                                      memory_order_acquire, memory_order_relaxed)) {
                o->sleepers = NULL;
                return;
            }
        } else if (!(s & 1) &&
                   atomic_compare_exchange_weak_explicit(&o->sleepers_lock, &s, s | 1,
                                                         memory_order_acquire,
                                                         memory_order_relaxed)) {
            return;
        } else {
            sched_yield(); /* held only for a few list operations */
        }
    }
}

static void efxo_unlock_sleepers(struct efx_owner *o)
{
    atomic_store_explicit(&o->sleepers_lock, efxo_gen() << 1, memory_order_release);
}

static void efxo_unlist(struct efx_owner *o, struct efxo_sleeper *me)
{
    efxo_lock_sleepers(o);
    for (struct efxo_sleeper **p = &o->sleepers; *p; p = &(*p)->next)
        if (*p == me) {
            *p = me->next;
            break;
        }
    efxo_unlock_sleepers(o);
}

/* List this thread as a sleeper of o: its wake fd, or -errno, or
 * -EFX_ECLOSED (then not listed: close() may have passed already). */
static int efxo_sleep_begin(struct efx_owner *o, struct efxo_sleeper *me)
{
    int w = efxo_wake_fd();
    if (w < 0)
        return w;
    me->wake_fd = w;
    efxo_lock_sleepers(o);
    me->next = o->sleepers;
    o->sleepers = me;
    efxo_unlock_sleepers(o);
    /* close() sets CLOSED, then walks the list under the lock: either it
     * finds us there, or we see CLOSED here. */
    if (efxo_closed(o)) {
        efxo_unlist(o, me);
        return -EFX_ECLOSED;
    }
    return w;
}

static void efxo_sleep_end(struct efx_owner *o, struct efxo_sleeper *me)
{
    efxo_unlist(o, me);
    /* A wake written for us is only written while we are listed: drain
     * it, so that the thread's next sleep (on any object) is not cut. */
    uint64_t token;
    while (read(me->wake_fd, &token, sizeof token) < 0 && errno == EINTR)
        ;
}

/* Wake every sleeper of the object (close() has set CLOSED). */
static void efxo_wake_all(struct efx_owner *o)
{
    efxo_lock_sleepers(o);
    for (struct efxo_sleeper *s = o->sleepers; s; s = s->next) {
        uint64_t one = 1;
        while (write(s->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    efxo_unlock_sleepers(o);
}

/* Sleep in poll(2) on fd for events, or until close(): the revents of fd
 * (> 0), 0 on timeout, -EFX_ECLOSED, -EINTR, -errno. */
static int efxo_poll(struct efx_owner *o, int fd, int events, int timeout_ms)
{
    if (timeout_ms == 0) { /* a look, not a sleep: no wake fd needed */
        struct pollfd pfd = {fd, (short)events, 0};
        int n = poll(&pfd, 1, 0);
        if (n < 0)
            return -errno;
        return n && (pfd.revents & POLLNVAL) ? -EBADF : n ? pfd.revents : 0;
    }
    struct efxo_sleeper me;
    int w = efxo_sleep_begin(o, &me);
    if (w < 0)
        return w;
    struct pollfd pfd[2] = {{fd, (short)events, 0}, {w, POLLIN, 0}};
    int n = poll(pfd, 2, timeout_ms);
    int err = errno;
    efxo_sleep_end(o, &me);
    if (n < 0)
        return -err;
    if (efxo_closed(o))
        return -EFX_ECLOSED;
    if (n && (pfd[0].revents & POLLNVAL))
        return -EBADF; /* closed behind the object's back */
    return n ? pfd[0].revents : 0;
}

/* ---- the calls every owner shares ------------------------------------ */

static int efx_owner_fd(struct efx_owner *o)
{
    return efxo_closed(o) ? -EFX_ECLOSED : o->fd;
}

static int efx_owner_closed(struct efx_owner *o)
{
    return efxo_closed(o);
}

static int efx_owner_close(struct efx_owner *o, int detach)
{
    efxo_count_in(o); /* close() is a call too: the fds stay until it leaves */
    uint64_t set = EFXO_CLOSED | (detach ? EFXO_DETACHED : 0);
    uint64_t s = atomic_fetch_or_explicit(&o->state, set, memory_order_seq_cst);
    if (s & EFXO_CLOSED) {
        efxo_leave(o);
        return -EFX_ECLOSED;
    }
    efxo_wake_all(o);
    if (o->ops->wake)
        o->ops->wake(o);
    return o->fd;
}

static int efx_owner_leave(struct efx_owner *o)
{
    return efxo_leave(o);
}

static int efx_owner_fds(struct efx_owner *o, int *out, int dup)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    int n = o->ops->fds(o, out);
    /* Duplicated inside the call, so that a close() racing it cannot
     * have the numbers go to other files first. */
    for (int i = 0; dup && i < n; i++) {
        int d = fcntl(out[i], F_DUPFD_CLOEXEC, 0);
        if (d < 0) {
            r = -errno;
            while (i--)
                close(out[i]);
            break;
        }
        out[i] = d;
    }
    efxo_leave(o);
    return r ? r : n;
}

/* Wait, up to timeout_ms, until the calls in flight other than the closer
 * itself have left (they were woken): so that once close() returns no call
 * of the object is left to close a number the caller may have reused.  0,
 * or -ETIMEDOUT (a call stuck where nothing wakes it: the documented EventFD
 * write at the maximum). */
static int efx_owner_settle(struct efx_owner *o, int timeout_ms)
{
    struct timespec nap = {0, 20000};
    int64_t naps = (int64_t)timeout_ms * 50;
    for (int64_t i = 0;; i++) {
        uint64_t s = atomic_load_explicit(&o->state, memory_order_acquire);
        if ((s & EFXO_CALLS_MASK) <= 1 ||
            ((s >> EFXO_GEN_SHIFT) & EFXO_GEN_MASK) != efxo_gen())
            return 0;
        if (i >= naps)
            return -ETIMEDOUT;
        nanosleep(&nap, NULL);
    }
}

static int efx_owner_fdinfo(struct efx_owner *o, char *buf, int size)
{
    int r = efxo_enter(o);
    if (r)
        return r;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", o->fd);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        r = errno == ENOENT ? -EBADF : -errno; /* closed behind the object's back */
    } else {
        ssize_t n;
        do
            n = read(f, buf, size > 0 ? (size_t)size - 1 : 0);
        while (n < 0 && errno == EINTR);
        r = n < 0 ? -errno : (int)n;
        if (n >= 0)
            buf[n] = 0;
        close(f);
    }
    efxo_leave(o);
    return r;
}

/* Drop one reference to the handle's memory; the last frees it. */
static void efxo_unref(struct efx_owner *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1) {
        if (o->ops->free)
            o->ops->free(o);
        free(o);
    }
}

/* The handle of an object whose own handle was freed (a finalized object
 * that was resurrected): closed and released for good, so that every call
 * says closed, and never freed. */
static int efxo_release_nothing(struct efx_owner *o, int close_fds)
{
    return 0;
}

static const struct efxo_kind efxo_dead_kind = {0, efxo_release_nothing, NULL, NULL, NULL};
static struct efx_owner efxo_dead = {
    .state = EFXO_CLOSED | EFXO_RELEASED, .ops = &efxo_dead_kind, .fd = -1, .fd2 = -1};

static efx_owner_t *efx_owner_dead(void)
{
    return &efxo_dead;
}

static int efx_owner_free(struct efx_owner *o)
{
    if (!o || o == &efxo_dead)
        return 0;
    /* The Python object is gone, so no call can be in flight: an object
     * never closed is released now (fds closed). */
    uint64_t s = atomic_fetch_or_explicit(&o->state, EFXO_CLOSED, memory_order_acq_rel);
    if (!(s & EFXO_RELEASED))
        efxo_release(o, s);
    efxo_unref(o);
    return 0;
}

#endif
