/* The Channel's shared layout: a plain C11 header for every peer of a
 * Channel (the cffi module, csrc/tests/chan_peer.c, any C program).
 *
 * A Channel is a bounded queue of byte messages in one sealed memfd
 * (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW), mapped MAP_SHARED by every
 * holder: this header, then a byte ring of `capacity` bytes.  Two Doorbell
 * pages (<eventfd_ext/doorbell.h>) live in the header, each beside an eventfd
 * that only wakes sleepers (the Doorbell protocol, csrc/DOORBELL.md):
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
 * words change only under `lock` (csrc/shlock.c's futex word), so a holder
 * killed inside a change leaves the old state or a state the next holder
 * repairs (channel.c, efxc_repair): a message is visible once tail passes
 * it, whole.  Every length and position read from here is checked against
 * the capacity the reader mapped before any byte is touched.
 *
 * Any change to a field's meaning or position bumps EFX_CHAN_VERSION.
 * Not a cffi cdef (cffi cannot parse _Atomic): csrc/channel.h is.
 */
#ifndef EFX_CHANNEL_LAYOUT_H
#define EFX_CHANNEL_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <eventfd_ext/doorbell.h> /* struct efx_bell_layout */

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
    uint32_t lock;               /* shlock.c's word (__atomic builtins only) */
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

#endif
