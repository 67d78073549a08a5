/* A lock in shared memory that any peer may scribble on: one futex word
 * holding the holder's thread id.  MaskFD's state and the Channel's ring
 * take it; C peers #include this header (everything is static inline).
 *
 * Not a pthread mutex: glibc's robust process-shared mutex keeps its kind,
 * its owner and the pointers of its robust list in the shared page, and a holder that finds them
 * scribbled follows those pointers (SIGSEGV) or takes the priority-protect
 * path and fails an assertion (SIGABRT).  Here the word is the only shared
 * input, and any value is safe: free (0), this very thread (which is
 * waiting, so holds nothing: a lie), a thread that is gone, or a live
 * thread, which is waited for in slices that Ctrl-C can cut.
 *
 * A holder killed inside a change leaves its id in the word.  A waiter that
 * has waited EFX_SHLOCK_CHECK_NS asks whether that thread still lives
 * (kill(tid, 0), and /proc/<tid>/stat for a zombie), and takes the lock over from a
 * dead one: the recovery that the robust mutex's EOWNERDEAD gave.  An id
 * reused by a new thread before anyone noticed (the pid space wrapping)
 * keeps the lock until that thread ends; processes in different pid
 * namespaces must not share a lock (their ids name other threads). */

#ifndef EVENTFD_EXT_SHLOCK_H
#define EVENTFD_EXT_SHLOCK_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "eventfd_io.h" /* efx_now_ns */

#define EFX_SHLOCK_WAITERS 0x80000000u /* FUTEX_WAITERS */
#define EFX_SHLOCK_TID 0x3fffffffu     /* FUTEX_TID_MASK */

/* One slice of waiting for the lock: a caller that does not get it within
 * a slice returns -EINTR to Python, which runs its signal handlers (a
 * raising one leaves at once) and calls again.  Short enough for Ctrl-C to
 * feel immediate, long enough that ordinary contention never sees it.  A
 * signal that interrupts the wait returns at once. */
#define EFX_SHLOCK_SLICE_NS 20000000L
/* How long a waiter waits before asking whether the holder still lives,
 * and again after each such wait. */
#define EFX_SHLOCK_CHECK_NS 2000000L

/* This thread's id, cached (gettid is a syscall); a forked child's thread
 * has another, so the child drops the cache. */
static __thread uint32_t efx_shlock_tid_cache;
static pthread_once_t efx_shlock_tid_once = PTHREAD_ONCE_INIT;

static inline void efx_shlock_forget_tid(void) { efx_shlock_tid_cache = 0; }

static inline void efx_shlock_tid_init(void) { pthread_atfork(NULL, NULL, efx_shlock_forget_tid); }

static inline uint32_t efx_shlock_tid(void)
{
    uint32_t tid = efx_shlock_tid_cache;
    if (!tid) {
        pthread_once(&efx_shlock_tid_once, efx_shlock_tid_init);
        tid = efx_shlock_tid_cache = (uint32_t)syscall(SYS_gettid) & EFX_SHLOCK_TID;
    }
    return tid;
}

static inline long efx_shlock_futex(uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
    return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

/* 1 if no live thread has the id tid (it exited, or is a zombie). */
static inline int efx_shlock_thread_gone(uint32_t tid)
{
    if (kill((pid_t)tid, 0) && errno == ESRCH)
        return 1;
    char path[32], buf[256];
    snprintf(path, sizeof path, "/proc/%u/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ESRCH; /* gone since the kill */
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int err = errno;
    close(fd);
    if (n <= 0)
        return n < 0 && err == ESRCH;
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the state follows the name */
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X' || p[2] == 'x');
}

/* The contended path of efx_shlock_take: 0 with the lock (*took_over: from a dead
 * holder or a lie), or -EINTR after a slice or a signal. */
static inline int efx_shlock_wait(uint32_t *word, uint32_t me, int *took_over)
{
    int64_t start = efx_now_ns();
    long checked = 0;
    for (;;) {
        uint32_t v = __atomic_load_n(word, __ATOMIC_RELAXED);
        uint32_t tid = v & EFX_SHLOCK_TID;
        if (tid == 0 || tid == me) {
            /* Free (exactly 0, or a stray bit nobody owns), or naming this
             * thread, which is here waiting: take it, with the waiters bit
             * (others may sleep on it). */
            if (__atomic_compare_exchange_n(word, &v, me | EFX_SHLOCK_WAITERS, 0,
                                            __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
                *took_over = v != 0;
                return 0;
            }
            continue;
        }
        uint32_t sleeping = v | EFX_SHLOCK_WAITERS;
        if (v != sleeping && !__atomic_compare_exchange_n(word, &v, sleeping, 0,
                                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            continue;
        long spent = (long)(efx_now_ns() - start);
        if (spent >= EFX_SHLOCK_SLICE_NS)
            return -EINTR;
        long until = checked + EFX_SHLOCK_CHECK_NS;
        if (until > EFX_SHLOCK_SLICE_NS)
            until = EFX_SHLOCK_SLICE_NS;
        if (spent < until) {
            struct timespec t = {0, until - spent};
            if (efx_shlock_futex(word, FUTEX_WAIT, sleeping, &t) && errno == EINTR)
                return -EINTR; /* a signal: let Python run its handler */
            spent = (long)(efx_now_ns() - start);
        }
        if (spent - checked >= EFX_SHLOCK_CHECK_NS) {
            checked = spent;
            if (__atomic_load_n(word, __ATOMIC_RELAXED) == sleeping && efx_shlock_thread_gone(tid) &&
                __atomic_compare_exchange_n(word, &sleeping, me | EFX_SHLOCK_WAITERS, 0,
                                            __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
                *took_over = 1;
                return 0;
            }
        }
    }
}

/* Take the lock: 0 (*took_over: from a dead holder or a lie, so the state
 * it guards may be half-changed), or -EINTR after a slice or a signal. */
static inline int efx_shlock_take(uint32_t *word, int *took_over)
{
    uint32_t me = efx_shlock_tid(), free = 0;
    *took_over = 0;
    if (__atomic_compare_exchange_n(word, &free, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
        return 0;
    return efx_shlock_wait(word, me, took_over);
}

static inline void efx_shlock_release(uint32_t *word)
{
    uint32_t v = __atomic_exchange_n(word, 0, __ATOMIC_RELEASE);
    if (v != efx_shlock_tid_cache) /* waiters (or a word someone else wrote): wake one */
        efx_shlock_futex(word, FUTEX_WAKE, 1, NULL);
}

#endif
