/* The Doorbell: an eventfd-like counter in shared memory, with the eventfd
 * kept only as the wake-up channel.  Declarations and the calling
 * convention are in doorbell.h, the shared layout in doorbell_layout.h, the
 * protocol and why each ordering is there in DOORBELL.md.
 *
 * This file is also the reference implementation for C peers: a C program
 * may #include it (everything is static) and then shares a Doorbell with
 * Python processes under the same rules (csrc/tests/bell_peer.c does).
 *
 * Every cross-process word is a C11 atomic in the memfd mapping.  The
 * lost wake-up is prevented by two store->load pairs, each with a full
 * (seq_cst) barrier between its store and its load:
 *   writer:  count += n      ; FENCE ; load sleepers/watchers -> ring?
 *   sleeper: sleepers++      ; FENCE ; load count           -> sleep?
 * and likewise for writers blocked at the maximum:
 *   taker:   count -= taken  ; FENCE ; load writers_waiting -> futex wake?
 *   writer:  writers_waiting++; FENCE ; load count          -> futex wait?
 * In each pair at least one side sees the other's store, so either the
 * waker wakes or the waiter does not sleep.  Everything else is relaxed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create, preadv2 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "doorbell_layout.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008 /* linux/fs.h; older libc headers lack it */
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

#define EFX_BELL_INFO_N 11

/* Adaptive spin policy (per handle): start at INIT; a spin that finds the
 * count raises the budget to twice what it took, and to at least PAID_MIN
 * (never above MAX, never lowered by a success); a spin that runs its whole
 * budget in vain halves it, and below MIN it is 0 (no spinning).  PAID_MIN
 * keeps a fast peer's first scheduling hiccup from ending the spinning: a
 * 0.3 us answer would otherwise give a 0.6 us budget, which one delayed
 * answer halves to nothing (measured: 10 us round trips instead of 0.5).  At 0, one wait in PROBE_EVERY
 * spins PROBE_NS anyway, so that a peer that became fast is noticed. */
#define EFX_BELL_SPIN_INIT_NS 20000
#define EFX_BELL_SPIN_MAX_NS 100000
#define EFX_BELL_SPIN_MIN_NS 1000
#define EFX_BELL_SPIN_PAID_MIN_NS 10000
#define EFX_BELL_SPIN_PROBE_NS 4000
#define EFX_BELL_SPIN_PROBE_EVERY 32
/* Spin turns between two sched_yield() (and clock reads): on a shared CPU
 * the yield is what lets the peer run and write. */
#define EFX_BELL_SPIN_TURNS 16

struct efx_bell {
    struct efx_bell_layout *shm; /* the memfd mapping */
    int efd;                     /* the wake-up eventfd (not owned) */
    _Atomic int64_t spin_budget; /* adaptive budget, ns (relaxed) */
    _Atomic uint32_t probe_tick;
};
typedef struct efx_bell efx_bell_t; /* the cdef's name for a handle */

static inline void efxb_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* The full barrier of every store->load pair (see the top of the file). */
#define EFXB_STORE_LOAD() atomic_thread_fence(memory_order_seq_cst)

static int64_t efxb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The deadline of a timeout: INT64_MAX for "forever". */
static int64_t efxb_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? INT64_MAX : efxb_now_ns() + (int64_t)timeout_ms * 1000000;
}

/* Milliseconds left before the deadline for poll(2), rounded up so that a
 * poll never returns before it: -1 forever, 0 when past. */
static int efxb_left_ms(int64_t deadline)
{
    if (deadline == INT64_MAX)
        return -1;
    int64_t left = deadline - efxb_now_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static int efxb_eventfd_read_nowait(int fd, uint64_t *value)
{
    struct iovec iov = {value, sizeof *value};
    ssize_t n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
    if (n == sizeof *value)
        return 0;
    return n < 0 ? -errno : -EINVAL;
}

/* Ring: one token into the eventfd.  EAGAIN (the eventfd's own count at
 * its maximum) still leaves it readable, so it is a success. */
static int efxb_ring(struct efx_bell *bell)
{
    uint64_t one = 1;
    atomic_fetch_add_explicit(&bell->shm->rings, 1, memory_order_relaxed);
    ssize_t n = write(bell->efd, &one, sizeof one);
    if (n == sizeof one || (n < 0 && errno == EAGAIN))
        return 0;
    return n < 0 ? -errno : -EINVAL;
}

/* Take the eventfd's token(s), if any.  0 or -errno (EAGAIN is 0). */
static int efxb_drain(struct efx_bell *bell)
{
    uint64_t tokens;
    int r = efxb_eventfd_read_nowait(bell->efd, &tokens);
    return r == -EAGAIN ? 0 : r;
}

static int efxb_futex(_Atomic uint32_t *word, int op, uint32_t val,
                      const struct timespec *timeout)
{
    /* FUTEX_WAIT/FUTEX_WAKE without FUTEX_PRIVATE_FLAG: the word is in a
     * MAP_SHARED mapping seen by other processes. */
    long r = syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
    return r < 0 ? -errno : (int)r;
}

/* ---- creation ------------------------------------------------------- */

static int efxb_map(int memfd, struct efx_bell_layout **shm)
{
    void *p = mmap(NULL, EFX_BELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *shm = p;
    return 0;
}

static int efxb_new_handle(struct efx_bell_layout *shm, int efd, struct efx_bell **out)
{
    struct efx_bell *bell = malloc(sizeof *bell);
    if (!bell)
        return -ENOMEM;
    bell->shm = shm;
    bell->efd = efd;
    atomic_init(&bell->spin_budget, EFX_BELL_SPIN_INIT_NS);
    atomic_init(&bell->probe_tick, 0);
    *out = bell;
    return 0;
}

static int efx_bell_create(unsigned int initval, int flags, int *memfd_out,
                           int *efd_out, struct efx_bell **bell_out)
{
    struct efx_bell_layout *shm = NULL;
    int err;
    if (flags & ~(int)EFX_BELL_SEMAPHORE)
        return -EINVAL;
    int memfd = memfd_create("eventfd_ext.doorbell", MFD_CLOEXEC);
    if (memfd < 0)
        return -errno;
    if (ftruncate(memfd, EFX_BELL_SIZE)) {
        err = -errno;
        goto close_memfd;
    }
    err = efxb_map(memfd, &shm);
    if (err)
        goto close_memfd;
    /* A fresh memfd is zero-filled: only the non-zero fields are set.  The
     * memfd is not yet shared, so plain stores are enough; whoever receives
     * it later does so through a syscall (fork, exec, SCM_RIGHTS). */
    shm->magic = EFX_BELL_MAGIC;
    shm->version = EFX_BELL_VERSION;
    shm->size = EFX_BELL_SIZE;
    shm->flags = (uint32_t)flags;
    atomic_store_explicit(&shm->count, initval, memory_order_relaxed);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        err = -errno;
        goto unmap;
    }
    err = efxb_new_handle(shm, efd, bell_out);
    if (err) {
        close(efd);
        goto unmap;
    }
    *memfd_out = memfd;
    *efd_out = efd;
    return 0;
unmap:
    munmap(shm, EFX_BELL_SIZE);
close_memfd:
    close(memfd);
    return err;
}

static int efx_bell_attach(int memfd, int efd, struct efx_bell **bell_out)
{
    struct efx_bell_layout *shm = NULL;
    struct stat st;
    if (fstat(memfd, &st))
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)EFX_BELL_SIZE)
        return -EINVAL; /* mapping past the end would SIGBUS */
    int err = efxb_map(memfd, &shm);
    if (err)
        return err;
    if (shm->magic != EFX_BELL_MAGIC || shm->version != EFX_BELL_VERSION ||
        shm->size != EFX_BELL_SIZE || (shm->flags & ~EFX_BELL_SEMAPHORE)) {
        munmap(shm, EFX_BELL_SIZE);
        return -EINVAL;
    }
    err = efxb_new_handle(shm, efd, bell_out);
    if (err)
        munmap(shm, EFX_BELL_SIZE);
    return err;
}

static int efx_bell_detach(struct efx_bell *bell)
{
    if (bell) {
        munmap(bell->shm, EFX_BELL_SIZE);
        free(bell);
    }
    return 0;
}

/* ---- write ---------------------------------------------------------- */

static int efx_bell_write(struct efx_bell *bell, uint64_t n, int timeout_ms)
{
    struct efx_bell_layout *shm = bell->shm;
    int64_t deadline = 0;
    if (n == UINT64_MAX)
        return -EINVAL; /* as eventfd's write */
    if (n == 0)
        return 0; /* adds nothing, so wakes nobody (an eventfd's write(0) leaves it unreadable) */
    uint64_t c = atomic_load_explicit(&shm->count, memory_order_relaxed);
    for (;;) {
        if (c <= EFX_BELL_MAX - n) {
            if (atomic_compare_exchange_weak_explicit(&shm->count, &c, c + n,
                    memory_order_seq_cst, memory_order_relaxed))
                break;
            continue;
        }
        /* Full: wait for a take to make room, like a blocking eventfd
         * write.  The futex value is read BEFORE announcing ourselves and
         * re-checking the count: a take that makes room after the re-check
         * bumps room_seq, and FUTEX_WAIT then returns at once. */
        if (timeout_ms == 0)
            return -EAGAIN;
        if (!deadline)
            deadline = efxb_deadline(timeout_ms);
        uint32_t seq = atomic_load_explicit(&shm->room_seq, memory_order_seq_cst);
        atomic_fetch_add_explicit(&shm->writers_waiting, 1, memory_order_seq_cst);
        EFXB_STORE_LOAD(); /* pairs with the taker's, after its CAS */
        c = atomic_load_explicit(&shm->count, memory_order_seq_cst);
        if (c <= EFX_BELL_MAX - n) {
            atomic_fetch_sub_explicit(&shm->writers_waiting, 1, memory_order_seq_cst);
            continue;
        }
        struct timespec ts, *tsp = NULL;
        if (deadline != INT64_MAX) {
            int64_t left = deadline - efxb_now_ns();
            if (left <= 0) {
                atomic_fetch_sub_explicit(&shm->writers_waiting, 1, memory_order_seq_cst);
                return -EAGAIN;
            }
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }
        atomic_fetch_add_explicit(&shm->writer_waits, 1, memory_order_relaxed);
        int r = efxb_futex(&shm->room_seq, FUTEX_WAIT, seq, tsp);
        atomic_fetch_sub_explicit(&shm->writers_waiting, 1, memory_order_seq_cst);
        if (r == -EINTR)
            return -EINTR; /* nothing added: the caller runs handlers, retries */
        if (r < 0 && r != -EAGAIN && r != -ETIMEDOUT)
            return r;
        c = atomic_load_explicit(&shm->count, memory_order_relaxed);
        /* a timeout is noticed at the next round, after one more try */
    }
    /* The writer's store->load pair.  The count is stored (CAS above); now
     * load who sleeps.  Without the barrier the load may be satisfied
     * before the CAS is visible to others: we would read sleepers == 0
     * while a reader, having stored sleepers = 1, reads the old count 0
     * and blocks in poll: the reader sleeps with a count pending, and in a
     * handshake nobody ever writes again (the lost wake-up). */
    EFXB_STORE_LOAD();
    if (atomic_load_explicit(&shm->sleepers, memory_order_seq_cst) ||
        atomic_load_explicit(&shm->watchers, memory_order_seq_cst))
        return efxb_ring(bell);
    return 0;
}

/* ---- take ----------------------------------------------------------- */

/* After a take that lowered the count from `was` to `left`: wake writers
 * blocked at the maximum, and ring if a count is left behind for someone
 * who sleeps or polls (a semaphore-mode poller that drained the token
 * would otherwise sleep on a count it cannot see). */
static int efxb_after_take(struct efx_bell *bell, uint64_t left)
{
    struct efx_bell_layout *shm = bell->shm;
    /* The taker's store->load pair (the count is stored; load who waits
     * for room): without it a writer that announced itself and re-read the
     * old, full count would sleep in FUTEX_WAIT while we skip the wake. */
    EFXB_STORE_LOAD();
    if (atomic_load_explicit(&shm->writers_waiting, memory_order_seq_cst)) {
        atomic_fetch_add_explicit(&shm->room_seq, 1, memory_order_seq_cst);
        efxb_futex(&shm->room_seq, FUTEX_WAKE, INT_MAX, NULL);
    }
    if (left && (atomic_load_explicit(&shm->sleepers, memory_order_seq_cst) ||
                 atomic_load_explicit(&shm->watchers, memory_order_seq_cst)))
        return efxb_ring(bell);
    return 0;
}

static int efx_bell_take(struct efx_bell *bell, uint64_t *out)
{
    struct efx_bell_layout *shm = bell->shm;
    int sem = shm->flags & EFX_BELL_SEMAPHORE;
    uint64_t c = atomic_load_explicit(&shm->count, memory_order_relaxed);
    uint64_t left;
    do {
        if (!c)
            return -EAGAIN;
        left = sem ? c - 1 : 0;
    } while (!atomic_compare_exchange_weak_explicit(&shm->count, &c, left,
                 memory_order_seq_cst, memory_order_relaxed));
    *out = sem ? 1 : c;
    return efxb_after_take(bell, left);
}

/* ---- waiting -------------------------------------------------------- */

/* One attempt of a wait: take into *out, or (out == NULL) only look.
 * 1 when it succeeded, 0 when the count is 0, -errno from a ring.
 * `drained`: we took a token for this count; when we leave the count
 * behind (out == NULL), pass the ring on to the other sleepers/pollers. */
static uint64_t efx_bell_take1(struct efx_bell *bell)
{
    uint64_t value = 0;
    return efx_bell_take(bell, &value) == -EAGAIN ? 0 : value;
}

static int efx_bell_signal(struct efx_bell *bell)
{
    return efx_bell_write(bell, 1, 0);
}

static int efxb_try(struct efx_bell *bell, uint64_t *out, int drained)
{
    struct efx_bell_layout *shm = bell->shm;
    if (out) {
        int r = efx_bell_take(bell, out);
        return r == -EAGAIN ? 0 : r < 0 ? r : 1;
    }
    if (!atomic_load_explicit(&shm->count, memory_order_seq_cst))
        return 0;
    if (drained) {
        EFXB_STORE_LOAD();
        if (atomic_load_explicit(&shm->sleepers, memory_order_seq_cst) ||
            atomic_load_explicit(&shm->watchers, memory_order_seq_cst)) {
            int r = efxb_ring(bell);
            if (r < 0)
                return r;
        }
    }
    return 1;
}

/* The spin budget for this wait, from the caller's spin_ns. */
static int64_t efxb_budget(struct efx_bell *bell, int64_t spin_ns)
{
    if (spin_ns >= 0)
        return spin_ns;
    int64_t b = atomic_load_explicit(&bell->spin_budget, memory_order_relaxed);
    if (b == 0 && atomic_fetch_add_explicit(&bell->probe_tick, 1, memory_order_relaxed)
                          % EFX_BELL_SPIN_PROBE_EVERY == EFX_BELL_SPIN_PROBE_EVERY - 1)
        b = EFX_BELL_SPIN_PROBE_NS;
    return b;
}

/* Spin up to budget ns (or the deadline) retrying efxb_try.  1 when it
 * paid, 0 when not, -errno.  Updates the adaptive budget if `adaptive`. */
static int efxb_spin(struct efx_bell *bell, uint64_t *out, int64_t budget,
                     int64_t deadline, int adaptive)
{
    struct efx_bell_layout *shm = bell->shm;
    int64_t start = efxb_now_ns();
    int64_t end = deadline - start < budget ? deadline : start + budget;
    for (;;) {
        for (int turn = 0; turn < EFX_BELL_SPIN_TURNS; turn++) {
            if (atomic_load_explicit(&shm->count, memory_order_relaxed)) {
                int r = efxb_try(bell, out, 0);
                if (r) {
                    if (r < 0)
                        return r;
                    atomic_fetch_add_explicit(&shm->spins_paid, 1, memory_order_relaxed);
                    if (adaptive) {
                        int64_t want = 2 * (efxb_now_ns() - start);
                        int64_t b = atomic_load_explicit(&bell->spin_budget, memory_order_relaxed);
                        if (want < EFX_BELL_SPIN_PAID_MIN_NS)
                            want = EFX_BELL_SPIN_PAID_MIN_NS;
                        if (want > EFX_BELL_SPIN_MAX_NS)
                            want = EFX_BELL_SPIN_MAX_NS;
                        if (want > b)
                            atomic_store_explicit(&bell->spin_budget, want, memory_order_relaxed);
                    }
                    return 1;
                }
            }
            efxb_cpu_relax();
        }
        /* Every 16 turns: look at the clock, then let a peer on this CPU
         * run (it may be the writer).  The count is checked again after
         * the yield, before giving up: what the peer wrote while we
         * yielded is found by the spin, not by the sleep path. */
        if (efxb_now_ns() >= end)
            break;
        sched_yield();
    }
    atomic_fetch_add_explicit(&shm->spins_failed, 1, memory_order_relaxed);
    if (adaptive && end == start + budget) { /* the whole budget, in vain */
        int64_t b = atomic_load_explicit(&bell->spin_budget, memory_order_relaxed) / 2;
        atomic_store_explicit(&bell->spin_budget, b < EFX_BELL_SPIN_MIN_NS ? 0 : b,
                              memory_order_relaxed);
    }
    return 0;
}

/* The wait of wait_read (out != NULL) and wait (out == NULL). */
/* The start of every wait: try, then (unless timeout_ms is 0) spin as
 * spin_ns says, until the deadline at most.  1, 0 (nothing yet), -errno. */
static int efxb_try_spin(struct efx_bell *bell, uint64_t *out, int timeout_ms,
                         int64_t spin_ns, int64_t deadline)
{
    int r = efxb_try(bell, out, 0);
    if (r || timeout_ms == 0)
        return r;
    int64_t budget = efxb_budget(bell, spin_ns);
    return budget > 0 ? efxb_spin(bell, out, budget, deadline, spin_ns < 0) : 0;
}

static int efxb_wait(struct efx_bell *bell, int timeout_ms, int64_t spin_ns, uint64_t *out)
{
    struct efx_bell_layout *shm = bell->shm;
    int64_t deadline = efxb_deadline(timeout_ms);
    int r = efxb_try_spin(bell, out, timeout_ms, spin_ns, deadline);
    if (r || timeout_ms == 0)
        return r;
    for (;;) {
        /* The sleeper's store->load pair: announce, then re-check.  Without
         * the barrier (or without the re-check) a write that lands between
         * our failed try and the announcement sees sleepers == 0 and does
         * not ring, and we block in poll with its count pending. */
        atomic_fetch_add_explicit(&shm->sleepers, 1, memory_order_seq_cst);
        EFXB_STORE_LOAD();
        if (atomic_load_explicit(&shm->count, memory_order_seq_cst)) {
            atomic_fetch_sub_explicit(&shm->sleepers, 1, memory_order_seq_cst);
            r = efxb_try(bell, out, 0);
            if (r)
                return r;
            continue; /* another reader took it: announce again */
        }
        int left = efxb_left_ms(deadline);
        if (left == 0) {
            atomic_fetch_sub_explicit(&shm->sleepers, 1, memory_order_seq_cst);
            return efxb_try(bell, out, 0);
        }
        atomic_fetch_add_explicit(&shm->sleeps, 1, memory_order_relaxed);
        struct pollfd pfd = {bell->efd, POLLIN, 0};
        int n = poll(&pfd, 1, left);
        if (n < 0)
            r = -errno;
        else if (n > 0 && (pfd.revents & POLLNVAL))
            r = -EBADF;
        else if (n > 0)
            /* The token FIRST, then the count.  Taking the count first
             * could swallow a token whose count arrives just after: that
             * count would then sit with an unreadable eventfd. */
            r = efxb_drain(bell);
        atomic_fetch_sub_explicit(&shm->sleepers, 1, memory_order_seq_cst);
        if (r < 0)
            return r; /* -EINTR included: sleepers is already back */
        r = efxb_try(bell, out, n > 0);
        if (r || n == 0)
            return r; /* taken, error, or timed out (after one last try) */
    }
}

static int efx_bell_wait_read(struct efx_bell *bell, int timeout_ms,
                              int64_t spin_ns, uint64_t *out)
{
    return efxb_wait(bell, timeout_ms, spin_ns, out);
}

static int efx_bell_wait(struct efx_bell *bell, int timeout_ms, int64_t spin_ns)
{
    return efxb_wait(bell, timeout_ms, spin_ns, NULL);
}

static int efx_bell_spin(struct efx_bell *bell, int timeout_ms, int64_t spin_ns, uint64_t *out)
{
    return efxb_try_spin(bell, out, timeout_ms, spin_ns, efxb_deadline(timeout_ms));
}

static uint64_t efx_bell_spin_take(struct efx_bell *bell, int64_t spin_ns)
{
    uint64_t value = 0;
    int r = efx_bell_spin(bell, -1, spin_ns, &value);
    return r == 1 || value ? value : 0; /* value with r < 0: see efx_bell_read */
}

static uint64_t efx_bell_read(struct efx_bell *bell)
{
    uint64_t value = 0;
    int r = efxb_wait(bell, -1, 0, &value);
    /* value != 0 with r < 0: taken, then the ring after the take failed;
     * the count is the caller's (as efx_bell_take1). */
    return r == 1 || value ? value : 0;
}

/* ---- polling -------------------------------------------------------- */

static int efx_bell_watch_enter(struct efx_bell *bell)
{
    struct efx_bell_layout *shm = bell->shm;
    /* A store->load pair with the writer's: either the writer sees the
     * watcher and rings, or we see its count and ring ourselves, so a count
     * pending at watch time makes the eventfd readable at once. */
    atomic_fetch_add_explicit(&shm->watchers, 1, memory_order_seq_cst);
    EFXB_STORE_LOAD();
    if (atomic_load_explicit(&shm->count, memory_order_seq_cst))
        return efxb_ring(bell);
    return 0;
}

static int efx_bell_watch_exit(struct efx_bell *bell)
{
    atomic_fetch_sub_explicit(&bell->shm->watchers, 1, memory_order_seq_cst);
    return 0;
}

static int efx_bell_poll_take(struct efx_bell *bell, uint64_t *out)
{
    int r = efxb_drain(bell); /* the token first: see efxb_wait */
    if (r < 0)
        return r;
    return efx_bell_take(bell, out);
}

static int efx_bell_info(struct efx_bell *bell, uint64_t *out, int n)
{
    struct efx_bell_layout *shm = bell->shm;
    uint64_t v[EFX_BELL_INFO_N] = {
        atomic_load(&shm->count),
        atomic_load(&shm->sleepers),
        atomic_load(&shm->watchers),
        atomic_load(&shm->writers_waiting),
        atomic_load_explicit(&shm->rings, memory_order_relaxed),
        atomic_load_explicit(&shm->sleeps, memory_order_relaxed),
        atomic_load_explicit(&shm->spins_paid, memory_order_relaxed),
        atomic_load_explicit(&shm->spins_failed, memory_order_relaxed),
        atomic_load_explicit(&shm->writer_waits, memory_order_relaxed),
        (uint64_t)atomic_load_explicit(&bell->spin_budget, memory_order_relaxed),
        shm->flags,
    };
    if (n > EFX_BELL_INFO_N)
        n = EFX_BELL_INFO_N;
    for (int i = 0; i < n; i++)
        out[i] = v[i];
    return n < 0 ? 0 : n;
}

static uint64_t efx_bell_eventfd_id(struct efx_bell *bell)
{
    return bell->shm->eventfd_id;
}

static int efx_bell_set_eventfd_id(struct efx_bell *bell, uint64_t id)
{
    bell->shm->eventfd_id = id; /* before sharing: a plain store (see create) */
    return 0;
}

/* ---- the spin for a plain eventfd ----------------------------------- */

/* Non-blocking reads until `end` (ns, monotonic): 1 with *out, 0 when the
 * time ran out, -errno.  One read, then a yield: the read is a syscall,
 * pacing enough without pause turns, and on a shared CPU only the yield
 * lets the writer run (16 reads between yields cost ~4x a sleep there). */
static int efxb_spin_fd(int fd, int64_t end, uint64_t *out)
{
    do {
        sched_yield();
        int r = efxb_eventfd_read_nowait(fd, out);
        if (r != -EAGAIN)
            return r ? r : 1;
    } while (efxb_now_ns() < end);
    return 0;
}

/* The spin's end: spin_ns from now, or the deadline if that is sooner. */
static int64_t efxb_spin_end(int64_t spin_ns, int64_t deadline)
{
    int64_t start = efxb_now_ns();
    return deadline - start < spin_ns ? deadline : start + spin_ns;
}

static int efx_spin_read(int fd, int timeout_ms, int64_t spin_ns, uint64_t *out)
{
    int r = efxb_eventfd_read_nowait(fd, out);
    if (r != -EAGAIN)
        return r ? r : 1;
    if (timeout_ms == 0)
        return 0;
    int64_t deadline = efxb_deadline(timeout_ms);
    if (spin_ns > 0) {
        r = efxb_spin_fd(fd, efxb_spin_end(spin_ns, deadline), out);
        if (r)
            return r;
    }
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int n = poll(&pfd, 1, efxb_left_ms(deadline));
        if (n < 0)
            return -errno;
        if (n > 0 && (pfd.revents & POLLNVAL))
            return -EBADF;
        r = efxb_eventfd_read_nowait(fd, out);
        if (r != -EAGAIN)
            return r ? r : 1;
        if (n == 0 || efxb_left_ms(deadline) == 0)
            return 0; /* timed out (a last read found nothing) */
        /* drained by another reader between poll and read: poll again */
    }
}

static uint64_t efx_spin_take(int fd, int64_t spin_ns)
{
    uint64_t value = 0;
    int r = efxb_eventfd_read_nowait(fd, &value);
    if (r != -EAGAIN)
        return r ? 0 : value;
    /* A non-blocking fd neither spins nor waits: the caller's read raises
     * BlockingIOError.  (The file's flag, as read(2) would see it.) */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_NONBLOCK))
        return 0;
    r = efxb_spin_fd(fd, efxb_spin_end(spin_ns, INT64_MAX), &value);
    return r > 0 ? value : 0;
}
