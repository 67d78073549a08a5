/* The Doorbell's C API: an eventfd-like 64-bit counter in shared memory
 * (a memfd mapped MAP_SHARED), with a user-space fast path and an eventfd
 * kept only to wake sleepers and pollers.  Header-only: every function is
 * static inline, so that a C program shares a Doorbell with Python
 * processes, and with other C peers, by including this file alone:
 *
 *     #define _GNU_SOURCE
 *     #include <eventfd_ext/doorbell.h>
 *
 *     cc -I"$(python -c 'import eventfd_ext; print(eventfd_ext.get_include())')" ...
 *
 * Python's Doorbell runs these same functions behind its lifecycle core.
 * The protocol, and the lost wake-up each ordering prevents, is
 * docs/doorbell-protocol.md.
 *
 * Calling convention: an int >= 0 or -errno, never errno; a *_take returns
 * the count it took, or 0.  A handle (efx_bell_t *) is private to one
 * process: it holds the mapping, the eventfd's number and the adaptive
 * spin budget.  Threads may share a handle.  The fds belong to the caller,
 * who keeps them open until detach.
 *
 * timeout_ms: < 0 waits forever, 0 never blocks.
 * spin_ns: < 0 the handle's adaptive budget, 0 never spins, > 0 spins up
 * to that many nanoseconds (bounded by the timeout) before sleeping.
 *
 * Counting is exact, at every caller: a take returns exactly what it took
 * (a failed wake-up ring after it is not reported, since the count is the
 * caller's); a write adds its value once or not at all, and its result
 * says which, so that no caller retries a write that added.
 *
 * Names starting efxb_ are the implementation's own steps: they may change
 * between versions.  The layout is versioned (EFX_BELL_VERSION).
 *
 * How no wake-up is lost: every cross-process word is a C11 atomic in the
 * mapping, and two store->load pairs each have a full (seq_cst) barrier
 * between the store and the load:
 *   writer:  count += n      ; FENCE ; load sleepers/watchers -> ring?
 *   sleeper: sleepers++      ; FENCE ; load count           -> sleep?
 * and likewise for writers blocked at the maximum:
 *   taker:   count -= taken  ; FENCE ; load writers_waiting -> futex wake?
 *   writer:  writers_waiting++; FENCE ; load count          -> futex wait?
 * In each pair at least one side sees the other's store, so either the
 * waker wakes or the waiter does not sleep.  Everything else is relaxed.
 */
#ifndef EVENTFD_EXT_DOORBELL_H
#define EVENTFD_EXT_DOORBELL_H

#include "eventfd_io.h" /* defines _GNU_SOURCE first: memfd_create, preadv2 */

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* ---- the shared layout ---------------------------------------------- *
 *
 * Fixed-size (EFX_BELL_SIZE bytes), in the host's byte order (peers share
 * one machine), and versioned: a peer refuses a mapping whose magic,
 * version or size differ from its own.  Any change to the meaning or
 * position of a field bumps EFX_BELL_VERSION. */

#define EFX_BELL_MAGIC UINT64_C(0x314c4c4542584645) /* "EFXBELL1" little endian */
#define EFX_BELL_VERSION 1u
#define EFX_BELL_SIZE 256u
/* flags */
#define EFX_BELL_SEMAPHORE 0x1u /* a take takes 1, not the whole count */
/* The largest count, as eventfd's: 2**64 - 2. */
#define EFX_BELL_MAX UINT64_C(0xfffffffffffffffe)

#define EFX_BELL_LINE 64

struct efx_bell_layout {
    /* Line 0: identity, written once by the creator before the memfd is
     * handed to anyone, read-only afterwards. */
    uint64_t magic;      /* EFX_BELL_MAGIC */
    uint32_t version;    /* EFX_BELL_VERSION */
    uint32_t size;       /* EFX_BELL_SIZE == sizeof(struct efx_bell_layout) */
    uint32_t flags;      /* EFX_BELL_SEMAPHORE or 0 */
    uint32_t reserved0;  /* 0 */
    /* The kernel's eventfd-id (/proc/self/fdinfo) of the wake-up eventfd,
     * so that an adopter can refuse another eventfd beside this page; 0:
     * not recorded (a creator that does not know it). */
    uint64_t eventfd_id;
    uint8_t pad0[EFX_BELL_LINE - 32];

    /* Line 1: the counter alone, so that the hot CAS does not share its
     * line with the words that sleepers and pollers write. */
    _Atomic uint64_t count; /* 0 .. EFX_BELL_MAX */
    uint8_t pad1[EFX_BELL_LINE - 8];

    /* Line 2: who must be woken. */
    _Atomic uint32_t sleepers;  /* readers blocked, or about to block, in
                                 * poll(eventfd) inside wait/wait_read */
    _Atomic uint32_t watchers;  /* pollers between watch_enter and
                                 * watch_exit: every write rings */
    _Atomic uint32_t writers_waiting; /* writers blocked at EFX_BELL_MAX */
    _Atomic uint32_t room_seq;  /* futex word (shared, not private): bumped
                                 * by a take that makes room while
                                 * writers_waiting > 0 */
    uint8_t pad2[EFX_BELL_LINE - 16];

    /* Line 3: statistics, relaxed, for tests and tuning only.  None is on
     * the syscall-free path except spins_paid. */
    _Atomic uint64_t rings;        /* write(eventfd) done by any peer */
    _Atomic uint64_t sleeps;       /* poll(eventfd) entered by a sleeper */
    _Atomic uint64_t spins_paid;   /* spins that found the count */
    _Atomic uint64_t spins_failed; /* spins that ended in a sleep/timeout */
    _Atomic uint64_t writer_waits; /* futex waits of writers at the max */
    uint8_t pad3[EFX_BELL_LINE - 40];
};

_Static_assert(sizeof(_Atomic uint64_t) == 8, "8-byte atomics");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "shared-memory atomics must be lock-free");
_Static_assert(sizeof(struct efx_bell_layout) == EFX_BELL_SIZE, "fixed size");
_Static_assert(offsetof(struct efx_bell_layout, count) == 64, "count at 64");
_Static_assert(offsetof(struct efx_bell_layout, sleepers) == 128, "sleepers at 128");
_Static_assert(offsetof(struct efx_bell_layout, watchers) == 132, "watchers at 132");
_Static_assert(offsetof(struct efx_bell_layout, writers_waiting) == 136, "at 136");
_Static_assert(offsetof(struct efx_bell_layout, room_seq) == 140, "room_seq at 140");
_Static_assert(offsetof(struct efx_bell_layout, rings) == 192, "stats at 192");

#define EFX_BELL_INFO_N 11

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS /* linux/fcntl.h; older libc headers lack them */
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#endif
/* Every Doorbell page carries these seals, and attach refuses one without. */
#define EFX_BELL_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW)

/* Adaptive spin policy (per handle).  Each wait that had to go past the
 * first look tells how long the count took to come: the spin's own time
 * when it found it, or the spin's budget plus the sleep when it slept.
 * A wait that ended within EFX_BELL_SPIN_MAX_NS sets the budget to twice
 * it (at least PAID_MIN): spinning that long would have found the count,
 * and a fast peer that was delayed once is not given up on.  A longer wait
 * halves the budget, and below MIN it is 0.  Judging by the whole wait,
 * not only by failed spins, is what keeps two adaptive peers from
 * collapsing together: when both sleep, each answer comes after a wake-up
 * (tens of microseconds, within MAX), so both start spinning again at
 * once, where judging failed spins alone left both asleep for good. */
#define EFX_BELL_SPIN_INIT_NS 20000
#define EFX_BELL_SPIN_MAX_NS 100000
#define EFX_BELL_SPIN_MIN_NS 1000
#define EFX_BELL_SPIN_PAID_MIN_NS 10000
/* Spin turns between two sched_yield() (and clock reads): on a shared CPU
 * the yield is what lets the peer run and write. */
#define EFX_BELL_SPIN_TURNS 16
/* The longest a sleeper sleeps before it looks at the count again.  A
 * count's wake-up is one token in the eventfd, which the woken sleeper
 * takes and passes on; a sleeper SIGKILLed between the two takes it to its
 * grave, and without the look the others would sleep through the count. */
#define EFX_BELL_RECHECK_MS 100

typedef struct efx_bell efx_bell_t;

struct efx_bell {
    struct efx_bell_layout *shm; /* the memfd mapping */
    int efd;                     /* the wake-up eventfd (not owned) */
    _Atomic int64_t spin_budget; /* adaptive budget, ns (relaxed) */
};

/* How a wait ends early (NULL: never): the caller's test, checked while
 * spinning and before sleeping, and its wake fd, polled beside the
 * eventfd.  A wait that ends so returns -ECANCELED. */
struct efxb_cancel {
    int (*cancelled)(void *ctx);
    void *ctx;
    int wake_fd;
};

static inline int efxb_cancelled(const struct efxb_cancel *cancel)
{
    return cancel && cancel->cancelled(cancel->ctx);
}

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

/* The deadline of a timeout: INT64_MAX for "forever". */
static inline int64_t efxb_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? INT64_MAX : efx_now_ns() + (int64_t)timeout_ms * 1000000;
}

/* Milliseconds left before the deadline for poll(2), rounded up so that a
 * poll never returns before it: -1 forever, 0 when past. */
/* A futex sleep's timeout: the time left until deadline, at most
 * EFX_BELL_RECHECK_MS (a waker SIGKILLed before its wake must not leave
 * the sleeper asleep for good; the caller looks again after each). */
static inline struct timespec efxb_futex_slice(int64_t deadline)
{
    int64_t slice = (int64_t)EFX_BELL_RECHECK_MS * 1000000;
    if (deadline != INT64_MAX) {
        int64_t left = deadline - efx_now_ns();
        if (left < slice)
            slice = left > 0 ? left : 0;
    }
    struct timespec ts = {(time_t)(slice / 1000000000), (long)(slice % 1000000000)};
    return ts;
}

static inline int efxb_left_ms(int64_t deadline)
{
    if (deadline == INT64_MAX)
        return -1;
    int64_t left = deadline - efx_now_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* Ring: one token into the eventfd.  EAGAIN (the eventfd's own count at
 * its maximum) still leaves it readable, so it is a success. */
static inline int efxb_ring(struct efx_bell *bell)
{
    atomic_fetch_add_explicit(&bell->shm->rings, 1, memory_order_relaxed);
    int r = efx_write(bell->efd, 1);
    return r == -EAGAIN ? 0 : r;
}

/* Read the eventfd's token(s) without blocking: 0, -EAGAIN when there
 * are none, or -errno.  preadv2(RWF_NOWAIT) never blocks whatever the fd's
 * mode, but eventfds accept it only since Linux 5.10; before, it gives
 * -EOPNOTSUPP, and an O_NONBLOCK eventfd (as efx_bell_create makes it) is
 * read with read(2), which never blocks either.  -EOPNOTSUPP stays for a
 * blocking one, whose read(2) could block. */
static inline int efxb_read_tokens(struct efx_bell *bell, uint64_t *tokens)
{
    int r = efx_read_nowait(bell->efd, tokens);
    if (r == -EOPNOTSUPP) {
        int fl = fcntl(bell->efd, F_GETFL);
        if (fl >= 0 && (fl & O_NONBLOCK))
            r = efx_read(bell->efd, tokens);
    }
    return r;
}

/* Take the eventfd's token(s), if any.  0 or -errno (EAGAIN is 0). */
static inline int efxb_drain(struct efx_bell *bell)
{
    uint64_t tokens;
    int r = efxb_read_tokens(bell, &tokens);
    return r == -EAGAIN ? 0 : r;
}

static inline int efxb_futex(_Atomic uint32_t *word, int op, uint32_t val,
                             const struct timespec *timeout)
{
    /* FUTEX_WAIT/FUTEX_WAKE without FUTEX_PRIVATE_FLAG: the word is in a
     * MAP_SHARED mapping seen by other processes. */
    long r = syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
    return r < 0 ? -errno : (int)r;
}

/* ---- creation ------------------------------------------------------- */

static inline int efxb_map(int memfd, struct efx_bell_layout **shm)
{
    void *p = mmap(NULL, EFX_BELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *shm = p;
    return 0;
}

static inline int efxb_new_handle(struct efx_bell_layout *shm, int efd, struct efx_bell **out)
{
    struct efx_bell *bell = malloc(sizeof *bell);
    if (!bell)
        return -ENOMEM;
    bell->shm = shm;
    bell->efd = efd;
    atomic_init(&bell->spin_budget, EFX_BELL_SPIN_INIT_NS);
    *out = bell;
    return 0;
}

/* New Doorbell with count initval: a memfd (MFD_CLOEXEC, sealed against
 * shrinking and growing) holding the layout, and an eventfd (EFD_CLOEXEC
 * | EFD_NONBLOCK), both returned to the caller, who owns them.  flags: 0
 * or EFX_BELL_SEMAPHORE.  0, or -errno (nothing left open on failure). */
static inline int efx_bell_create(unsigned int initval, int flags, int *memfd_out,
                                  int *efd_out, struct efx_bell **bell_out)
{
    struct efx_bell_layout *shm = NULL;
    int err;
    *bell_out = NULL; /* NULL on failure, as efx_bell_attach */
    if (flags & ~(int)EFX_BELL_SEMAPHORE)
        return -EINVAL;
    int memfd = memfd_create("eventfd_ext.doorbell", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0)
        return -errno;
    /* Sealed at its size for good: a holder that could shrink it would
     * make every other holder's next access die of SIGBUS. */
    if (ftruncate(memfd, EFX_BELL_SIZE) || fcntl(memfd, F_ADD_SEALS, EFX_BELL_SEALS)) {
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

/* Map an existing Doorbell.  -EINVAL when the memfd is too small, not
 * sealed (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), or its magic,
 * version, size or flags are not this header's; else 0 or -errno
 * (*bell_out then NULL). */
static inline int efx_bell_attach(int memfd, int efd, struct efx_bell **bell_out)
{
    struct efx_bell_layout *shm = NULL;
    struct stat st;
    /* NULL on failure: a -errno (fstat's errno) is not provably non-zero
     * to gcc, whose -Wmaybe-uninitialized would flag the caller's handle. */
    *bell_out = NULL;
    if (fstat(memfd, &st))
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)EFX_BELL_SIZE)
        return -EINVAL; /* mapping past the end would SIGBUS */
    /* Unsealed, any holder could shrink it under us (SIGBUS). */
    int seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0 || (seals & EFX_BELL_SEALS) != EFX_BELL_SEALS)
        return -EINVAL;
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

/* Unmap and free the handle (NULL: no-op); the fds stay open.  0. */
static inline int efx_bell_detach(struct efx_bell *bell)
{
    if (bell) {
        munmap(bell->shm, EFX_BELL_SIZE);
        free(bell);
    }
    return 0;
}

/* ---- write ---------------------------------------------------------- */

/* Counting is exact: a write adds its value once or not at all, and says
 * which.  0: added.  -errno: nothing added (-EINVAL for 2**64-1; -EAGAIN
 * when full and timeout_ms is 0 or no read made room in time; -EINTR on a
 * signal while waiting for room; -ECANCELED when `cancel` ended the wait).
 * A positive errno: added, but the wake-up ring failed (e.g. EBADF), so
 * sleepers may not learn of it; never retry such a write. */
static inline int efxb_write(struct efx_bell *bell, uint64_t n, int timeout_ms,
                             const struct efxb_cancel *cancel)
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
         * re-checking the count (and the cancel test): a take that makes
         * room, or a close, after the re-check bumps room_seq, and
         * FUTEX_WAIT then returns at once. */
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
        int64_t left = deadline == INT64_MAX ? 1 : deadline - efx_now_ns();
        if (left <= 0 || efxb_cancelled(cancel)) {
            atomic_fetch_sub_explicit(&shm->writers_waiting, 1, memory_order_seq_cst);
            return left <= 0 ? -EAGAIN : -ECANCELED;
        }
        struct timespec ts = efxb_futex_slice(deadline);
        atomic_fetch_add_explicit(&shm->writer_waits, 1, memory_order_relaxed);
        int r = efxb_futex(&shm->room_seq, FUTEX_WAIT, seq, &ts);
        atomic_fetch_sub_explicit(&shm->writers_waiting, 1, memory_order_seq_cst);
        if (r == -EINTR)
            return -EINTR; /* nothing added: the caller runs handlers, retries */
        if (r < 0 && r != -EAGAIN && r != -ETIMEDOUT)
            return r;
        c = atomic_load_explicit(&shm->count, memory_order_relaxed);
        /* a timeout or a cancel is noticed at the next round, after one more try */
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
        return -efxb_ring(bell); /* added: a failed ring is a positive errno */
    return 0;
}

/* Add n.  0: added.  -errno: nothing added (-EINVAL for 2**64-1; -EAGAIN
 * when the count would pass 2**64-2 and timeout_ms is 0 or no read made
 * room in time; -EINTR on a signal while waiting for room: retry).  A
 * positive errno: added, but the wake-up write(eventfd) failed, so
 * sleepers and pollers may not learn of it: never retry it. */
static inline int efx_bell_write(struct efx_bell *bell, uint64_t n, int timeout_ms)
{
    return efxb_write(bell, n, timeout_ms, NULL);
}

/* Wake every writer waiting for room: a take that made room, or a close
 * that ends their waits. */
static inline void efxb_wake_writers(struct efx_bell *bell)
{
    struct efx_bell_layout *shm = bell->shm;
    atomic_fetch_add_explicit(&shm->room_seq, 1, memory_order_seq_cst);
    efxb_futex(&shm->room_seq, FUTEX_WAKE, INT_MAX, NULL);
}

/* ---- take ----------------------------------------------------------- */

/* After a take that lowered the count to `left`: wake writers blocked at
 * the maximum, and ring if a count is left behind for someone who sleeps
 * or polls (a semaphore-mode poller that drained the token would
 * otherwise sleep on a count it cannot see).  A failed ring is not
 * reported: the take is done, and its count is the caller's. */
static inline void efxb_after_take(struct efx_bell *bell, uint64_t left)
{
    struct efx_bell_layout *shm = bell->shm;
    /* The taker's store->load pair (the count is stored; load who waits
     * for room): without it a writer that announced itself and re-read the
     * old, full count would sleep in FUTEX_WAIT while we skip the wake. */
    EFXB_STORE_LOAD();
    if (atomic_load_explicit(&shm->writers_waiting, memory_order_seq_cst))
        efxb_wake_writers(bell);
    if (left && (atomic_load_explicit(&shm->sleepers, memory_order_seq_cst) ||
                 atomic_load_explicit(&shm->watchers, memory_order_seq_cst)))
        efxb_ring(bell);
}

/* Take without a syscall: the whole count (semaphore: 1), or 0 when there
 * is none.  Exactly once: a count taken is always returned. */
static inline uint64_t efx_bell_take(struct efx_bell *bell)
{
    struct efx_bell_layout *shm = bell->shm;
    int sem = shm->flags & EFX_BELL_SEMAPHORE;
    uint64_t c = atomic_load_explicit(&shm->count, memory_order_relaxed);
    uint64_t left;
    do {
        if (!c)
            return 0;
        left = sem ? c - 1 : 0;
    } while (!atomic_compare_exchange_weak_explicit(&shm->count, &c, left,
                 memory_order_seq_cst, memory_order_relaxed));
    efxb_after_take(bell, left);
    return sem ? 1 : c;
}

/* For a poller that saw the eventfd readable: its token first, then the
 * count (see efxb_sleep).  The count, or 0 (spurious: poll again). */
static inline uint64_t efx_bell_poll_take(struct efx_bell *bell)
{
    efxb_drain(bell);
    return efx_bell_take(bell);
}

/* ---- waiting -------------------------------------------------------- */

static inline int efxb_pending(struct efx_bell *bell)
{
    return atomic_load_explicit(&bell->shm->count, memory_order_seq_cst) != 0;
}

/* The adaptive budget after a wait whose count came after `waited` ns. */
static inline void efxb_adapt(struct efx_bell *bell, int64_t waited)
{
    int64_t b;
    if (waited <= EFX_BELL_SPIN_MAX_NS) {
        b = 2 * waited;
        if (b < EFX_BELL_SPIN_PAID_MIN_NS)
            b = EFX_BELL_SPIN_PAID_MIN_NS;
        if (b > EFX_BELL_SPIN_MAX_NS)
            b = EFX_BELL_SPIN_MAX_NS;
    } else {
        b = atomic_load_explicit(&bell->spin_budget, memory_order_relaxed) / 2;
        if (b < EFX_BELL_SPIN_MIN_NS)
            b = 0;
    }
    atomic_store_explicit(&bell->spin_budget, b, memory_order_relaxed);
}

/* The spin budget of a wait: spin_ns, or the adaptive one if < 0. */
static inline int64_t efxb_budget(struct efx_bell *bell, int64_t spin_ns)
{
    return spin_ns >= 0 ? spin_ns : atomic_load_explicit(&bell->spin_budget, memory_order_relaxed);
}

/* Spin until a count is pending, looking without taking, for the budget
 * (spin_ns, or adaptive when < 0) but never past `limit_ns` from now.  1
 * when a count is pending, 0 when none came, -ECANCELED.  Looking, not
 * taking: a caller whose signal handler raises after the spin returns
 * leaves the count in the counter. */
static inline int efxb_spin(struct efx_bell *bell, int64_t spin_ns, int64_t limit_ns,
                            const struct efxb_cancel *cancel)
{
    struct efx_bell_layout *shm = bell->shm;
    int64_t budget = efxb_budget(bell, spin_ns);
    if (budget <= 0 || limit_ns <= 0)
        return efxb_pending(bell);
    int64_t start = efx_now_ns();
    int64_t span = budget < limit_ns ? budget : limit_ns;
    for (;;) {
        for (int turn = 0; turn < EFX_BELL_SPIN_TURNS; turn++) {
            if (atomic_load_explicit(&shm->count, memory_order_relaxed)) {
                int64_t took = efx_now_ns() - start;
                atomic_fetch_add_explicit(&shm->spins_paid, 1, memory_order_relaxed);
                if (spin_ns < 0)
                    efxb_adapt(bell, took);
                return 1;
            }
            efxb_cpu_relax();
        }
        /* Every 16 turns: look at the clock and the cancel test, then let
         * a peer on this CPU run (it may be the writer).  The count is
         * checked again after the yield, before giving up. */
        if (efx_now_ns() - start >= span)
            break;
        if (efxb_cancelled(cancel))
            return -ECANCELED;
        sched_yield();
    }
    atomic_fetch_add_explicit(&shm->spins_failed, 1, memory_order_relaxed);
    return efxb_pending(bell);
}

/* Sleep on the eventfd until a count is pending, the deadline passes or
 * `cancel` fires; look, never take.  1 when a count is pending, 0 on
 * timeout, -EINTR, -ECANCELED, -errno.  `spun`: the ns this wait already
 * spun (for the adaptive budget). */
static inline int efxb_sleep(struct efx_bell *bell, int64_t deadline, int64_t spun,
                             const struct efxb_cancel *cancel)
{
    struct efx_bell_layout *shm = bell->shm;
    int64_t start = efx_now_ns();
    for (;;) {
        /* The sleeper's store->load pair: announce, then re-check.  Without
         * the barrier (or without the re-check) a write that lands between
         * our failed look and the announcement sees sleepers == 0 and does
         * not ring, and we block in poll with its count pending. */
        atomic_fetch_add_explicit(&shm->sleepers, 1, memory_order_seq_cst);
        EFXB_STORE_LOAD();
        if (atomic_load_explicit(&shm->count, memory_order_seq_cst)) {
            atomic_fetch_sub_explicit(&shm->sleepers, 1, memory_order_seq_cst);
            return 1;
        }
        int left = efxb_left_ms(deadline);
        if (left == 0) {
            atomic_fetch_sub_explicit(&shm->sleepers, 1, memory_order_seq_cst);
            return efxb_pending(bell);
        }
        atomic_fetch_add_explicit(&shm->sleeps, 1, memory_order_relaxed);
        struct pollfd pfd[2] = {{bell->efd, POLLIN, 0}, {cancel ? cancel->wake_fd : -1, POLLIN, 0}};
        int slice = left < 0 || left > EFX_BELL_RECHECK_MS ? EFX_BELL_RECHECK_MS : left;
        int n = poll(pfd, cancel ? 2 : 1, slice);
        int r = 0;
        if (n < 0)
            r = -errno;
        else if (n > 0 && cancel && pfd[1].revents)
            r = -ECANCELED;
        else if (n > 0 && (pfd[0].revents & POLLNVAL))
            r = -EBADF;
        else if (n > 0)
            /* The token FIRST, then the count.  Taking the count first
             * could swallow a token whose count arrives just after: that
             * count would then sit with an unreadable eventfd. */
            r = efxb_drain(bell);
        atomic_fetch_sub_explicit(&shm->sleepers, 1, memory_order_seq_cst);
        if (r < 0)
            return r; /* -EINTR included: sleepers is already back */
        if (efxb_pending(bell)) {
            efxb_adapt(bell, spun + efx_now_ns() - start);
            /* We took a token and leave the count for the caller's take:
             * pass the ring on, for the other sleepers and pollers. */
            if (n > 0) {
                EFXB_STORE_LOAD();
                if (atomic_load_explicit(&shm->sleepers, memory_order_seq_cst) ||
                    atomic_load_explicit(&shm->watchers, memory_order_seq_cst))
                    efxb_ring(bell);
            }
            return 1;
        }
        if (n == 0 && slice == left)
            return 0; /* timed out */
        /* a token whose count another reader took, or the end of a slice:
         * announce again and look */
    }
}

/* The C peers' waits (Python's Doorbell makes each of these steps a call
 * of its own, so that signal handlers run between them).  Take (out) or
 * only look (out NULL): 1, 0 on timeout, -EINTR, -errno. */
static inline int efxb_wait(struct efx_bell *bell, int timeout_ms, int64_t spin_ns, uint64_t *out)
{
    int64_t deadline = efxb_deadline(timeout_ms);
    int64_t start = efx_now_ns();
    for (;;) {
        if (out ? (*out = efx_bell_take(bell)) != 0 : efxb_pending(bell))
            return 1;
        if (efxb_left_ms(deadline) == 0)
            return 0;
        int64_t limit = deadline == INT64_MAX ? INT64_MAX : deadline - efx_now_ns();
        int r = efxb_spin(bell, spin_ns, limit, NULL);
        if (r == 0)
            r = efxb_sleep(bell, deadline, efx_now_ns() - start, NULL);
        if (r <= 0)
            return r;
    }
}

/* Take (into *out), spinning then sleeping on the eventfd as needed: 1, 0
 * on timeout, -EINTR on a signal (call again with the time left), -EBADF
 * if the eventfd is closed, -errno. */
static inline int efx_bell_wait_read(struct efx_bell *bell, int timeout_ms,
                                     int64_t spin_ns, uint64_t *out)
{
    return efxb_wait(bell, timeout_ms, spin_ns, out);
}

/* Wait until the count is nonzero without taking it: 1, 0 on timeout,
 * -EINTR, -errno. */
static inline int efx_bell_wait(struct efx_bell *bell, int timeout_ms, int64_t spin_ns)
{
    return efxb_wait(bell, timeout_ms, spin_ns, NULL);
}

/* ---- polling -------------------------------------------------------- */

/* Polling: between watch_enter and watch_exit every write rings the
 * eventfd, and watch_enter rings at once if a count is pending, so the
 * eventfd is readable whenever the count is nonzero.  Calls nest (a
 * counter).  0 or -errno (counted even then: exit it).  A poller that saw
 * the eventfd readable takes with efx_bell_poll_take. */
static inline int efx_bell_watch_enter(struct efx_bell *bell)
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

static inline int efx_bell_watch_exit(struct efx_bell *bell)
{
    atomic_fetch_sub_explicit(&bell->shm->watchers, 1, memory_order_seq_cst);
    return 0;
}

/* Snapshot for tests: fills out[0 .. min(n, EFX_BELL_INFO_N)) with count,
 * sleepers, watchers, writers_waiting, rings, sleeps, spins_paid,
 * spins_failed, writer_waits, the handle's spin budget (ns), flags.
 * Returns the number filled. */
static inline int efx_bell_info(struct efx_bell *bell, uint64_t *out, int n)
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

/* The wake-up eventfd's kernel id recorded in the page (0: none), and its
 * recording by the creator before the page is shared. */
static inline uint64_t efx_bell_eventfd_id(struct efx_bell *bell)
{
    return bell->shm->eventfd_id;
}

static inline int efx_bell_set_eventfd_id(struct efx_bell *bell, uint64_t id)
{
    bell->shm->eventfd_id = id; /* before sharing: a plain store (see create) */
    return 0;
}

#endif
