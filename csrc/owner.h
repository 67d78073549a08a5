/* cffi cdef for the lifecycle core (csrc/owner.c): the handle that every
 * fd owner (EventFD, Doorbell, MaskFD) holds, and the calls they share.
 *
 * Every call of an object that touches its fds enters through the handle
 * and leaves through it, inside one crossing into C (a Python-level pair
 * could be split by a signal handler that raises).  The guarantees:
 *   - after close() begins, every new call fails with -EFX_ECLOSED
 *     (ValueError in Python), before it touches any fd;
 *   - the fds are closed by whoever leaves last, so a number this object
 *     had is never reused while one of its calls still runs: no call of
 *     this object ever touches another object's fd;
 *   - close() wakes every call of this object that sleeps (in poll, or in
 *     the Doorbell's futex), and each returns -EFX_ECLOSED;
 *   - a forked child does not inherit its parent's calls in flight.
 * The handle's memory lives until the Python object is finalized (its
 * __del__ calls efx_owner_free; ffi.gc would not do: in cyclic garbage the
 * finalizers run in any order, and the handle could go first), so a late
 * call never touches freed memory.
 *
 * Calling convention as in eventfd_shim.h: >= 0, or -errno, or
 * -EFX_ECLOSED (above every errno).
 */

#define EFX_ECLOSED ...

typedef struct efx_owner efx_owner_t;

/* The pollable fd (fileno()), or -EFX_ECLOSED. */
int efx_owner_fd(efx_owner_t *o);
/* 1 once close() or detach() has begun, else 0. */
int efx_owner_closed(efx_owner_t *o);

/* Begin closing (detach: give the fds up instead of closing them): new
 * calls fail, sleepers are woken.  Returns the fd if this call closed it,
 * -EFX_ECLOSED if it was closed already.  On success the caller holds the
 * fds open, as a call in flight, until efx_owner_leave(o): the asyncio
 * support lets its loops unregister the fd first. */
int efx_owner_close(efx_owner_t *o, int detach);
/* After efx_owner_close: wait up to timeout_ms until the woken calls have
 * left, so that none is left to close a number after close() returns.  0,
 * or -ETIMEDOUT (a call nothing can wake; it closes the fd as it leaves). */
int efx_owner_settle(efx_owner_t *o, int timeout_ms);
/* Leave: 0, or the -errno of a close(2) that failed if this was the last
 * call out (EBADF: the fd was closed behind the object's back). */
int efx_owner_leave(efx_owner_t *o);

/* The fds that make the object, in from_fds's order (room for 3), as
 * they are, or (dup) duplicated close-on-exec inside the call, so that a
 * close() racing it cannot hand over another file's number: how many, or
 * -errno, or -EFX_ECLOSED. */
int efx_owner_fds(efx_owner_t *o, int *out, int dup);

/* /proc/self/fdinfo of the pollable fd into buf (NUL-terminated): the
 * length, or -errno, or -EFX_ECLOSED. */
int efx_owner_fdinfo(efx_owner_t *o, char *buf, int size);

/* For the object's finalizer: closes the fds of an object never closed,
 * then frees the handle once no watch token refers to it.  0. */
int efx_owner_free(efx_owner_t *o);
/* A handle closed for good and never freed: what a finalized object holds
 * after efx_owner_free, should it be resurrected and called again. */
efx_owner_t *efx_owner_dead(void);
