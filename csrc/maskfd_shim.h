/* cffi cdef for the MaskFD shim (csrc/maskfd_shim.c).
 *
 * A MaskFD is a handle (one per process) on a state record kept in a shared
 * memfd mapping: the stored (events, data) pair, what the kernel objects
 * currently show, and a process-shared robust mutex.  Every change takes the
 * lock, makes the kernel objects show the new bits (at most a few syscalls,
 * none when no bit changes) and stores the pair, all in one crossing.
 * Functions returning int report failure as a negative errno.
 */

#define MFX_STREAM ...
#define MFX_DGRAM ...
#define MFX_PIPE ...
#define MFX_VALID ...

struct mfx_handle;

struct mfx_pair {
    uint32_t events;
    uint64_t data;
};

/* A new MaskFD of the given backing (events 0, data 0); NULL with errno set
 * on failure, after closing whatever it had opened. */
struct mfx_handle *mfx_new(int kind);

/* A handle on fds received from another process (memfd, handed-out fd,
 * peer fd or -1); takes ownership of the fds only on success.  NULL with
 * errno set on failure (EINVAL: not a MaskFD state). */
struct mfx_handle *mfx_attach(int memfd, int a, int b);

/* Replace the bits in clear_bits by those in set_bits (set wins), and the
 * data word if set_data.  0, or -errno:
 *   EINVAL        a bit outside MFX_VALID
 *   EBADF         the handle is closed
 *   ENOTRECOVERABLE  the backing can no longer clear a bit (mfx_limits)
 *   EOPNOTSUPP    the backing cannot show a bit (mfx_limits)
 *   EPERM         pipe backing: only the creating process can change HUP
 *   other         a syscall failed; the state stored is what the kernel shows
 * A refused change (all but the last) makes no syscall and changes nothing. */
int mfx_change(struct mfx_handle *h, uint32_t clear_bits, uint32_t set_bits,
               int set_data, uint64_t data);

/* mfx_change(h, 0, bits, 0, 0) and mfx_change(h, bits, 0, 0, 0): the hot
 * path, with the fewest arguments to convert. */
int mfx_set(struct mfx_handle *h, uint32_t bits);
int mfx_clear(struct mfx_handle *h, uint32_t bits);

/* The stored pair, read under the lock. */
struct mfx_pair mfx_get(struct mfx_handle *h);

/* Bits the backing cannot set now (high 16 bits) and cannot clear now
 * (low 16 bits), from the current state. */
int mfx_limits(struct mfx_handle *h);

int mfx_kind(struct mfx_handle *h);
int mfx_fd(struct mfx_handle *h);          /* the handed-out fd, or -1 */
int mfx_peer_fd(struct mfx_handle *h);     /* peer socket / pipe writer, or -1 */
int mfx_memfd(struct mfx_handle *h);
/* Syscalls made by mfx_change on this state, in every process. */
uint64_t mfx_syscalls(struct mfx_handle *h);

/* Record that the state is now held by more than one process.  In a forked
 * child (in_child), the pipe backing also closes its copy of the writer, so
 * that the creator's close still makes HUP. */
void mfx_mark_shared(struct mfx_handle *h, int in_child);

/* Close the fds (under the lock, so no change is half done).  The mapping
 * stays until mfx_free, so a racing call sees EBADF, never freed memory. */
int mfx_close(struct mfx_handle *h);
void mfx_free(struct mfx_handle *h);
