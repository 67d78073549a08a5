/* cffi cdef for the MaskFD shim (csrc/maskfd_shim.c).
 *
 * A MaskFD is a handle (one per process) on a state record kept in a shared
 * memfd mapping: the stored (events, data) pair, what the kernel objects
 * currently show, and a process-shared lock (a futex word holding the
 * holder's thread id).  Every change takes the lock, makes the kernel
 * objects show the new bits (at most a few syscalls, none when no bit
 * changes) and stores the pair, all in one crossing.
 *
 * Every holder can write anything into the page: no value there can make
 * the shim crash, wait where a signal cannot reach it, or touch memory
 * outside the page; at worst the pair or what the fd shows is wrong, or a
 * call fails with an errno.
 *
 * Calling convention: the project rule written in eventfd_shim.h (every
 * function returns int, >= 0 on success and -errno on failure, never errno;
 * anything else is written through a pointer the caller allocates per call),
 * with one exception: a refused change packs the refused bits beside the
 * errno in its negative result (mfx_change).
 *
 * Waiting for the lock is done in slices: a caller that does not get it
 * within one slice (a holder stopped by SIGSTOP or a debugger) gets -EINTR,
 * so that Python runs its signal handlers, and calls again.
 */

#define MFX_STREAM ...
#define MFX_DGRAM ...
#define MFX_PIPE ...
#define MFX_VALID ...
#define MFX_REFUSED_SHIFT ...

struct mfx_handle;

struct mfx_pair {
    uint32_t events;
    uint64_t data;
};

/* A new MaskFD of the given backing (events 0, data 0) in *out; 0, or
 * -errno after closing whatever it had opened.  Its memfd is sealed
 * against shrinking, growing and further seals from the start, so that no
 * holder can make another's page access fault (SIGBUS). */
int mfx_new(int kind, struct mfx_handle **out);

/* A handle on fds received from another process (memfd, handed-out fd,
 * peer fd or -1) in *out; takes ownership of the fds only on success.
 * 0, or -errno, the fds left as they were.  -EINVAL: not a MaskFD state
 * (a memfd without the seals mfx_new puts on, smaller than the state, or
 * without its magic and kind), or fds that are not this state's own ends
 * (type and inode number), or a pipe's writer (it stays with its
 * creator). */
int mfx_attach(int memfd, int fd, int peer_fd, struct mfx_handle **out);

/* Replace the bits in clear_bits by those in set_bits (set wins), and the
 * data word if set_data.  0, -errno, or a refusal.
 *
 * A refusal is the one packed result of the shim: -(errno | bits <<
 * MFX_REFUSED_SHIFT), where bits (never 0) are exactly the event bits this
 * call refused, decided under the lock, so the caller names them without
 * asking the state again (another holder may have changed it since).
 * Packed, because the hot mfx_set/mfx_clear must stay one-argument calls and
 * an out-pointer would cost an allocation per call; both fit one int, as in
 * mfx_limits.  errno says why:
 *   ENOTRECOVERABLE  bits the backing can no longer clear (mfx_limits)
 *   EOPNOTSUPP    bits the backing cannot show (mfx_limits)
 *   EPERM         bits only the creating process can change (pipe: HUP)
 *   EBUSY         another process (forked without the Python fork hooks)
 *                 holds a copy of the object whose last close makes the
 *                 bits: they would not show now; nothing was changed
 * Otherwise -errno, bits 0:
 *   EINVAL        a bit outside MFX_VALID
 *   EINTR         the lock was not free within one slice: call again
 *   EBADF         the handle is closed
 *   other         a syscall failed; the state stored is what the kernel shows
 * A refused change changes neither the stored pair nor what the fd shows.
 * The new pair is committed by one store, so a holder killed inside a
 * change leaves the old pair or the new one, never a mix. */
int mfx_change(struct mfx_handle *h, uint32_t clear_bits, uint32_t set_bits,
               int set_data, uint64_t data);

/* mfx_change(h, 0, bits, 0, 0) and mfx_change(h, bits, 0, 0, 0), with the
 * same results: the hot path, with the fewest arguments to convert. */
int mfx_set(struct mfx_handle *h, uint32_t bits);
int mfx_clear(struct mfx_handle *h, uint32_t bits);

/* The stored pair, read under the lock, into *out.  0, or -EINTR / -EBADF. */
int mfx_get(struct mfx_handle *h, struct mfx_pair *out);

/* Bits the backing cannot set now (bits 16-20) and cannot clear now
 * (bits 0-4), from the current state; or -EINTR / -EBADF. */
int mfx_limits(struct mfx_handle *h);

int mfx_kind(struct mfx_handle *h);
/* 1 if the peer fd goes with the MaskFD to other processes, 0 if it stays
 * with its creator (the pipe's writer: its last close is HUP). */
int mfx_peer_travels(struct mfx_handle *h);
int mfx_fd(struct mfx_handle *h);          /* the handed-out fd, or -1 */
int mfx_peer_fd(struct mfx_handle *h);     /* peer socket / pipe writer, or -1 */
int mfx_memfd(struct mfx_handle *h);
/* Syscalls made by mfx_change on this state, in every process, into *out. */
int mfx_syscalls(struct mfx_handle *h, uint64_t *out);
/* Times a holder died holding the lock, or the state was found written
 * over (out of range), and the next caller recovered it (the kernel objects
 * made to show the stored pair again). */
int mfx_recoveries(struct mfx_handle *h);

/* Record that the state is held by more than one process (lock-free, for
 * the at-fork hooks).  In a forked child (in_child), the pipe backing also
 * closes its copy of the writer, so that the creator's close makes HUP. */
int mfx_mark_shared(struct mfx_handle *h, int in_child);

/* The handle's owner (owner.h): the object Python holds.  Its close
 * closes the fds (under the state's lock when it comes within one slice);
 * its free frees the handle (mfx_free).  0 or -ENOMEM; the handle is then
 * the owner's. */
int mfx_own(struct mfx_handle *h, efx_owner_t **out);

/* Close the fds (under the lock, so no change of this process is half
 * done); 0 or -EINTR (a thread of this process holds the lock: call
 * again).  A lock held by anyone else for a slice does not keep it waiting:
 * that holder uses none of these fds.  The mapping stays until mfx_free, so
 * a racing call sees EBADF, never freed memory.  mfx_free closes them
 * without the lock if still open (it runs once nothing else can use the
 * handle). */
int mfx_close(struct mfx_handle *h);
int mfx_free(struct mfx_handle *h);

/* Test only: in this process, SIGKILL itself at the steps-th step of the
 * following changes (a step: each syscall, and each store that commits a
 * pair); 0 turns it off. */
int mfx_test_die_after(int steps);
