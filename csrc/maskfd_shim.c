/* The MaskFD shim: userspace EFD_MASK on kernel IPC objects.
 * Declarations and the calling convention are in maskfd_shim.h; the
 * mechanisms and their measured limits are in docs/maskfd.md. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create; Python.h defines it first in the cffi build */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MFX_STREAM 1
#define MFX_DGRAM 2
#define MFX_PIPE 3
#define MFX_VALID (POLLIN | POLLPRI | POLLOUT | POLLERR | POLLHUP)
#define MFX_MAGIC 0x4d61736bu /* "Mask" */

struct mfx_pair {
    uint32_t events;
    uint64_t data;
};

/* The state every holder maps.  k_* fields describe what the kernel
 * objects show now, which may differ from `events` only by documented
 * extra bits. */
struct mfx_shared {
    pthread_mutex_t lock; /* first: the tests read its holder from the futex word */
    uint32_t magic, kind;
    /* The stored pair is slot[cur].  A change writes the new pair into the
     * other slot and stages it (next), makes the kernel objects show it,
     * then commits it by storing cur (one aligned word each): a holder
     * killed at any point leaves the old pair or the new one, never a mix,
     * and while next != cur the recovery knows which change was in flight. */
    struct mfx_pair slot[2];
    uint32_t cur, next;
    uint32_t need_resync; /* a holder died: the kernel objects may be off */
    uint64_t syscalls;
    uint32_t k_rx;      /* stream: bytes queued to A (0, RX_BYTE, RX_OOB bits);
                           dgram/pipe: 1 if a datagram/byte is queued */
    uint32_t k_fill;    /* stream: 1 if A's send buffer is full;
                           dgram: fill datagrams queued at the peer */
    uint32_t k_hup;     /* the irreversible shutdown happened (sockets),
                           or the writer is closed (pipe) */
    uint32_t k_err;     /* ERR shown now */
    uint32_t err_spent; /* stream: the peer is gone, ERR cannot come back */
    uint32_t no_oob;    /* stream: the kernel refused MSG_OOB */
    uint32_t shared;    /* held by more than one process */
    int32_t owner;      /* pid of the creator (pipe: holds the writer) */
    uint32_t recoveries; /* times a holder died inside a change */
    socklen_t a_len;    /* dgram: A's autobound address, to reconnect to */
    struct sockaddr_un a_addr;
};

struct mfx_handle {
    struct mfx_shared *sh;
    int memfd, a, b, kind, closed;
};

#define RX_BYTE 1u
#define RX_OOB 2u
/* Far more than the minimum SO_SNDBUF (4608) holds, so one send fills it. */
#define FILL_LEN 65536
#define STATE_SIZE 4096

_Static_assert(sizeof(struct mfx_shared) <= STATE_SIZE, "the state must fit its page");

/* Source of the fill bytes and sink of the drains, for every MaskFD: what
 * it holds is never looked at, so concurrent drains may share it. */
static char mfx_fill[FILL_LEN];

/* Test only (mfx_test_die_after): steps left before this process kills
 * itself; 0 = never.  Process-local, so a forked child can arm it alone. */
static int mfx_die_countdown;

static void mfx_step(void)
{
    if (mfx_die_countdown && --mfx_die_countdown == 0)
        raise(SIGKILL);
}

static int mfx_test_die_after(int steps)
{
    mfx_die_countdown = steps > 0 ? steps : 0;
    return 0;
}

/* Count a syscall made for a change (and give the test hook its step after
 * it); the call's result and errno pass through untouched. */
#define SYS(sh, call)                                                          \
    __extension__({                                                            \
        (sh)->syscalls++;                                                      \
        __typeof__(call) sys_r_ = (call);                                      \
        mfx_step();                                                            \
        sys_r_;                                                                \
    })

static void mfx_resync(struct mfx_handle *h);

/* One slice of waiting for the lock: a caller that does not get it within
 * a slice returns -EINTR to Python, which runs its signal handlers (a
 * raising one leaves at once) and calls again.  Short enough for Ctrl-C to
 * feel immediate, long enough that ordinary contention never sees it. */
#define MFX_SLICE_NS 20000000L

/* Take the state's lock: 0, or -errno (-EINTR after a slice).  A holder
 * that died inside a change (the robust mutex reports EOWNERDEAD) may have
 * left the kernel objects anywhere between the old and the new pair: make
 * them show the stored pair again before going on (mfx_resync). */
static int mfx_lock(struct mfx_handle *h)
{
    struct mfx_shared *sh = h->sh;
    int r = pthread_mutex_trylock(&sh->lock);
    if (r == EBUSY) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += MFX_SLICE_NS;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        r = pthread_mutex_timedlock(&sh->lock, &t);
        if (r == ETIMEDOUT)
            return -EINTR;
    }
    if (r == EOWNERDEAD) {
        r = pthread_mutex_consistent(&sh->lock);
        if (r)
            return -r;
        sh->recoveries++;
        sh->need_resync = 1;
    } else if (r) {
        return -r;
    }
    if (sh->need_resync && !h->closed)
        mfx_resync(h); /* clears need_resync once done */
    return 0;
}

/* --- creation ---------------------------------------------------------- */

static struct mfx_shared *mfx_map(int memfd)
{
    void *p = mmap(NULL, STATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    return p == MAP_FAILED ? NULL : p;
}

static int mfx_init_lock(struct mfx_shared *sh)
{
    pthread_mutexattr_t attr;
    int r = pthread_mutexattr_init(&attr);
    if (r)
        return r;
    r = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (!r)
        r = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (!r)
        r = pthread_mutex_init(&sh->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return r;
}

static int mfx_open_backing(int kind, int *a, int *b)
{
    int fds[2];
    if (kind == MFX_PIPE) {
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK))
            return -1;
        *a = fds[0];
        *b = fds[1];
        return 0;
    }
    int type = (kind == MFX_STREAM ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | SOCK_NONBLOCK;
    if (socketpair(AF_UNIX, type, 0, fds))
        return -1;
    *a = fds[0];
    *b = fds[1];
    /* The kernel raises 1 to its minimum (4608 on Linux): the fewer bytes
     * it takes to fill, the cheaper clearing OUT is. */
    int one = 1;
    if (setsockopt(*a, SOL_SOCKET, SO_SNDBUF, &one, sizeof one))
        return -1;
    if (kind == MFX_DGRAM) {
        /* Autobind A to an abstract name, so that the peer can reconnect
         * to it after the disconnect that raises ERR. */
        sa_family_t family = AF_UNIX;
        if (bind(*a, (struct sockaddr *)&family, sizeof family))
            return -1;
    }
    return 0;
}

static int mfx_apply(struct mfx_handle *h, uint32_t want);

static int mfx_new(int kind, struct mfx_handle **out)
{
    if (kind != MFX_STREAM && kind != MFX_DGRAM && kind != MFX_PIPE)
        return -EINVAL;
    struct mfx_handle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    int r = 0;
    h->memfd = h->a = h->b = -1;
    h->kind = kind;
    h->memfd = memfd_create("eventfd_ext-maskfd", MFD_CLOEXEC);
    if (h->memfd < 0 || ftruncate(h->memfd, STATE_SIZE))
        goto fail_errno;
    h->sh = mfx_map(h->memfd);
    if (!h->sh)
        goto fail_errno;
    if ((r = mfx_init_lock(h->sh))) {
        r = -r;
        goto fail;
    }
    if (mfx_open_backing(kind, &h->a, &h->b))
        goto fail_errno;
    h->sh->a_len = sizeof h->sh->a_addr;
    if (kind == MFX_DGRAM &&
        getsockname(h->a, (struct sockaddr *)&h->sh->a_addr, &h->sh->a_len))
        goto fail_errno;
    h->sh->kind = kind;
    h->sh->owner = getpid();
    /* The patch's fd starts with no events, but a fresh socket is
     * writable: fill its send buffer. */
    if ((r = mfx_apply(h, 0)))
        goto fail;
    h->sh->magic = MFX_MAGIC;
    *out = h;
    return 0;
fail_errno:
    r = errno ? -errno : -EIO;
fail:
    if (h->sh)
        munmap(h->sh, STATE_SIZE);
    if (h->memfd >= 0)
        close(h->memfd);
    if (h->a >= 0)
        close(h->a);
    if (h->b >= 0)
        close(h->b);
    free(h);
    return r;
}

static int mfx_attach(int memfd, int a, int b, struct mfx_handle **out)
{
    struct mfx_handle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->sh = mfx_map(memfd);
    if (!h->sh || h->sh->magic != MFX_MAGIC || h->sh->kind < MFX_STREAM ||
        h->sh->kind > MFX_PIPE) {
        int r = h->sh ? -EINVAL : (errno ? -errno : -EIO);
        if (h->sh)
            munmap(h->sh, STATE_SIZE);
        free(h);
        return r;
    }
    h->memfd = memfd;
    h->a = a;
    h->b = b;
    h->kind = (int)h->sh->kind;
    *out = h;
    return 0;
}

/* --- what each backing can do now -------------------------------------- */

static void mfx_limits_of(struct mfx_handle *h, uint32_t *cant_set, uint32_t *cant_clear)
{
    struct mfx_shared *sh = h->sh;
    uint32_t s = 0, c = 0;
    switch (h->kind) {
    case MFX_STREAM:
        if (sh->no_oob)
            s |= POLLPRI;
        if (sh->k_hup) {
            c |= POLLHUP | POLLOUT; /* the peer shut down: A can no longer fill */
            if (!(sh->k_rx & RX_OOB))
                s |= POLLPRI;       /* nor can the peer send OOB */
        }
        if (sh->err_spent && !sh->k_err)
            s |= POLLERR;           /* the peer that raised it is gone */
        if (!sh->k_err && !sh->err_spent && sh->shared)
            s |= POLLERR;           /* needs the peer's last reference */
        if (!sh->k_err && sh->k_hup && !sh->k_fill)
            s |= POLLERR;           /* and unread data at the peer, which
                                       A cannot send after the shutdown */
        if (h->b < 0 && !sh->k_hup)
            s |= POLLIN | POLLPRI | POLLOUT | POLLERR; /* an ERR refused with
                EBUSY closed this process's peer: it cannot send or drain */
        break;
    case MFX_DGRAM:
        s |= POLLPRI;
        if (sh->k_hup) {
            c |= POLLHUP | POLLOUT;
            if (!sh->k_err && !sh->k_fill)
                s |= POLLERR; /* raising ERR needs a datagram A can no longer send */
        }
        break;
    case MFX_PIPE:
        s |= POLLPRI | POLLOUT | POLLERR;
        break;
    }
    *cant_set = s;
    *cant_clear = c;
}

static int mfx_limits(struct mfx_handle *h)
{
    uint32_t s, c;
    int r = mfx_lock(h);
    if (r)
        return r;
    if (h->closed) {
        r = -EBADF;
    } else {
        mfx_limits_of(h, &s, &c);
        r = (int)(s << 16 | c);
    }
    pthread_mutex_unlock(&h->sh->lock);
    return r;
}

/* --- the transitions --------------------------------------------------- */

static int neg_errno(void) { return errno ? -errno : -EIO; }

/* Drain A's receive queue (never blocks: every fd is O_NONBLOCK). */
static int mfx_drain(struct mfx_shared *sh, int fd, int sock)
{
    char buf[256];
    for (;;) {
        ssize_t n = sock ? SYS(sh, recv(fd, buf, sizeof buf, MSG_DONTWAIT))
                         : SYS(sh, read(fd, buf, sizeof buf));
        if (n == 0 || (n < 0 && errno == EAGAIN))
            return 0;
        if (n < 0 && errno != EINTR)
            return neg_errno();
        if (n > 0 && n < (ssize_t)sizeof buf && !sock)
            return 0;
    }
}

static int stream_rx(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    int want_pri = !!(want & POLLPRI), want_in = !!(want & POLLIN);
    char c = 0;
    if (sh->k_hup) {
        /* RCV_SHUTDOWN keeps A readable: IN is shown whatever is asked. */
        if (!want_pri && (sh->k_rx & RX_OOB)) {
            if (SYS(sh, recv(h->a, &c, 1, MSG_OOB | MSG_DONTWAIT)) < 0 && errno != EINVAL)
                return neg_errno();
            sh->k_rx &= ~RX_OOB;
        }
        return 0;
    }
    if (want_pri && !(sh->k_rx & RX_OOB)) {
        if (SYS(sh, send(h->b, "!", 1, MSG_OOB | MSG_DONTWAIT | MSG_NOSIGNAL)) != 1) {
            if (errno == EOPNOTSUPP || errno == EINVAL) {
                sh->no_oob = 1;
                return -EOPNOTSUPP;
            }
            return neg_errno();
        }
        sh->k_rx |= RX_OOB; /* shows IN too */
        return 0;
    }
    if (!want_pri && (sh->k_rx & RX_OOB)) {
        /* recv(MSG_OOB) takes the byte but leaves IN shown until the next
         * recv consumes the spent skb: drain, then restore IN if asked. */
        if (SYS(sh, recv(h->a, &c, 1, MSG_OOB | MSG_DONTWAIT)) < 0 && errno != EINVAL)
            return neg_errno();
        int r = mfx_drain(sh, h->a, 1);
        if (r)
            return r;
        sh->k_rx = 0;
    }
    if (sh->k_rx & RX_OOB)
        return 0; /* PRI stays: IN is shown whatever is asked */
    if (want_in && !sh->k_rx) {
        if (SYS(sh, send(h->b, "i", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
            return neg_errno();
        sh->k_rx = RX_BYTE;
    } else if (!want_in && sh->k_rx) {
        char buf[64];
        if (SYS(sh, recv(h->a, buf, sizeof buf, MSG_DONTWAIT)) < 0 && errno != EAGAIN)
            return neg_errno();
        sh->k_rx = 0;
    }
    return 0;
}

static int stream_out(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    int fill = !(want & POLLOUT);
    if (fill == (int)sh->k_fill || (fill && sh->k_hup))
        return 0; /* after HUP A cannot send: OUT stays (an extra bit) */
    if (!fill && (want & POLLERR) && !sh->k_err)
        return 0; /* raising ERR below needs the unread fill at the peer,
                     and frees it: OUT shows then */
    if (fill) {
        /* One send larger than the buffer takes what fits and leaves A
         * unwritable; loop only if a reader freed room meanwhile. */
        for (;;) {
            ssize_t n = SYS(sh, send(h->a, mfx_fill, FILL_LEN, MSG_DONTWAIT | MSG_NOSIGNAL));
            if ((n >= 0 && n < FILL_LEN) || (n < 0 && errno == EAGAIN))
                break;
            if (n < 0 && errno != EINTR)
                return neg_errno();
        }
    } else if (h->b >= 0) {
        if (SYS(sh, recv(h->b, mfx_fill, FILL_LEN, MSG_DONTWAIT)) < 0 && errno != EAGAIN)
            return neg_errno();
    } else if (!sh->k_hup) {
        return -EBADF; /* the peer was closed here by a refused ERR */
    }
    sh->k_fill = (uint32_t)fill;
    return 0;
}

static int stream_err_hup(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    if ((want & POLLERR) && !sh->k_err) {
        /* The peer's release with unread data raises ECONNRESET on A, and
         * HUP with it; it frees A's queued bytes, so OUT shows too. */
        char c = 0;
        if (!sh->k_hup)
            (void)SYS(sh, send(h->a, &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL));
        (void)SYS(sh, close(h->b));
        h->b = -1;
        sh->err_spent = 1;
        /* A copy of the peer in a process forked without the Python hooks
         * (which mark the state shared, so that ERR is refused) keeps the
         * peer alive: ERR shows only at that copy's close.  Say so. */
        struct pollfd pfd = {h->a, 0, 0};
        if (SYS(sh, poll(&pfd, 1, 0)) < 0)
            return neg_errno();
        if (!(pfd.revents & POLLERR))
            return -EBUSY;
        sh->k_err = sh->k_hup = 1;
        sh->k_fill = 0;
        return 0;
    }
    if (!(want & POLLERR) && sh->k_err) {
        int err;
        socklen_t len = sizeof err;
        if (SYS(sh, getsockopt(h->a, SOL_SOCKET, SO_ERROR, &err, &len)))
            return neg_errno();
        sh->k_err = 0;
    }
    if ((want & POLLHUP) && !sh->k_hup) {
        if (SYS(sh, shutdown(h->b, SHUT_RDWR)))
            return neg_errno();
        sh->k_hup = 1;
    }
    return 0;
}

static int dgram_rx(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    int want_in = !!(want & POLLIN);
    char buf[64];
    if (sh->k_hup || want_in == (int)sh->k_rx)
        return 0; /* after the shutdown A is readable whatever is asked */
    if (want_in) {
        if (SYS(sh, send(h->b, "i", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
            return neg_errno();
    } else if (SYS(sh, recv(h->a, buf, sizeof buf, MSG_DONTWAIT)) < 0 && errno != EAGAIN) {
        return neg_errno();
    }
    sh->k_rx = (uint32_t)want_in;
    return 0;
}

static int dgram_out(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    char buf[64];
    if (!(want & POLLOUT)) {
        /* A cannot send after its shutdown, and a send would consume a
         * pending ERR, whose raising purged the fill: OUT stays (extra). */
        if (sh->k_hup || sh->k_err || (want & POLLERR))
            return 0; /* (raising ERR below purges the fill anyway) */
        /* Two queued one-byte datagrams take A past a quarter of the
         * minimum send buffer, where poll stops reporting OUT. */
        while (sh->k_fill < 2) {
            if (SYS(sh, send(h->a, "o", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
                return neg_errno();
            sh->k_fill++;
        }
    } else if (sh->k_fill >= 2) {
        if (SYS(sh, recv(h->b, buf, sizeof buf, MSG_DONTWAIT)) < 0)
            return neg_errno();
        sh->k_fill--;
    }
    return 0;
}

static int dgram_err_hup(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    if ((want & POLLERR) && !sh->k_err) {
        /* A peer that disconnects with unread datagrams from A raises
         * ECONNRESET on A (and purges them); then it reconnects. */
        sa_family_t unspec = AF_UNSPEC;
        if (!sh->k_fill) {
            if (SYS(sh, send(h->a, "e", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
                return neg_errno();
        }
        if (SYS(sh, connect(h->b, (struct sockaddr *)&unspec, sizeof unspec)))
            return neg_errno();
        sh->k_fill = 0;
        sh->k_err = 1;
        if (SYS(sh, connect(h->b, (struct sockaddr *)&sh->a_addr, sh->a_len)))
            return neg_errno();
    } else if (!(want & POLLERR) && sh->k_err) {
        int err;
        socklen_t len = sizeof err;
        if (SYS(sh, getsockopt(h->a, SOL_SOCKET, SO_ERROR, &err, &len)))
            return neg_errno();
        sh->k_err = 0;
    }
    if ((want & POLLHUP) && !sh->k_hup) {
        if (SYS(sh, shutdown(h->a, SHUT_RDWR)))
            return neg_errno();
        sh->k_hup = 1;
    }
    return 0;
}

static int pipe_open_writer(struct mfx_handle *h)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", h->a);
    int fd = SYS(h->sh, open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    return fd < 0 ? neg_errno() : fd;
}

static int pipe_change(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    int want_in = !!(want & POLLIN), want_hup = !!(want & POLLHUP);
    /* getpid() is a real syscall: ask only when HUP changes. */
    if (want_hup != (int)sh->k_hup && sh->owner != getpid())
        return -EPERM;
    if (want_in != (int)sh->k_rx) {
        if (want_in) {
            /* Outside the owner, or while HUP is shown, a writer opened
             * for this byte alone (its close keeps HUP as it was). */
            int w = h->b;
            if (w < 0 && (w = pipe_open_writer(h)) < 0)
                return w;
            ssize_t n = SYS(sh, write(w, "i", 1));
            int err = errno;
            if (w != h->b)
                SYS(sh, close(w));
            if (n != 1)
                return err ? -err : -EIO;
        } else {
            int r = mfx_drain(sh, h->a, 0);
            if (r)
                return r;
        }
        sh->k_rx = (uint32_t)want_in;
    }
    if (want_hup && !sh->k_hup) {
        SYS(sh, close(h->b));
        h->b = -1;
        /* A copy of the writer elsewhere (a child forked an instant ago,
         * before its after-fork hook closed it; or forked from C, which runs
         * no hook) keeps HUP away: reopen the writer and refuse. */
        struct pollfd pfd = {h->a, 0, 0};
        int n = SYS(sh, poll(&pfd, 1, 0));
        if (n < 0 || !(pfd.revents & POLLHUP)) {
            int r = n < 0 ? neg_errno() : -EBUSY;
            int w = pipe_open_writer(h);
            if (w >= 0)
                h->b = w;
            return r;
        }
        sh->k_hup = 1;
    } else if (!want_hup && sh->k_hup) {
        int w = pipe_open_writer(h);
        if (w < 0)
            return w;
        h->b = w;
        sh->k_hup = 0;
    }
    return 0;
}

static int mfx_apply(struct mfx_handle *h, uint32_t want)
{
    int r;
    switch (h->kind) {
    case MFX_STREAM:
        /* PRI first: a kernel without AF_UNIX OOB refuses it before any
         * other bit has changed.  HUP and ERR last: they freeze the rest. */
        if ((r = stream_rx(h, want)) || (r = stream_out(h, want)))
            return r;
        return stream_err_hup(h, want);
    case MFX_DGRAM:
        /* Clear ERR first, so that the fill below can run; and since a recv
         * on A reports and consumes a pending ERR instead of the datagram,
         * take it before that recv too, and raise it again last. */
        if (h->sh->k_err &&
            (!(want & POLLERR) || (h->sh->k_rx && !(want & POLLIN) && !h->sh->k_hup))) {
            int err;
            socklen_t len = sizeof err;
            if (SYS(h->sh, getsockopt(h->a, SOL_SOCKET, SO_ERROR, &err, &len)))
                return neg_errno();
            h->sh->k_err = 0;
        }
        if ((r = dgram_rx(h, want)) || (r = dgram_out(h, want)))
            return r;
        return dgram_err_hup(h, want);
    default:
        return pipe_change(h, want);
    }
}

/* What the kernel objects show now, from the k_* fields. */
static uint32_t mfx_shown_of(struct mfx_handle *h)
{
    struct mfx_shared *sh = h->sh;
    uint32_t s = (sh->k_err ? POLLERR : 0) | (sh->k_hup ? POLLHUP : 0);
    switch (h->kind) {
    case MFX_STREAM:
        s |= (sh->k_rx || sh->k_hup ? POLLIN : 0) | (sh->k_rx & RX_OOB ? POLLPRI : 0) |
             (sh->k_fill ? 0 : POLLOUT);
        break;
    case MFX_DGRAM:
        s |= (sh->k_rx || sh->k_hup ? POLLIN : 0) | (sh->k_fill >= 2 ? 0 : POLLOUT);
        break;
    default:
        s |= sh->k_rx ? POLLIN : 0;
        break;
    }
    return s;
}

/* The stored mask gained bits the fd already showed as extras, so no
 * syscall was made for them and no edge reached edge-triggered waiters:
 * wake the fd's wait queue without changing what it shows.
 *  - a socket whose A end is fully shut down (HUP shown): shutdown(A)
 *    again changes nothing and calls its sk_state_change, a wake-up with
 *    key 0, which every epoll entry accepts;
 *  - stream PRI, gaining IN: a normal byte behind the OOB one (IN is shown
 *    already; clearing PRI drains both);
 *  - dgram ERR, gaining OUT: setting SO_SNDBUF to the value it has calls
 *    sk_write_space, which wakes with EPOLLOUT while A is writable. */
static int mfx_nudge(struct mfx_handle *h, uint32_t gained)
{
    struct mfx_shared *sh = h->sh;
    if (h->kind == MFX_PIPE)
        return 0; /* a pipe shows no extra bit */
    if (sh->k_hup) {
        if (SYS(sh, shutdown(h->a, SHUT_RDWR)))
            return neg_errno();
        return 0;
    }
    if (h->kind == MFX_STREAM && (gained & POLLIN)) {
        if (SYS(sh, send(h->b, "i", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
            return neg_errno();
        sh->k_rx |= RX_BYTE;
    }
    if (h->kind == MFX_DGRAM && (gained & POLLOUT)) {
        int one = 1;
        if (SYS(sh, setsockopt(h->a, SOL_SOCKET, SO_SNDBUF, &one, sizeof one)))
            return neg_errno();
    }
    return 0;
}

/* Drain every byte or datagram queued to fd (recovery only). */
static void mfx_drain_all(struct mfx_shared *sh, int fd, int sock)
{
    for (;;) {
        ssize_t n = sock ? SYS(sh, recv(fd, mfx_fill, FILL_LEN, MSG_DONTWAIT))
                         : SYS(sh, read(fd, mfx_fill, FILL_LEN));
        if (n == 0 || (n < 0 && errno != EINTR))
            return;
    }
}

/* After a holder died holding the lock: the kernel objects may be anywhere
 * between the pair it found and the one it was writing (a datagram peer
 * disconnected before its reconnect, a byte sent but not recorded, a fill
 * half drained, ...).  Bring every backing to a known base state, then make
 * it show the stored pair again.  Idempotent: a recovery killed half-way is
 * simply done again by the next caller. */
static void mfx_resync(struct mfx_handle *h)
{
    struct mfx_shared *sh = h->sh;
    struct pollfd pfd = {h->a, POLLIN | POLLPRI | POLLOUT, 0};
    /* A change in flight is rolled forward when the kernel objects can
     * show it (a step the dead holder made may not be undoable: a stream
     * ERR taken, a shutdown), else back. */
    int staged = sh->next != sh->cur;
    uint32_t want = sh->slot[staged ? sh->next : sh->cur].events;
    char c;
    switch (h->kind) {
    case MFX_DGRAM: {
        /* Reconnect the peer whatever step the dead holder was in (connect
         * to the peer it has already changes nothing).  Before HUP, take a
         * pending ERR and drop the fill and the IN datagrams: all of it can
         * be made again.  After HUP (A can no longer send) keep what shows. */
        int err;
        socklen_t len = sizeof err;
        if (h->b >= 0)
            (void)SYS(sh, connect(h->b, (struct sockaddr *)&sh->a_addr, sh->a_len));
        if (SYS(sh, poll(&pfd, 1, 0)) < 0)
            return;
        sh->k_hup = !!(pfd.revents & POLLHUP);
        sh->k_rx = 0;
        if (sh->k_hup) {
            sh->k_err = !!(pfd.revents & POLLERR);
            sh->k_fill = pfd.revents & POLLOUT ? 0 : 2;
            break;
        }
        (void)SYS(sh, getsockopt(h->a, SOL_SOCKET, SO_ERROR, &err, &len));
        if (h->b >= 0)
            mfx_drain_all(sh, h->b, 1);
        mfx_drain_all(sh, h->a, 1);
        sh->k_err = 0;
        sh->k_fill = 0;
        break;
    }
    case MFX_STREAM:
        if (SYS(sh, poll(&pfd, 1, 0)) < 0)
            return;
        sh->k_hup = !!(pfd.revents & POLLHUP);
        sh->k_err = !!(pfd.revents & POLLERR);
        if (!sh->k_hup) {
            (void)SYS(sh, recv(h->a, &c, 1, MSG_OOB | MSG_DONTWAIT));
            mfx_drain_all(sh, h->a, 1);
            sh->k_rx = 0;
            if (h->b >= 0) {
                mfx_drain_all(sh, h->b, 1);
                sh->k_fill = 0;
            } else {
                sh->k_fill = !(pfd.revents & POLLOUT);
            }
        } else {
            sh->k_rx = pfd.revents & POLLPRI ? RX_OOB : 0;
            sh->k_fill = !(pfd.revents & POLLOUT);
        }
        break;
    default:
        if (SYS(sh, poll(&pfd, 1, 0)) < 0)
            return;
        sh->k_hup = !!(pfd.revents & POLLHUP);
        mfx_drain_all(sh, h->a, 0);
        sh->k_rx = 0;
        /* Only the creator can change HUP: elsewhere keep what shows. */
        if (sh->owner != getpid())
            want = (want & ~(uint32_t)POLLHUP) | (sh->k_hup ? POLLHUP : 0);
        break;
    }
    if (staged) {
        uint32_t cant_set, cant_clear, old = sh->slot[sh->cur].events;
        mfx_limits_of(h, &cant_set, &cant_clear);
        (void)cant_clear; /* a bit it cannot clear now stays as an extra */
        if (!(want & ~mfx_shown_of(h) & cant_set) && !mfx_apply(h, want)) {
            __atomic_store_n(&sh->cur, sh->next, __ATOMIC_RELEASE); /* forward */
        } else {
            __atomic_store_n(&sh->next, sh->cur, __ATOMIC_RELEASE); /* back */
            want = old;
        }
    }
    /* Best effort: a failure leaves extra bits, never missing ones that a
     * syscall could have shown. */
    mfx_apply(h, want);
    if (sh->k_hup)
        mfx_nudge(h, want); /* a gained extra bit's edge the dead holder owed */
    sh->need_resync = 0;
}

/* Write (events, data) into the free slot and stage it (mfx_resync rolls
 * a staged pair forward or back). */
static void mfx_stage(struct mfx_shared *sh, uint32_t events, uint64_t data)
{
    uint32_t next = !sh->cur;
    sh->slot[next].events = events;
    sh->slot[next].data = data;
    mfx_step();
    __atomic_store_n(&sh->next, next, __ATOMIC_RELEASE);
    mfx_step();
}

/* Commit the staged pair with one store. */
static void mfx_commit(struct mfx_shared *sh)
{
    __atomic_store_n(&sh->cur, sh->next, __ATOMIC_RELEASE);
    mfx_step();
}

static int mfx_change(struct mfx_handle *h, uint32_t clear_bits, uint32_t set_bits,
                      int set_data, uint64_t data)
{
    if ((clear_bits | set_bits) & ~(uint32_t)MFX_VALID)
        return -EINVAL;
    struct mfx_shared *sh = h->sh;
    int r = mfx_lock(h);
    if (r)
        return r;
    if (h->closed) {
        r = -EBADF;
        goto out;
    }
    struct mfx_pair *cur = &sh->slot[sh->cur];
    uint32_t old = cur->events, want = (old & ~clear_bits) | set_bits;
    if (!set_data)
        data = cur->data;
    if (want != old) {
        uint32_t cant_set, cant_clear;
        mfx_limits_of(h, &cant_set, &cant_clear);
        if (old & ~want & cant_clear) {
            r = -ENOTRECOVERABLE;
            goto out;
        }
        if (want & ~old & cant_set) {
            r = -EOPNOTSUPP;
            goto out;
        }
        uint32_t before = mfx_shown_of(h);
        mfx_stage(sh, want, data);
        r = mfx_apply(h, want);
        if (r == -EBUSY) {
            mfx_apply(h, old); /* undo the bits changed before the refusal */
            __atomic_store_n(&sh->next, sh->cur, __ATOMIC_RELEASE);
            goto out;
        }
        if (r) {
            /* Store the bits the kernel objects reached, so that read()
             * and readiness still agree. */
            if (r != -EOPNOTSUPP) {
                mfx_stage(sh, (old & ~(old ^ want)) | ((old ^ want) & mfx_shown_of(h)),
                          cur->data);
                mfx_commit(sh);
            } else {
                __atomic_store_n(&sh->next, sh->cur, __ATOMIC_RELEASE);
            }
            goto out;
        }
        mfx_commit(sh);
        uint32_t gained = want & ~old & before;
        if (gained)
            r = mfx_nudge(h, gained); /* stored and shown; an error says the
                                         edge may be missing */
    } else if (set_data && data != cur->data) {
        mfx_stage(sh, want, data);
        mfx_commit(sh);
    }
out:
    pthread_mutex_unlock(&sh->lock);
    return r;
}

static int mfx_set(struct mfx_handle *h, uint32_t bits)
{
    return mfx_change(h, 0, bits, 0, 0);
}

static int mfx_clear(struct mfx_handle *h, uint32_t bits)
{
    return mfx_change(h, bits, 0, 0, 0);
}

static int mfx_get(struct mfx_handle *h, struct mfx_pair *out)
{
    int r = mfx_lock(h);
    if (r)
        return r;
    if (h->closed) {
        r = -EBADF;
    } else {
        *out = h->sh->slot[h->sh->cur];
    }
    pthread_mutex_unlock(&h->sh->lock);
    return r;
}

/* --- bookkeeping ------------------------------------------------------- */

static int mfx_kind(struct mfx_handle *h) { return h->kind; }
static int mfx_fd(struct mfx_handle *h) { return h->closed ? -1 : h->a; }
static int mfx_peer_fd(struct mfx_handle *h) { return h->closed ? -1 : h->b; }
static int mfx_memfd(struct mfx_handle *h) { return h->closed ? -1 : h->memfd; }

static int mfx_syscalls(struct mfx_handle *h, uint64_t *out)
{
    *out = __atomic_load_n(&h->sh->syscalls, __ATOMIC_RELAXED);
    return 0;
}

static int mfx_recoveries(struct mfx_handle *h)
{
    return (int)(__atomic_load_n(&h->sh->recoveries, __ATOMIC_RELAXED) & 0x7fffffff);
}

static int mfx_mark_shared(struct mfx_handle *h, int in_child)
{
    if (h->closed)
        return -EBADF;
    __atomic_store_n(&h->sh->shared, 1, __ATOMIC_RELEASE);
    /* In the child only the forking thread runs: no change is in flight
     * here, and this handle's fds are this process's own. */
    if (in_child && h->kind == MFX_PIPE && h->b >= 0) {
        close(h->b);
        h->b = -1;
    }
    return 0;
}

static void mfx_close_fds(struct mfx_handle *h)
{
    h->closed = 1;
    close(h->a);
    if (h->b >= 0)
        close(h->b);
    close(h->memfd);
    h->a = h->b = h->memfd = -1;
}

static int mfx_close(struct mfx_handle *h)
{
    int r = mfx_lock(h);
    if (r)
        return r;
    if (!h->closed)
        mfx_close_fds(h);
    pthread_mutex_unlock(&h->sh->lock);
    return 0;
}

static int mfx_free(struct mfx_handle *h)
{
    if (!h)
        return 0;
    if (!h->closed)
        mfx_close_fds(h); /* nothing else can use the handle any more */
    munmap(h->sh, STATE_SIZE);
    free(h);
    return 0;
}
