/* The Channel's C API: a bounded queue of byte messages in one sealed
 * memfd, its wake-ups through two Doorbells.  Header-only, as
 * <eventfd_ext/doorbell.h> is: a C program sends to and receives from
 * Python processes, and from other C peers, by including this file alone:
 *
 *     #define _GNU_SOURCE
 *     #include <eventfd_ext/channel.h>
 *
 *     cc -I"$(python -c 'import eventfd_ext; print(eventfd_ext.get_include())')" ...
 *
 * Python's Channel runs these same functions behind its lifecycle core.
 *
 *   efx_chan_create / efx_chan_attach   a new Channel, or one whose fds
 *                                       (memfd, data eventfd, space eventfd:
 *                                       Channel.fds()) this process inherited
 *   efx_chan_send / efx_chan_recv       one message, waiting as asked
 *   efx_chan_shutdown                   end the stream for every holder
 *   efx_chan_detach                     unmap (the fds stay the caller's)
 *
 * Calling convention: an int >= 0 or -errno, never errno; a receive returns
 * the message's length.  A handle (struct efx_chan *) is private to one
 * process; threads may share it.  timeout_ms: < 0 waits forever, 0 never
 * blocks.  spin_ns: < 0 the adaptive budget, 0 never spins, > 0 spins up to
 * that many nanoseconds before sleeping.  Names starting efxc_ are the
 * implementation's own steps: they may change between versions.
 *
 * The layout.  The memfd is sealed (F_SEAL_SEAL | F_SEAL_SHRINK |
 * F_SEAL_GROW) and mapped MAP_SHARED by every holder: a header, then a byte
 * ring of `capacity` bytes.  Two Doorbell pages live in the header, each
 * beside an eventfd that only wakes sleepers (docs/doorbell-protocol.md):
 *   - "data": its count is the number of messages queued, plus 1 once the
 *     channel is shut down (so that receivers wake to find the end);
 *     receivers spin, sleep and poll on it; semaphore mode;
 *   - "space": senders waiting for room sleep on its futex (writers_waiting,
 *     room_seq), pollers awaiting room are its watchers; its count stays 0.
 *
 * Records: at a byte position p (a multiple of 8; the offset in the ring is
 * p % capacity) a record is a uint32 length n, a uint32 ~n, then n bytes of
 * message that may wrap around the ring's end, padded to a multiple of 8.
 * head and tail only grow; tail - head is the bytes in use.  The ring's
 * words change only under `lock` (<eventfd_ext/shlock.h>'s futex word),
 * which a holder SIGKILLed inside a change leaves to the next caller: the
 * new holder checks every word the dead one may have left half-written and
 * repairs the ring from its records (efxc_repair), so a message is seen
 * whole or not at all.  The lock is held for one copy; waiting is never
 * done under it.  Every length and position read from shared memory is
 * checked against the capacity the reader mapped before any byte is
 * touched.  Any change to a field's meaning or position bumps
 * EFX_CHAN_VERSION.
 *
 * Wake-ups are the Doorbell's store->load pairs:
 *   sender:   commit, data.count += 1 (efxb_write: FENCE, ring a sleeper)
 *   receiver: data.sleepers++; FENCE; load data.count -> sleep?
 * and for room, the Doorbell's own pair for writers at its maximum:
 *   receiver: head += record; FENCE; load space.writers_waiting -> wake?
 *   sender:   read room_seq; space.writers_waiting++; FENCE; load head
 *             -> FUTEX_WAIT(room_seq)?
 */
#ifndef EVENTFD_EXT_CHANNEL_H
#define EVENTFD_EXT_CHANNEL_H

/* First: eventfd_io.h, through doorbell.h, defines _GNU_SOURCE before any
 * system header (memfd_create, F_SEAL_*). */
#include "doorbell.h" /* struct efx_bell_layout, and the protocol */
#include "shlock.h"   /* the ring's lock */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define EFX_CHAN_MAGIC UINT64_C(0x314e414843584645) /* "EFXCHAN1" little endian */
#define EFX_CHAN_VERSION 1u
#define EFX_CHAN_HEADER 1024u /* the ring's first byte in the memfd */
#define EFX_CHAN_RECORD 8u    /* a record's own header: n, ~n */
#define EFX_CHAN_MIN_CAPACITY 64u
#define EFX_CHAN_MAX_CAPACITY (UINT64_C(1) << 31)
/* flags */
#define EFX_CHAN_SHUTDOWN 0x1u

/* The bytes a message of n bytes takes in the ring. */
#define EFX_CHAN_RECORD_SIZE(n) (EFX_CHAN_RECORD + (((uint64_t)(n) + 7) & ~(uint64_t)7))

struct efx_chan_layout {
    /* Line 0: identity, written once by the creator before the memfd is
     * handed to anyone, read-only afterwards. */
    uint64_t magic;    /* EFX_CHAN_MAGIC */
    uint32_t version;  /* EFX_CHAN_VERSION */
    uint32_t header;   /* EFX_CHAN_HEADER */
    uint64_t capacity; /* ring bytes: a multiple of 8; memfd size = header + capacity */
    uint8_t pad0[EFX_BELL_LINE - 24];

    /* Line 1: the ring, changed only under the lock. */
    uint32_t lock;               /* shlock.h's word (__atomic builtins only) */
    _Atomic uint32_t flags;      /* EFX_CHAN_SHUTDOWN */
    _Atomic uint64_t head;       /* position of the oldest record */
    _Atomic uint64_t tail;       /* position after the newest record */
    _Atomic uint64_t messages;   /* records between head and tail */
    _Atomic uint64_t recoveries; /* repairs after a dead holder or a scribble */
    uint8_t pad1[EFX_BELL_LINE - 40];

    struct efx_bell_layout data;  /* the receivers' Doorbell */
    struct efx_bell_layout space; /* the senders' Doorbell */
    uint8_t pad2[EFX_CHAN_HEADER - 2 * EFX_BELL_LINE - 2 * EFX_BELL_SIZE];
};

_Static_assert(sizeof(struct efx_chan_layout) == EFX_CHAN_HEADER, "fixed size");
_Static_assert(offsetof(struct efx_chan_layout, lock) == 64, "lock at 64");
_Static_assert(offsetof(struct efx_chan_layout, data) == 128, "data bell at 128");
_Static_assert(offsetof(struct efx_chan_layout, space) == 384, "space bell at 384");

#define EFX_CHAN_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW)
/* Looks at a held lock before sleeping on it (efxc_lock). */
#define EFX_CHAN_LOCK_SPINS 256

/* One process's view of a Channel: the mapping and the fds (not owned). */
struct efx_chan {
    struct efx_chan_layout *shm;
    unsigned char *ring;
    uint64_t capacity; /* read once at attach: a scribble cannot change it */
    struct efx_bell *data, *space; /* handles on the two pages in shm */
    int memfd, data_efd, space_efd;
};

/* ---- the ring (under the lock) --------------------------------------- */

static inline void efxc_copy_in(struct efx_chan *ch, uint64_t pos, const void *src, size_t n)
{
    uint64_t off = pos % ch->capacity;
    size_t first = n < ch->capacity - off ? n : (size_t)(ch->capacity - off);
    memcpy(ch->ring + off, src, first);
    memcpy(ch->ring, (const unsigned char *)src + first, n - first);
}

static inline void efxc_copy_out(struct efx_chan *ch, uint64_t pos, void *dst, size_t n)
{
    uint64_t off = pos % ch->capacity;
    size_t first = n < ch->capacity - off ? n : (size_t)(ch->capacity - off);
    memcpy(dst, ch->ring + off, first);
    memcpy((unsigned char *)dst + first, ch->ring, n - first);
}

/* The length of the record at pos, or -1 if its header is not a record
 * that fits in the `used` bytes from pos. */
static inline int64_t efxc_record_at(struct efx_chan *ch, uint64_t pos, uint64_t used)
{
    uint32_t hdr[2];
    efxc_copy_out(ch, pos, hdr, sizeof hdr); /* 8 bytes at a multiple of 8: never wraps */
    if (hdr[1] != ~hdr[0] || EFX_CHAN_RECORD_SIZE(hdr[0]) > used)
        return -1;
    return hdr[0];
}

static inline uint64_t efxc_shut(struct efx_chan *ch)
{
    return atomic_load_explicit(&ch->shm->flags, memory_order_relaxed) & EFX_CHAN_SHUTDOWN;
}

/* Wake senders waiting for room, and pollers of "space" (after a pop, a
 * repair, a shutdown or a close).  The receiver's store->load pair. */
static inline void efxc_wake_space(struct efx_chan *ch)
{
    struct efx_bell_layout *space = &ch->shm->space;
    EFXB_STORE_LOAD();
    if (atomic_load_explicit(&space->writers_waiting, memory_order_seq_cst))
        efxb_wake_writers(ch->space);
    if (atomic_load_explicit(&space->sleepers, memory_order_seq_cst) ||
        atomic_load_explicit(&space->watchers, memory_order_seq_cst))
        efxb_ring(ch->space);
}

/* Rebuild the ring's words from its records, after a holder died inside a
 * change or a peer wrote over them: keep every whole record from head on,
 * drop the rest, and make data.count say what is queued. */
static inline void efxc_repair(struct efx_chan *ch)
{
    struct efx_chan_layout *shm = ch->shm;
    uint64_t head = atomic_load_explicit(&shm->head, memory_order_relaxed) & ~(uint64_t)7;
    uint64_t tail = atomic_load_explicit(&shm->tail, memory_order_relaxed);
    if (tail % 8 || tail - head > ch->capacity)
        tail = head;
    uint64_t pos = head, n = 0;
    while (pos < tail) {
        int64_t len = efxc_record_at(ch, pos, tail - pos);
        if (len < 0)
            break;
        pos += EFX_CHAN_RECORD_SIZE(len);
        n++;
    }
    atomic_store_explicit(&shm->head, head, memory_order_relaxed);
    atomic_store_explicit(&shm->tail, pos, memory_order_relaxed);
    atomic_store_explicit(&shm->messages, n, memory_order_relaxed);
    atomic_store_explicit(&shm->flags, (uint32_t)efxc_shut(ch), memory_order_relaxed);
    atomic_store_explicit(&shm->data.count, n + efxc_shut(ch), memory_order_seq_cst);
    atomic_fetch_add_explicit(&shm->recoveries, 1, memory_order_relaxed);
    EFXB_STORE_LOAD(); /* when unsure, ring: a sleeper may have missed a count */
    if (n + efxc_shut(ch))
        efxb_ring(ch->data);
    efxc_wake_space(ch);
}

/* Whether the ring's words agree with each other (cheap; every lock). */
static inline int efxc_consistent(struct efx_chan *ch)
{
    struct efx_chan_layout *shm = ch->shm;
    uint64_t head = atomic_load_explicit(&shm->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&shm->tail, memory_order_relaxed);
    uint64_t n = atomic_load_explicit(&shm->messages, memory_order_relaxed);
    uint64_t used = tail - head;
    return !(head % 8) && !(tail % 8) && used <= ch->capacity &&
           n <= used / EFX_CHAN_RECORD && !n == !used &&
           atomic_load_explicit(&shm->data.count, memory_order_relaxed) == n + efxc_shut(ch);
}

/* Take the ring's lock: 0, or -EINTR (a slice passed or a signal came:
 * call again).  The state is checked, and repaired if it needs it. */
static inline int efxc_lock(struct efx_chan *ch)
{
    /* Held for one copy: wait a little before the futex, whose sleep and
     * wake-up cost tens of microseconds across CPUs (a receiver woken by
     * the count would otherwise sleep on the sender's unlock); the yields
     * let a holder that shares this CPU finish. */
    for (int i = 1; i <= EFX_CHAN_LOCK_SPINS && __atomic_load_n(&ch->shm->lock, __ATOMIC_RELAXED);
         i++) {
        efxb_cpu_relax();
        if (i % EFX_BELL_SPIN_TURNS == 0)
            sched_yield();
    }
    int took_over;
    int r = efx_shlock_take(&ch->shm->lock, &took_over);
    if (r)
        return r;
    if (took_over || !efxc_consistent(ch))
        efxc_repair(ch);
    return 0;
}

static inline void efxc_unlock(struct efx_chan *ch)
{
    efx_shlock_release(&ch->shm->lock);
}

/* A part of a message: a send gathers its parts into one record. */
struct efx_chan_part {
    const void *data;
    size_t len;
};

/* Queue one message made of parts (total bytes in all): 0, -EAGAIN (no
 * room now), -EPIPE (shut down), -EMSGSIZE (never fits), -EINTR. */
static inline int efxc_push(struct efx_chan *ch, const struct efx_chan_part *parts,
                            int nparts, uint64_t total)
{
    struct efx_chan_layout *shm = ch->shm;
    if (total > UINT32_MAX || EFX_CHAN_RECORD_SIZE(total) > ch->capacity)
        return -EMSGSIZE;
    int r = efxc_lock(ch);
    if (r)
        return r;
    uint64_t head = atomic_load_explicit(&shm->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&shm->tail, memory_order_relaxed);
    uint64_t size = EFX_CHAN_RECORD_SIZE(total);
    if (efxc_shut(ch)) {
        r = -EPIPE;
    } else if (size > ch->capacity - (tail - head)) {
        r = -EAGAIN;
    } else {
        uint32_t hdr[2] = {(uint32_t)total, ~(uint32_t)total};
        efxc_copy_in(ch, tail, hdr, sizeof hdr);
        uint64_t pos = tail + EFX_CHAN_RECORD;
        for (int i = 0; i < nparts; i++) {
            efxc_copy_in(ch, pos, parts[i].data, parts[i].len);
            pos += parts[i].len;
        }
        /* The commit: the record is visible to the next holder of the lock. */
        atomic_store_explicit(&shm->tail, tail + size, memory_order_relaxed);
        atomic_store_explicit(&shm->messages,
                              atomic_load_explicit(&shm->messages, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        /* count += 1, FENCE, ring a sleeper or a poller.  A failed ring (the
         * eventfd closed behind our back) leaves the message queued; a
         * sleeper finds it at its next wake-up. */
        efxb_write(ch->data, 1, 0, NULL);
    }
    efxc_unlock(ch);
    return r;
}

/* Take the oldest message into buf (size bytes) and return its length; a
 * length above size means it was not taken (it stays queued, nothing is
 * copied: call again with a larger buffer).  -EAGAIN when empty; -EPIPE
 * when empty and shut down; -EINTR. */
static inline int64_t efxc_pop(struct efx_chan *ch, void *buf, size_t size)
{
    struct efx_chan_layout *shm = ch->shm;
    int r = efxc_lock(ch);
    if (r)
        return r;
    uint64_t head = atomic_load_explicit(&shm->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&shm->tail, memory_order_relaxed);
    int64_t n = head == tail ? -1 : efxc_record_at(ch, head, tail - head);
    if (head != tail && n < 0) { /* written over since the lock's check */
        efxc_repair(ch);
        head = atomic_load_explicit(&shm->head, memory_order_relaxed);
        tail = atomic_load_explicit(&shm->tail, memory_order_relaxed);
        n = head == tail ? -1 : efxc_record_at(ch, head, tail - head);
    }
    int taken = n >= 0 && (uint64_t)n <= size;
    if (n < 0) {
        n = efxc_shut(ch) ? -EPIPE : -EAGAIN;
    } else if (taken) {
        efxc_copy_out(ch, head + EFX_CHAN_RECORD, buf, (size_t)n);
        atomic_store_explicit(&shm->head, head + EFX_CHAN_RECORD_SIZE(n), memory_order_relaxed);
        atomic_store_explicit(&shm->messages,
                              atomic_load_explicit(&shm->messages, memory_order_relaxed) - 1,
                              memory_order_relaxed);
        efx_bell_take(ch->data); /* count -= 1; rings on if more are queued */
    }
    efxc_unlock(ch);
    if (taken)
        efxc_wake_space(ch);
    return n;
}

/* Mark the channel shut down (once): senders get -EPIPE from now on,
 * receivers drain, then get -EPIPE.  0 or -EINTR. */
static inline int efxc_shutdown(struct efx_chan *ch)
{
    int r = efxc_lock(ch);
    if (r)
        return r;
    if (!efxc_shut(ch)) {
        atomic_fetch_or_explicit(&ch->shm->flags, EFX_CHAN_SHUTDOWN, memory_order_relaxed);
        efxb_write(ch->data, 1, 0, NULL); /* the end counts as one, for sleepers and pollers */
    }
    efxc_unlock(ch);
    efxc_wake_space(ch);
    return 0;
}

/* Whether a message of `size` record bytes would fit now, or the channel
 * is shut down (a look without the lock: the words may be mid-change, and
 * a wrong answer only costs one more try under the lock). */
static inline int efxc_room(struct efx_chan *ch, uint64_t size)
{
    struct efx_chan_layout *shm = ch->shm;
    uint64_t head = atomic_load_explicit(&shm->head, memory_order_seq_cst);
    uint64_t tail = atomic_load_explicit(&shm->tail, memory_order_seq_cst);
    uint64_t used = tail - head;
    return used > ch->capacity || size <= ch->capacity - used || efxc_shut(ch);
}

/* Wait until a message of n bytes fits or the channel is shut down:
 * spin up to spin_ns (bounded by the timeout and by EFX_CHAN_SPIN_SLICE_NS),
 * then sleep on space's futex up to timeout_ms (< 0: no limit).  1 when
 * there is room, 0 when none came, -EINTR, -ECANCELED (cancel fired). */
#define EFX_CHAN_SPIN_SLICE_NS 1000000
static inline int efxc_wait_room(struct efx_chan *ch, uint64_t n, int timeout_ms,
                                 int64_t spin_ns, const struct efxb_cancel *cancel)
{
    struct efx_bell_layout *space = &ch->shm->space;
    uint64_t size = EFX_CHAN_RECORD_SIZE(n);
    int64_t start = efx_now_ns(), deadline = efxb_deadline(timeout_ms);
    int64_t budget = efxb_budget(ch->data, spin_ns);
    if (budget > EFX_CHAN_SPIN_SLICE_NS)
        budget = EFX_CHAN_SPIN_SLICE_NS;
    for (int turn = 1; !efxc_room(ch, size); turn++) {
        if (budget <= 0)
            goto sleep;
        if (turn % EFX_BELL_SPIN_TURNS == 0) {
            int64_t now = efx_now_ns();
            if (now - start >= budget || now >= deadline)
                goto sleep;
            if (efxb_cancelled(cancel))
                return -ECANCELED;
            sched_yield();
        }
        efxb_cpu_relax();
    }
    return 1;
sleep:
    for (;;) {
        uint32_t seq = atomic_load_explicit(&space->room_seq, memory_order_seq_cst);
        atomic_fetch_add_explicit(&space->writers_waiting, 1, memory_order_seq_cst);
        EFXB_STORE_LOAD(); /* pairs with efxc_wake_space's */
        int room = efxc_room(ch, size);
        int64_t left = deadline == INT64_MAX ? 1 : deadline - efx_now_ns();
        int r = room ? 1 : left <= 0 ? 0 : efxb_cancelled(cancel) ? -ECANCELED : 2;
        if (r == 2) {
            /* At most a recheck slice: a receiver SIGKILLed between its
             * take and its wake-up must not leave this sender asleep. */
            struct timespec ts = efxb_futex_slice(deadline);
            atomic_fetch_add_explicit(&space->writer_waits, 1, memory_order_relaxed);
            r = efxb_futex(&space->room_seq, FUTEX_WAIT, seq, &ts);
            r = r == -EINTR ? -EINTR : 2;
        }
        atomic_fetch_sub_explicit(&space->writers_waiting, 1, memory_order_seq_cst);
        if (r != 2)
            return r;
        if (efxb_cancelled(cancel))
            return -ECANCELED;
    }
}

/* ---- the C peers' calls: a whole wait in one call ------------------------ */

/* Send one message, waiting up to timeout_ms (< 0: no limit) for room,
 * spinning first as the Doorbell's waits do (spin_ns: < 0 adaptive, 0
 * never, > 0 that long): 0, -EAGAIN (no room in time), -EPIPE (shut down),
 * -EMSGSIZE, -errno. */
static inline int efx_chan_send(struct efx_chan *ch, const void *data, size_t len,
                                int timeout_ms, int64_t spin_ns)
{
    int64_t deadline = efxb_deadline(timeout_ms);
    struct efx_chan_part part = {data, len};
    for (;;) {
        int r = efxc_push(ch, &part, 1, len);
        if (r == -EAGAIN) {
            int left = efxb_left_ms(deadline);
            if (left == 0)
                return -EAGAIN;
            r = efxc_wait_room(ch, len, left, spin_ns, NULL);
            if (r < 0 && r != -EINTR)
                return r;
        } else if (r != -EINTR) {
            return r;
        }
    }
}

/* Receive one message into buf, waiting up to timeout_ms (< 0: no limit;
 * spin_ns as for efx_chan_send): its length (above size: not taken, it
 * stays queued), -EAGAIN (none in time), -EPIPE (shut down and drained),
 * -errno. */
static inline int64_t efx_chan_recv(struct efx_chan *ch, void *buf, size_t size,
                                    int timeout_ms, int64_t spin_ns)
{
    int64_t deadline = efxb_deadline(timeout_ms);
    for (;;) {
        int64_t n = efxc_pop(ch, buf, size);
        if (n == -EAGAIN) {
            int r = efxb_wait(ch->data, efxb_left_ms(deadline), spin_ns, NULL); /* looks only */
            if (r == 0)
                return -EAGAIN;
            if (r < 0 && r != -EINTR)
                return r;
        } else if (n != -EINTR) {
            return n;
        }
    }
}

/* End the stream (see efxc_shutdown), retrying a lock slice: 0. */
static inline int efx_chan_shutdown(struct efx_chan *ch)
{
    while (efxc_shutdown(ch) == -EINTR)
        ;
    return 0;
}

/* ---- creation -------------------------------------------------------- */

static inline void efxc_init_bell(struct efx_bell_layout *bell, uint32_t flags)
{
    bell->magic = EFX_BELL_MAGIC;
    bell->version = EFX_BELL_VERSION;
    bell->size = EFX_BELL_SIZE;
    bell->flags = flags;
}

static inline int efxc_bell_ok(const struct efx_bell_layout *bell, uint32_t flags)
{
    return bell->magic == EFX_BELL_MAGIC && bell->version == EFX_BELL_VERSION &&
           bell->size == EFX_BELL_SIZE && bell->flags == flags;
}

static inline int efx_chan_detach(struct efx_chan *ch)
{
    if (ch) {
        munmap(ch->shm, EFX_CHAN_HEADER + ch->capacity);
        free(ch->data);
        free(ch->space);
        free(ch);
    }
    return 0;
}

/* A handle on the mapping shm (capacity ring bytes) and the fds. */
static inline int efxc_new_handle(struct efx_chan_layout *shm, uint64_t capacity,
                                  int memfd, int data_efd, int space_efd,
                                  struct efx_chan **out)
{
    struct efx_chan *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->shm = shm;
    ch->ring = (unsigned char *)shm + EFX_CHAN_HEADER;
    ch->capacity = capacity;
    ch->memfd = memfd;
    ch->data_efd = data_efd;
    ch->space_efd = space_efd;
    if (efxb_new_handle(&shm->data, data_efd, &ch->data) ||
        efxb_new_handle(&shm->space, space_efd, &ch->space)) {
        free(ch->data);
        free(ch);
        return -ENOMEM;
    }
    *out = ch;
    return 0;
}

/* A new Channel of capacity ring bytes (a multiple of 8 within the
 * limits): its sealed memfd and two eventfds (EFD_CLOEXEC | EFD_NONBLOCK)
 * into fds[0..2], owned by the caller.  0 or -errno (nothing left open). */
static inline int efx_chan_create(uint64_t capacity, int fds[3], struct efx_chan **out)
{
    if (capacity % 8 || capacity < EFX_CHAN_MIN_CAPACITY || capacity > EFX_CHAN_MAX_CAPACITY)
        return -EINVAL;
    int err = 0, efd[2] = {-1, -1};
    struct efx_chan_layout *shm = MAP_FAILED;
    size_t size = EFX_CHAN_HEADER + capacity;
    int memfd = memfd_create("eventfd_ext.channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0)
        return -errno;
    /* Sealed at its size for good: a holder that could shrink it would
     * make every other holder's next access die of SIGBUS. */
    if (ftruncate(memfd, (off_t)size) || fcntl(memfd, F_ADD_SEALS, EFX_CHAN_SEALS))
        goto fail;
    shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (shm == MAP_FAILED)
        goto fail;
    for (int i = 0; i < 2; i++)
        if ((efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
            goto fail;
    /* Zero-filled and not yet shared: plain stores of the non-zero fields. */
    shm->magic = EFX_CHAN_MAGIC;
    shm->version = EFX_CHAN_VERSION;
    shm->header = EFX_CHAN_HEADER;
    shm->capacity = capacity;
    efxc_init_bell(&shm->data, EFX_BELL_SEMAPHORE);
    efxc_init_bell(&shm->space, 0);
    err = efxc_new_handle(shm, capacity, memfd, efd[0], efd[1], out);
    if (err)
        goto cleanup;
    fds[0] = memfd;
    fds[1] = efd[0];
    fds[2] = efd[1];
    return 0;
fail:
    err = -errno;
cleanup:
    if (shm != MAP_FAILED)
        munmap(shm, size);
    for (int i = 0; i < 2; i++)
        if (efd[i] >= 0)
            close(efd[i]);
    close(memfd);
    return err;
}

/* Map an existing Channel: -EINVAL when the memfd is not a sealed Channel
 * of this build's layout (size, seals, magic, version, capacity, pages).
 * The fds stay the caller's. */
static inline int efx_chan_attach(int memfd, int data_efd, int space_efd, struct efx_chan **out)
{
    struct stat st;
    if (fstat(memfd, &st))
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)(EFX_CHAN_HEADER + EFX_CHAN_MIN_CAPACITY) ||
        (uint64_t)st.st_size > EFX_CHAN_HEADER + EFX_CHAN_MAX_CAPACITY)
        return -EINVAL;
    int seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0 || (seals & EFX_CHAN_SEALS) != EFX_CHAN_SEALS)
        return -EINVAL; /* unsealed, any holder could shrink it under us */
    size_t size = (size_t)st.st_size;
    struct efx_chan_layout *shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (shm == MAP_FAILED)
        return -errno;
    uint64_t capacity = shm->capacity;
    if (shm->magic != EFX_CHAN_MAGIC || shm->version != EFX_CHAN_VERSION ||
        shm->header != EFX_CHAN_HEADER || capacity % 8 || capacity != size - EFX_CHAN_HEADER ||
        !efxc_bell_ok(&shm->data, EFX_BELL_SEMAPHORE) || !efxc_bell_ok(&shm->space, 0)) {
        munmap(shm, size);
        return -EINVAL;
    }
    int r = efxc_new_handle(shm, capacity, memfd, data_efd, space_efd, out);
    if (r)
        munmap(shm, size);
    return r;
}

#endif
