/* The Doorbell's shared layout: a plain C11 header for every peer of a
 * Doorbell (the cffi module, csrc/tests/bell_peer.c, any C program).
 *
 * A Doorbell is a 64-bit counter with eventfd semantics that lives in a
 * memfd mapping (MAP_SHARED), plus an eventfd used only to wake sleepers
 * and pollers.  The protocol that every peer must follow is in
 * csrc/DOORBELL.md; the reference implementation is csrc/doorbell.c.
 *
 * The layout is fixed-size (EFX_BELL_SIZE bytes), little or big endian as
 * the host (peers share one machine), and versioned: a peer refuses a
 * mapping whose magic, version or size differ from its own.  Any change to
 * the meaning or position of a field bumps EFX_BELL_VERSION.
 *
 * Not a cffi cdef (cffi cannot parse _Atomic): csrc/doorbell.h is.
 */
#ifndef EFX_DOORBELL_LAYOUT_H
#define EFX_DOORBELL_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
