/* The MaskFD shim: userspace EFD_MASK on kernel IPC objects.
 * Declarations and the calling convention are in maskfd_shim.h; the
 * mechanisms and their measured limits are in docs/maskfd.md.
 *
 * Layout: each backing (stream, dgram, pipe) is one table of operations and
 * facts, struct mfx_backing_ops, with its functions and its part of the
 * shared state beside it.  The generic code (the lock, a change and the
 * commit of its pair, the recovery after a holder died, the getters) calls
 * through the handle's table and never asks which backing it has. */
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
#include <linux/futex.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <eventfd_ext/eventfd_io.h> /* efx_now_ns */

#include <eventfd_ext/shlock.h>

#define MFX_STREAM 1
#define MFX_DGRAM 2
#define MFX_PIPE 3
#define MFX_VALID (POLLIN | POLLPRI | POLLOUT | POLLERR | POLLHUP)
#define MFX_REFUSED_SHIFT 16
#define MFX_MAGIC 0x4d61736bu /* "Mask" */

struct mfx_pair {
    uint32_t events;
    uint64_t data;
};

/* What each backing's kernel objects show now, beyond HUP and ERR (which
 * every backing has: mfx_shared.hup_shown and err_shown). */
struct mfx_stream_state {
    uint32_t queued;    /* bytes queued to A: RX_BYTE (a normal byte) and/or
                           RX_OOB (the out-of-band byte, which shows PRI) */
    uint32_t send_full; /* A's send buffer is full: OUT not shown */
    uint32_t err_spent; /* the peer is gone: ERR cannot come back */
    uint32_t no_oob;    /* the kernel refused MSG_OOB */
};

struct mfx_dgram_state {
    uint32_t in_queued;   /* 1 if a datagram is queued to A: IN shown */
    uint32_t fill_queued; /* datagrams from A queued at the peer (2: OUT not shown) */
};

struct mfx_pipe_state {
    uint32_t in_queued; /* 1 if a byte is in the pipe: IN shown */
};

/* The state every holder maps.  Any holder can write anything into it (a
 * bug, or a peer that means harm), so no word of it is trusted: nothing in
 * it is a pointer, a length or a lock kind that libc would follow; indices
 * are masked at each use; counts drive no loop; the lock is the shim's own
 * futex word (mfx_lock); a state found out of range is repaired from what
 * the kernel objects show (mfx_check).  What the shim must trust (the
 * backing, the fds, A's address, who created the state) lives in the
 * handle, in this process's own memory. */
struct mfx_shared {
    /* First, so that the tests read the holder from it: 0 when free, else
     * the holder's thread id, with EFX_SHLOCK_WAITERS when someone may sleep
     * on it (the FUTEX_TID_MASK / FUTEX_WAITERS layout). */
    uint32_t lock;
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
    /* What the kernel objects show now, which may differ from the stored
     * events only by documented extra bits. */
    uint32_t hup_shown; /* sockets: the irreversible shutdown happened;
                           pipe: the writer is closed */
    uint32_t err_shown;
    union {
        struct mfx_stream_state stream;
        struct mfx_dgram_state dgram;
        struct mfx_pipe_state pipe;
    } k;
    uint32_t shared;    /* held by more than one process */
    uint32_t recoveries; /* times a holder died inside a change, or the
                            state was found corrupt and repaired */
    /* The inode numbers of the handed-out end and of its peer (a pipe's
     * two ends share one), so that mfx_attach adopts this state's own
     * kernel objects only, never another socket, pipe or file. */
    uint64_t fd_ino, peer_ino;
};

struct mfx_backing_ops;

struct mfx_handle {
    struct efx_owner *owner; /* the lifecycle core: every locked call enters it */
    struct mfx_shared *sh;
    const struct mfx_backing_ops *ops;
    /* fd: the end handed out, which users poll ("A" in the comments);
     * peer_fd: the other end, through which the shim makes fd show events
     * ("the peer"; -1 when closed or left with its creator). */
    int memfd, fd, peer_fd;
    /* closed: no call starts on the fds any more (each looks once it has
     * the lock); fds_closed: they are closed. */
    int closed, fds_closed;
    /* The process that created the state with this handle, 0 if adopted (a
     * forked child inherits the number, which is then not its own): the
     * pipe's writer is its. */
    pid_t creator;
    /* dgram: A's autobound address, for the peer to reconnect to. */
    socklen_t fd_addr_len;
    struct sockaddr_un fd_addr;
};

/* One backing: its operations and its facts.  Every function is called
 * with the state's lock held (open: before anyone else can see it). */
struct mfx_backing_ops {
    const char *name;
    int kind; /* MFX_STREAM, ... (stored in the state; mfx_kind) */
    /* Bits made by the last close of an object another process may also
     * hold a copy of: gaining one returns -EBUSY if it did not show. */
    uint32_t last_close_bits;
    /* Bits only the creating process may change (-EPERM elsewhere). */
    uint32_t owner_only_bits;
    /* The peer fd goes with the MaskFD to other processes (fork keeps it,
     * multiprocessing sends it); otherwise it stays with its creator. */
    int peer_travels;
    /* Create the kernel objects into h->fd and h->peer_fd: 0, or -errno. */
    int (*open)(struct mfx_handle *h);
    /* Learn from adopted fds (h->fd, h->peer_fd) what the handle keeps in this
     * process's own memory: 0, or -errno (-EINVAL: not this backing's). */
    int (*adopt)(struct mfx_handle *h);
    /* Make the kernel objects show want (plus documented extras), updating
     * the state fields: 0, or -errno (the fields say what they reached). */
    int (*apply)(struct mfx_handle *h, uint32_t want);
    /* What the kernel objects show now, from the state fields alone. */
    uint32_t (*shown)(const struct mfx_shared *sh);
    /* The bits it cannot set now, and cannot clear now. */
    void (*limits)(const struct mfx_handle *h, uint32_t *cant_set, uint32_t *cant_clear);
    /* Recovery after a holder died mid-change: bring the kernel objects to
     * a known base state and the fields in line with it; may narrow *want
     * to what this process can show.  0, or -1 to leave it to the next
     * caller (nothing could be learnt). */
    int (*recover)(struct mfx_handle *h, uint32_t *want);
    /* gained: bits the stored mask gained that were already shown as
     * extras (no syscall made for them): wake the fd's waiters without
     * changing what it shows.  0, or -errno. */
    int (*edge)(struct mfx_handle *h, uint32_t gained);
    /* Bring its part of the shared state back into the values it can
     * have (any holder can write anything there): 1 if it had to. */
    int (*clamp)(struct mfx_shared *sh);
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

static int neg_errno(void) { return errno ? -errno : -EIO; }

/* At most this many reads empty a queue: a queue that keeps filling is
 * someone else writing into it (a holder of the peer), and must not keep a
 * change, with the lock held, from ending. */
#define MFX_MAX_READS 64

/* Drain A's receive queue (never blocks: every fd is O_NONBLOCK). */
static int mfx_drain(struct mfx_shared *sh, int fd, int sock)
{
    char buf[256];
    for (int i = 0; i < MFX_MAX_READS; i++) {
        ssize_t n = sock ? SYS(sh, recv(fd, buf, sizeof buf, MSG_DONTWAIT))
                         : SYS(sh, read(fd, buf, sizeof buf));
        if (n == 0 || (n < 0 && errno == EAGAIN))
            return 0;
        if (n < 0 && errno != EINTR)
            return neg_errno();
        if (n > 0 && n < (ssize_t)sizeof buf && !sock)
            return 0;
    }
    return 0;
}

/* Drain every byte or datagram queued to fd (recovery only). */
static void mfx_drain_all(struct mfx_shared *sh, int fd, int sock)
{
    for (int i = 0; i < MFX_MAX_READS; i++) {
        ssize_t n = sock ? SYS(sh, recv(fd, mfx_fill, FILL_LEN, MSG_DONTWAIT))
                         : SYS(sh, read(fd, mfx_fill, FILL_LEN));
        if (n == 0 || (n < 0 && errno != EINTR))
            return;
    }
}

/* --- shared by the two socket backings ---------------------------------- */

static int sock_open(struct mfx_handle *h, int type)
{
    int fds[2];
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds))
        return neg_errno();
    h->fd = fds[0];
    h->peer_fd = fds[1];
    /* The kernel raises 1 to its minimum (4608 on Linux): the fewer bytes
     * it takes to fill, the cheaper clearing OUT is. */
    int one = 1;
    if (setsockopt(h->fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof one))
        return neg_errno();
    return 0;
}

/* Take A's pending socket error: clears ERR. */
static int sock_take_err(struct mfx_handle *h)
{
    int err;
    socklen_t len = sizeof err;
    if (SYS(h->sh, getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len)))
        return neg_errno();
    h->sh->err_shown = 0;
    return 0;
}

/* The edge of a socket whose A end is fully shut down (HUP shown):
 * shutdown(A) again changes nothing and calls its sk_state_change, a
 * wake-up with key 0, which every epoll entry accepts. */
static int sock_edge_after_hup(struct mfx_handle *h)
{
    if (SYS(h->sh, shutdown(h->fd, SHUT_RDWR)))
        return neg_errno();
    return 0;
}

/* How both socket backings end a change, once ERR is raised if asked:
 * take a pending error when ERR is not wanted, and shut hup_end down
 * (which end depends on the backing) when HUP is. */
static int sock_clear_err_raise_hup(struct mfx_handle *h, uint32_t want, int hup_end)
{
    struct mfx_shared *sh = h->sh;
    if (!(want & POLLERR) && sh->err_shown) {
        int r = sock_take_err(h);
        if (r)
            return r;
    }
    if ((want & POLLHUP) && !sh->hup_shown) {
        if (SYS(sh, shutdown(hup_end, SHUT_RDWR)))
            return neg_errno();
        sh->hup_shown = 1;
    }
    return 0;
}

/* --- stream: one end of an AF_UNIX stream socketpair -------------------- */

static int stream_open(struct mfx_handle *h) { return sock_open(h, SOCK_STREAM); }

/* The stream and the pipe keep nothing beside their fds. */
static int mfx_adopt_nothing(struct mfx_handle *h) { return 0; }

static int stream_rx(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    struct mfx_stream_state *st = &sh->k.stream;
    int want_pri = !!(want & POLLPRI), want_in = !!(want & POLLIN);
    char c = 0;
    if (sh->hup_shown) {
        /* RCV_SHUTDOWN keeps A readable: IN is shown whatever is asked. */
        if (!want_pri && (st->queued & RX_OOB)) {
            if (SYS(sh, recv(h->fd, &c, 1, MSG_OOB | MSG_DONTWAIT)) < 0 && errno != EINVAL)
                return neg_errno();
            st->queued &= ~RX_OOB;
        }
        return 0;
    }
    if (want_pri && !(st->queued & RX_OOB)) {
        if (SYS(sh, send(h->peer_fd, "!", 1, MSG_OOB | MSG_DONTWAIT | MSG_NOSIGNAL)) != 1) {
            if (errno == EOPNOTSUPP || errno == EINVAL) {
                st->no_oob = 1;
                return -EOPNOTSUPP;
            }
            return neg_errno();
        }
        st->queued |= RX_OOB; /* shows IN too */
        return 0;
    }
    if (!want_pri && (st->queued & RX_OOB)) {
        /* recv(MSG_OOB) takes the byte but leaves IN shown until the next
         * recv consumes the spent skb: drain, then restore IN if asked. */
        if (SYS(sh, recv(h->fd, &c, 1, MSG_OOB | MSG_DONTWAIT)) < 0 && errno != EINVAL)
            return neg_errno();
        int r = mfx_drain(sh, h->fd, 1);
        if (r)
            return r;
        st->queued = 0;
    }
    if (st->queued & RX_OOB)
        return 0; /* PRI stays: IN is shown whatever is asked */
    if (want_in && !st->queued) {
        if (SYS(sh, send(h->peer_fd, "i", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
            return neg_errno();
        st->queued = RX_BYTE;
    } else if (!want_in && st->queued) {
        char buf[64];
        if (SYS(sh, recv(h->fd, buf, sizeof buf, MSG_DONTWAIT)) < 0 && errno != EAGAIN)
            return neg_errno();
        st->queued = 0;
    }
    return 0;
}

static int stream_out(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    struct mfx_stream_state *st = &sh->k.stream;
    int fill = !(want & POLLOUT);
    if (fill == (int)st->send_full || (fill && sh->hup_shown))
        return 0; /* after HUP A cannot send: OUT stays (an extra bit) */
    if (!fill && (want & POLLERR) && !sh->err_shown)
        return 0; /* raising ERR below needs the unread fill at the peer,
                     and frees it: OUT shows then */
    if (fill) {
        /* One send larger than the buffer takes what fits and leaves A
         * unwritable; again only if a reader freed room meanwhile. */
        for (int i = 0; i < MFX_MAX_READS; i++) {
            ssize_t n = SYS(sh, send(h->fd, mfx_fill, FILL_LEN, MSG_DONTWAIT | MSG_NOSIGNAL));
            if ((n >= 0 && n < FILL_LEN) || (n < 0 && errno == EAGAIN))
                break;
            if (n < 0 && errno != EINTR)
                return neg_errno();
        }
    } else if (h->peer_fd >= 0) {
        if (SYS(sh, recv(h->peer_fd, mfx_fill, FILL_LEN, MSG_DONTWAIT)) < 0 && errno != EAGAIN)
            return neg_errno();
    } else if (!sh->hup_shown) {
        return -EBADF; /* the peer was closed here by a refused ERR */
    }
    st->send_full = (uint32_t)fill;
    return 0;
}

static int stream_err_hup(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    if ((want & POLLERR) && !sh->err_shown) {
        /* The peer's release with unread data raises ECONNRESET on A, and
         * HUP with it; it frees A's queued bytes, so OUT shows too. */
        char c = 0;
        if (!sh->hup_shown)
            (void)SYS(sh, send(h->fd, &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL));
        (void)SYS(sh, close(h->peer_fd));
        h->peer_fd = -1;
        sh->k.stream.err_spent = 1;
        /* A copy of the peer in a process forked without the Python hooks
         * (which mark the state shared, so that ERR is refused) keeps the
         * peer alive: ERR shows only at that copy's close.  Say so. */
        struct pollfd pfd = {h->fd, 0, 0};
        if (SYS(sh, poll(&pfd, 1, 0)) < 0)
            return neg_errno();
        if (!(pfd.revents & POLLERR))
            return -EBUSY;
        sh->err_shown = sh->hup_shown = 1;
        sh->k.stream.send_full = 0;
        return 0;
    }
    /* HUP: the peer's shutdown, which leaves A readable (EOF). */
    return sock_clear_err_raise_hup(h, want, h->peer_fd);
}

static int stream_apply(struct mfx_handle *h, uint32_t want)
{
    int r;
    /* PRI first: a kernel without AF_UNIX OOB refuses it before any other
     * bit has changed.  HUP and ERR last: they freeze the rest. */
    if ((r = stream_rx(h, want)) || (r = stream_out(h, want)))
        return r;
    return stream_err_hup(h, want);
}

static uint32_t stream_shown(const struct mfx_shared *sh)
{
    const struct mfx_stream_state *st = &sh->k.stream;
    return (sh->err_shown ? POLLERR : 0) | (sh->hup_shown ? POLLHUP : 0) |
           (st->queued || sh->hup_shown ? POLLIN : 0) | (st->queued & RX_OOB ? POLLPRI : 0) |
           (st->send_full ? 0 : POLLOUT);
}

static void stream_limits(const struct mfx_handle *h, uint32_t *cant_set, uint32_t *cant_clear)
{
    const struct mfx_shared *sh = h->sh;
    const struct mfx_stream_state *st = &sh->k.stream;
    uint32_t s = 0, c = 0;
    if (st->no_oob)
        s |= POLLPRI;
    if (sh->hup_shown) {
        c |= POLLHUP | POLLOUT; /* the peer shut down: A can no longer fill */
        if (!(st->queued & RX_OOB))
            s |= POLLPRI;       /* nor can the peer send OOB */
    }
    if (st->err_spent && !sh->err_shown)
        s |= POLLERR;           /* the peer that raised it is gone */
    if (!sh->err_shown && !st->err_spent && sh->shared)
        s |= POLLERR;           /* needs the peer's last reference */
    if (!sh->err_shown && sh->hup_shown && !st->send_full)
        s |= POLLERR;           /* and unread data at the peer, which
                                   A cannot send after the shutdown */
    if (h->peer_fd < 0 && !sh->hup_shown)
        s |= POLLIN | POLLPRI | POLLOUT | POLLERR; /* an ERR refused with
            EBUSY closed this process's peer: it cannot send or drain */
    *cant_set = s;
    *cant_clear = c;
}

/* Drain both queues; after HUP (nothing can be sent again) keep what shows. */
static int stream_recover(struct mfx_handle *h, uint32_t *want)
{
    struct mfx_shared *sh = h->sh;
    struct mfx_stream_state *st = &sh->k.stream;
    struct pollfd pfd = {h->fd, POLLIN | POLLPRI | POLLOUT, 0};
    char c;
    if (SYS(sh, poll(&pfd, 1, 0)) < 0)
        return -1;
    sh->hup_shown = !!(pfd.revents & POLLHUP);
    sh->err_shown = !!(pfd.revents & POLLERR);
    if (!sh->hup_shown) {
        (void)SYS(sh, recv(h->fd, &c, 1, MSG_OOB | MSG_DONTWAIT));
        mfx_drain_all(sh, h->fd, 1);
        st->queued = 0;
        if (h->peer_fd >= 0) {
            mfx_drain_all(sh, h->peer_fd, 1);
            st->send_full = 0;
        } else {
            st->send_full = !(pfd.revents & POLLOUT);
        }
    } else {
        st->queued = pfd.revents & POLLPRI ? RX_OOB : 0;
        st->send_full = !(pfd.revents & POLLOUT);
    }
    return 0;
}

/* An edge for IN (or PRI) that A shows already: new data must reach A,
 * since only that wakes its readers with IN in the key.  The bytes sent
 * for edges must not pile up: each one is charged to the peer's send
 * buffer until A reads it, and a few hundred of them (an IN set and
 * cleared again and again while PRI shows) would make the peer's send fail
 * with EAGAIN after the change is stored.  So every edge takes back what
 * the one before left.
 *
 * With the out-of-band byte queued, the new byte is another out-of-band
 * one: the kernel then makes it the mark and the old one normal data ahead
 * of it, and one recv takes the normal bytes ahead of the mark and stops
 * there.  A recv that starts at the mark would drop it (PRI gone), hence
 * SIOCATMARK first (a kernel without it: the old byte is known to be
 * there).  Without it, a byte ahead of the new one: recv takes back as
 * many bytes as were queued before the send. */
static int stream_edge_in(struct mfx_handle *h)
{
    struct mfx_shared *sh = h->sh;
    struct mfx_stream_state *st = &sh->k.stream;
    char buf[256];
    if (st->queued & RX_OOB) {
        if (SYS(sh, send(h->peer_fd, "!", 1, MSG_OOB | MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
            return neg_errno();
        int at_mark = 0;
        if (SYS(sh, ioctl(h->fd, SIOCATMARK, &at_mark)) || !at_mark) {
            if (SYS(sh, recv(h->fd, buf, sizeof buf, MSG_DONTWAIT)) < 0) {
                st->queued |= RX_BYTE; /* left queued: harmless, IN shows */
                return 0;
            }
        }
        st->queued = RX_OOB;
        return 0;
    }
    int before = 0;
    if (SYS(sh, ioctl(h->fd, FIONREAD, &before)))
        before = 0;
    if (SYS(sh, send(h->peer_fd, "i", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
        return neg_errno();
    st->queued |= RX_BYTE;
    if (before > 0)
        (void)SYS(sh, recv(h->fd, buf, (size_t)before < sizeof buf ? (size_t)before : sizeof buf,
                           MSG_DONTWAIT));
    return 0;
}

static int stream_edge(struct mfx_handle *h, uint32_t gained)
{
    if (h->sh->hup_shown)
        return sock_edge_after_hup(h);
    if (gained & POLLIN)
        return stream_edge_in(h);
    return 0;
}

static int stream_clamp(struct mfx_shared *sh)
{
    struct mfx_stream_state *st = &sh->k.stream;
    if (st->queued <= (RX_BYTE | RX_OOB) && st->send_full <= 1 && st->err_spent <= 1 &&
        st->no_oob <= 1)
        return 0;
    st->queued &= RX_BYTE | RX_OOB;
    st->send_full = !!st->send_full;
    st->err_spent = !!st->err_spent;
    st->no_oob = !!st->no_oob;
    return 1;
}

static const struct mfx_backing_ops mfx_stream_ops = {
    .name = "stream",
    .kind = MFX_STREAM,
    .last_close_bits = POLLERR, /* the peer's last close raises it */
    .owner_only_bits = 0,
    .peer_travels = 1,
    .open = stream_open,
    .adopt = mfx_adopt_nothing,
    .apply = stream_apply,
    .shown = stream_shown,
    .limits = stream_limits,
    .recover = stream_recover,
    .edge = stream_edge,
    .clamp = stream_clamp,
};

/* --- dgram: one end of an AF_UNIX datagram socketpair ------------------- */

/* A's autobound address into the handle (creation and adoption). */
static int dgram_learn_address(struct mfx_handle *h)
{
    h->fd_addr_len = sizeof h->fd_addr;
    if (getsockname(h->fd, (struct sockaddr *)&h->fd_addr, &h->fd_addr_len))
        return neg_errno();
    if (h->fd_addr_len > sizeof h->fd_addr || h->fd_addr_len <= sizeof(sa_family_t))
        return -EINVAL; /* not autobound: not a MaskFD's A */
    return 0;
}

static int dgram_open(struct mfx_handle *h)
{
    int r = sock_open(h, SOCK_DGRAM);
    if (r)
        return r;
    /* Autobind A to an abstract name, so that the peer can reconnect to it
     * after the disconnect that raises ERR. */
    sa_family_t family = AF_UNIX;
    if (bind(h->fd, (struct sockaddr *)&family, sizeof family))
        return neg_errno();
    return dgram_learn_address(h);
}

static int dgram_rx(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    struct mfx_dgram_state *dg = &sh->k.dgram;
    int want_in = !!(want & POLLIN);
    char buf[64];
    if (sh->hup_shown || want_in == (int)dg->in_queued)
        return 0; /* after the shutdown A is readable whatever is asked */
    if (want_in) {
        if (SYS(sh, send(h->peer_fd, "i", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
            return neg_errno();
    } else if (SYS(sh, recv(h->fd, buf, sizeof buf, MSG_DONTWAIT)) < 0 && errno != EAGAIN) {
        return neg_errno();
    }
    dg->in_queued = (uint32_t)want_in;
    return 0;
}

static int dgram_out(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    struct mfx_dgram_state *dg = &sh->k.dgram;
    char buf[64];
    if (!(want & POLLOUT)) {
        /* A cannot send after its shutdown, and a send would consume a
         * pending ERR, whose raising purged the fill: OUT stays (extra). */
        if (sh->hup_shown || sh->err_shown || (want & POLLERR))
            return 0; /* (raising ERR below purges the fill anyway) */
        /* Two queued one-byte datagrams take A past a quarter of the
         * minimum send buffer, where poll stops reporting OUT.  (The count
         * is read once: the loop must not follow a shared word.) */
        uint32_t queued = dg->fill_queued;
        for (; queued < 2; queued++) {
            if (SYS(sh, send(h->fd, "o", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
                return neg_errno();
            dg->fill_queued = queued + 1;
        }
    } else if (dg->fill_queued >= 2) {
        if (SYS(sh, recv(h->peer_fd, buf, sizeof buf, MSG_DONTWAIT)) < 0)
            return neg_errno();
        dg->fill_queued = 1;
    }
    return 0;
}

static int dgram_err_hup(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    struct mfx_dgram_state *dg = &sh->k.dgram;
    if ((want & POLLERR) && !sh->err_shown) {
        /* A peer that disconnects with unread datagrams from A raises
         * ECONNRESET on A (and purges them); then it reconnects. */
        sa_family_t unspec = AF_UNSPEC;
        if (!dg->fill_queued) {
            if (SYS(sh, send(h->fd, "e", 1, MSG_DONTWAIT | MSG_NOSIGNAL)) != 1)
                return neg_errno();
        }
        if (SYS(sh, connect(h->peer_fd, (struct sockaddr *)&unspec, sizeof unspec)))
            return neg_errno();
        dg->fill_queued = 0;
        sh->err_shown = 1;
        if (SYS(sh, connect(h->peer_fd, (struct sockaddr *)&h->fd_addr, h->fd_addr_len)))
            return neg_errno();
    }
    /* HUP: A's own shutdown (a datagram peer's does not reach A). */
    return sock_clear_err_raise_hup(h, want, h->fd);
}

static int dgram_apply(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    int r;
    /* Clear ERR first, so that the fill below can run; and since a recv on
     * A reports and consumes a pending ERR instead of the datagram, take it
     * before that recv too, and raise it again last. */
    if (sh->err_shown && (!(want & POLLERR) || (sh->k.dgram.in_queued && !(want & POLLIN) &&
                                                 !sh->hup_shown))) {
        if ((r = sock_take_err(h)))
            return r;
    }
    if ((r = dgram_rx(h, want)) || (r = dgram_out(h, want)))
        return r;
    return dgram_err_hup(h, want);
}

static uint32_t dgram_shown(const struct mfx_shared *sh)
{
    const struct mfx_dgram_state *dg = &sh->k.dgram;
    return (sh->err_shown ? POLLERR : 0) | (sh->hup_shown ? POLLHUP : 0) |
           (dg->in_queued || sh->hup_shown ? POLLIN : 0) |
           (dg->fill_queued >= 2 ? 0 : POLLOUT);
}

static void dgram_limits(const struct mfx_handle *h, uint32_t *cant_set, uint32_t *cant_clear)
{
    const struct mfx_shared *sh = h->sh;
    uint32_t s = POLLPRI, c = 0; /* datagram sockets have no out-of-band data */
    if (sh->hup_shown) {
        c |= POLLHUP | POLLOUT;
        if (!sh->err_shown && !sh->k.dgram.fill_queued)
            s |= POLLERR; /* raising ERR needs a datagram A can no longer send */
    }
    *cant_set = s;
    *cant_clear = c;
}

/* Reconnect the peer whatever step the dead holder was in (connect to the
 * peer it has already changes nothing).  Before HUP, take a pending ERR and
 * drop the fill and the IN datagrams: all of it can be made again.  After
 * HUP (A can no longer send) keep what shows. */
static int dgram_recover(struct mfx_handle *h, uint32_t *want)
{
    struct mfx_shared *sh = h->sh;
    struct mfx_dgram_state *dg = &sh->k.dgram;
    struct pollfd pfd = {h->fd, POLLIN | POLLPRI | POLLOUT, 0};
    int err;
    socklen_t len = sizeof err;
    if (h->peer_fd >= 0)
        (void)SYS(sh, connect(h->peer_fd, (struct sockaddr *)&h->fd_addr, h->fd_addr_len));
    if (SYS(sh, poll(&pfd, 1, 0)) < 0)
        return -1;
    sh->hup_shown = !!(pfd.revents & POLLHUP);
    dg->in_queued = 0;
    if (sh->hup_shown) {
        sh->err_shown = !!(pfd.revents & POLLERR);
        dg->fill_queued = pfd.revents & POLLOUT ? 0 : 2;
        return 0;
    }
    (void)SYS(sh, getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len));
    if (h->peer_fd >= 0)
        mfx_drain_all(sh, h->peer_fd, 1);
    mfx_drain_all(sh, h->fd, 1);
    sh->err_shown = 0;
    dg->fill_queued = 0;
    return 0;
}

/* ERR gaining OUT: setting SO_SNDBUF to the value it has calls
 * sk_write_space, which wakes with EPOLLOUT while A is writable. */
static int dgram_edge(struct mfx_handle *h, uint32_t gained)
{
    if (h->sh->hup_shown)
        return sock_edge_after_hup(h);
    if (gained & POLLOUT) {
        int one = 1;
        if (SYS(h->sh, setsockopt(h->fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof one)))
            return neg_errno();
    }
    return 0;
}

static int dgram_clamp(struct mfx_shared *sh)
{
    struct mfx_dgram_state *dg = &sh->k.dgram;
    if (dg->in_queued <= 1 && dg->fill_queued <= 2)
        return 0;
    dg->in_queued = !!dg->in_queued;
    dg->fill_queued = dg->fill_queued > 2 ? 2 : dg->fill_queued;
    return 1;
}

static const struct mfx_backing_ops mfx_dgram_ops = {
    .name = "dgram",
    .kind = MFX_DGRAM,
    .last_close_bits = 0,
    .owner_only_bits = 0,
    .peer_travels = 1,
    .open = dgram_open,
    .adopt = dgram_learn_address,
    .apply = dgram_apply,
    .shown = dgram_shown,
    .limits = dgram_limits,
    .recover = dgram_recover,
    .edge = dgram_edge,
    .clamp = dgram_clamp,
};

/* --- pipe: the read end of a pipe ---------------------------------------- */

static int pipe_open(struct mfx_handle *h)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK))
        return neg_errno();
    h->fd = fds[0];
    h->peer_fd = fds[1];
    return 0;
}

static int pipe_open_writer(struct mfx_handle *h)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", h->fd);
    int fd = SYS(h->sh, open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    return fd < 0 ? neg_errno() : fd;
}

static int pipe_apply(struct mfx_handle *h, uint32_t want)
{
    struct mfx_shared *sh = h->sh;
    struct mfx_pipe_state *pp = &sh->k.pipe;
    int want_in = !!(want & POLLIN), want_hup = !!(want & POLLHUP);
    /* getpid() is a real syscall: ask only when HUP changes. */
    if (want_hup != !!sh->hup_shown && h->creator != getpid())
        return -EPERM;
    if (want_in != (int)pp->in_queued) {
        if (want_in) {
            /* Outside the owner, or while HUP is shown, a writer opened
             * for this byte alone (its close keeps HUP as it was). */
            int w = h->peer_fd;
            if (w < 0 && (w = pipe_open_writer(h)) < 0)
                return w;
            ssize_t n = SYS(sh, write(w, "i", 1));
            int err = errno;
            if (w != h->peer_fd)
                SYS(sh, close(w));
            if (n != 1)
                return err ? -err : -EIO;
        } else {
            int r = mfx_drain(sh, h->fd, 0);
            if (r)
                return r;
        }
        pp->in_queued = (uint32_t)want_in;
    }
    if (want_hup && !sh->hup_shown) {
        SYS(sh, close(h->peer_fd));
        h->peer_fd = -1;
        /* A copy of the writer elsewhere (a child forked an instant ago,
         * before its after-fork hook closed it; or forked from C, which runs
         * no hook) keeps HUP away: reopen the writer and refuse. */
        struct pollfd pfd = {h->fd, 0, 0};
        int n = SYS(sh, poll(&pfd, 1, 0));
        if (n < 0 || !(pfd.revents & POLLHUP)) {
            int r = n < 0 ? neg_errno() : -EBUSY;
            int w = pipe_open_writer(h);
            if (w >= 0)
                h->peer_fd = w;
            return r;
        }
        sh->hup_shown = 1;
    } else if (!want_hup && sh->hup_shown) {
        /* A writer still open here means the state lied (someone wrote
         * on the page): keep it, never open a second one over its number. */
        if (h->peer_fd < 0) {
            int w = pipe_open_writer(h);
            if (w < 0)
                return w;
            h->peer_fd = w;
        }
        sh->hup_shown = 0;
    }
    return 0;
}

static uint32_t pipe_shown(const struct mfx_shared *sh)
{
    return (sh->err_shown ? POLLERR : 0) | (sh->hup_shown ? POLLHUP : 0) |
           (sh->k.pipe.in_queued ? POLLIN : 0);
}

static void pipe_limits(const struct mfx_handle *h, uint32_t *cant_set, uint32_t *cant_clear)
{
    *cant_set = POLLPRI | POLLOUT | POLLERR; /* a pipe's read end never shows them */
    *cant_clear = 0;
}

/* Drain the pipe.  Only the creator can change HUP: elsewhere keep what
 * shows. */
static int pipe_recover(struct mfx_handle *h, uint32_t *want)
{
    struct mfx_shared *sh = h->sh;
    struct pollfd pfd = {h->fd, POLLIN | POLLPRI | POLLOUT, 0};
    if (SYS(sh, poll(&pfd, 1, 0)) < 0)
        return -1;
    sh->hup_shown = !!(pfd.revents & POLLHUP);
    mfx_drain_all(sh, h->fd, 0);
    sh->k.pipe.in_queued = 0;
    if (h->creator != getpid())
        *want = (*want & ~(uint32_t)POLLHUP) | (sh->hup_shown ? POLLHUP : 0);
    return 0;
}

/* A pipe shows no extra bit: no edge is ever owed. */
static int pipe_edge(struct mfx_handle *h, uint32_t gained) { return 0; }

static int pipe_clamp(struct mfx_shared *sh)
{
    if (sh->k.pipe.in_queued <= 1)
        return 0;
    sh->k.pipe.in_queued = 1;
    return 1;
}

static const struct mfx_backing_ops mfx_pipe_ops = {
    .name = "pipe",
    .kind = MFX_PIPE,
    .last_close_bits = POLLHUP, /* the writer's last close makes it */
    .owner_only_bits = POLLHUP, /* the creator holds the writer */
    .peer_travels = 0,          /* the writer stays with its creator */
    .open = pipe_open,
    .adopt = mfx_adopt_nothing,
    .apply = pipe_apply,
    .shown = pipe_shown,
    .limits = pipe_limits,
    .recover = pipe_recover,
    .edge = pipe_edge,
    .clamp = pipe_clamp,
};

/* The backings by their kind number. */
static const struct mfx_backing_ops *const mfx_backings[] = {
    [MFX_STREAM] = &mfx_stream_ops,
    [MFX_DGRAM] = &mfx_dgram_ops,
    [MFX_PIPE] = &mfx_pipe_ops,
};

static const struct mfx_backing_ops *mfx_backing_of(uint32_t kind)
{
    return kind < sizeof mfx_backings / sizeof *mfx_backings ? mfx_backings[kind] : NULL;
}

/* --- the generic code ---------------------------------------------------- */

static void mfx_resync(struct mfx_handle *h);

/* Whether close() has begun: looked at once the lock is held.  Sequentially
 * consistent, like the lock's taking and mfx_close's store and load, so
 * that a close without the lock and a call taking it cannot miss each
 * other (mfx_close). */
static int mfx_closed(const struct mfx_handle *h)
{
    return __atomic_load_n(&h->closed, __ATOMIC_SEQ_CST);
}

/* The committed and the staged slot: shared words, masked at every use so
 * that no value a holder wrote can index outside the pair. */
static uint32_t mfx_cur(const struct mfx_shared *sh)
{
    return __atomic_load_n(&sh->cur, __ATOMIC_ACQUIRE) & 1u;
}

static uint32_t mfx_next(const struct mfx_shared *sh)
{
    return __atomic_load_n(&sh->next, __ATOMIC_ACQUIRE) & 1u;
}

/* Under the lock: bring every shared word back into the values it can have.
 * A state out of range was written by something else than the shim (a
 * peer scribbling on the page): keep the committed pair (its event bits
 * masked), drop a staged one (a change in flight cannot be told from a
 * lie), count it as a recovery and make the kernel objects show the pair
 * again (mfx_resync). */
static void mfx_check(struct mfx_handle *h)
{
    struct mfx_shared *sh = h->sh;
    int bad = h->ops->clamp(sh);
    if (!bad && sh->cur <= 1 && sh->next <= 1 && !(sh->slot[0].events & ~MFX_VALID) &&
        !(sh->slot[1].events & ~MFX_VALID) && sh->need_resync <= 1 && sh->hup_shown <= 1 &&
        sh->err_shown <= 1 && sh->shared <= 1)
        return;
    uint32_t cur = mfx_cur(sh);
    sh->cur = sh->next = cur;
    sh->slot[0].events &= MFX_VALID;
    sh->slot[1].events &= MFX_VALID;
    sh->hup_shown = !!sh->hup_shown;
    sh->err_shown = !!sh->err_shown;
    sh->shared = 1; /* whatever it said: another process has had the page */
    sh->recoveries++;
    sh->need_resync = 1;
}

/* --- the lock: shlock.h's futex word (the holder's thread id) ------------- */

static void mfx_unlock_state(struct mfx_shared *sh)
{
    efx_shlock_release(&sh->lock);
}

/* Take the state's lock: 0, or -EINTR (after a slice, or a signal).  A
 * holder that died inside a change may have left the kernel objects
 * anywhere between the old and the new pair, and a state that was written
 * over may say anything: make the kernel objects show the stored pair
 * again before going on (mfx_resync). */
static int mfx_lock_state(struct mfx_handle *h)
{
    struct mfx_shared *sh = h->sh;
    int took_over;
    int r = efx_shlock_take(&sh->lock, &took_over);
    if (r)
        return r;
    if (took_over) {
        sh->recoveries++;
        sh->need_resync = 1;
    }
    mfx_check(h);
    if (sh->need_resync && !mfx_closed(h))
        mfx_resync(h); /* clears need_resync once done */
    return 0;
}

/* Enter the owner, then take the state's lock: 0, or -errno (-EBADF once
 * closed: the caller reports the object closed).  mfx_unlock undoes both,
 * so no fd of this handle is closed while a locked call uses it. */
static int mfx_lock(struct mfx_handle *h)
{
    if (h->owner && efxo_enter(h->owner))
        return -EBADF;
    int r = mfx_lock_state(h);
    if (r && h->owner)
        efxo_leave(h->owner);
    return r;
}

static void mfx_unlock(struct mfx_handle *h)
{
    mfx_unlock_state(h->sh);
    if (h->owner)
        efxo_leave(h->owner);
}

/* --- creation ---------------------------------------------------------- */

static struct mfx_shared *mfx_map(int memfd)
{
    void *p = mmap(NULL, STATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* The seals every MaskFD state carries from its creation on: no holder
 * can shrink the memfd (every other holder's next access to the page would
 * be SIGBUS) or grow it, and none can add a seal (F_SEAL_FUTURE_WRITE would
 * make the next adopter's mapping fail). */
#define MFX_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static uint64_t mfx_ino(int fd)
{
    struct stat st;
    return fstat(fd, &st) ? 0 : (uint64_t)st.st_ino;
}

static int mfx_new(int kind, struct mfx_handle **out)
{
    const struct mfx_backing_ops *ops = kind > 0 ? mfx_backing_of((uint32_t)kind) : NULL;
    if (!ops)
        return -EINVAL;
    struct mfx_handle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    int r = 0;
    h->memfd = h->fd = h->peer_fd = -1;
    h->ops = ops;
    h->memfd = memfd_create("eventfd_ext-maskfd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (h->memfd < 0 || ftruncate(h->memfd, STATE_SIZE) ||
        fcntl(h->memfd, F_ADD_SEALS, MFX_SEALS))
        goto fail_errno;
    h->sh = mfx_map(h->memfd);
    if (!h->sh)
        goto fail_errno;
    h->creator = getpid(); /* the page is new: all zero, the lock free */
    if ((r = ops->open(h)))
        goto fail;
    h->sh->kind = (uint32_t)ops->kind;
    h->sh->fd_ino = mfx_ino(h->fd);
    h->sh->peer_ino = mfx_ino(h->peer_fd);
    /* The patch's fd starts with no events, but a fresh socket is
     * writable: fill its send buffer. */
    if ((r = ops->apply(h, 0)))
        goto fail;
    h->sh->magic = MFX_MAGIC;
    *out = h;
    return 0;
fail_errno:
    r = neg_errno();
fail:
    if (h->sh)
        munmap(h->sh, STATE_SIZE);
    if (h->memfd >= 0)
        close(h->memfd);
    if (h->fd >= 0)
        close(h->fd);
    if (h->peer_fd >= 0)
        close(h->peer_fd);
    free(h);
    return r;
}

/* 0 if memfd is a MaskFD state no holder can resize: a sealed file at
 * least a page long; -EINVAL otherwise, or another -errno. */
static int mfx_check_memfd(int memfd)
{
    struct stat st;
    if (fstat(memfd, &st))
        return neg_errno();
    if (!S_ISREG(st.st_mode) || st.st_size < STATE_SIZE)
        return -EINVAL;
    int seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0)
        return errno == EBADF ? -EBADF : -EINVAL; /* not a memfd */
    return (seals & MFX_SEALS) == MFX_SEALS ? 0 : -EINVAL;
}

/* 0 if fd is this state's end (a: the handed-out one) of its kernel
 * object: the right type and the inode recorded at creation. */
static int mfx_check_end(const struct mfx_backing_ops *ops, uint64_t ino, int fd, int handed_out)
{
    struct stat st;
    if (fstat(fd, &st))
        return neg_errno();
    if (ino == 0 || (uint64_t)st.st_ino != ino)
        return -EINVAL;
    if (ops->kind == MFX_PIPE) {
        int fl = fcntl(fd, F_GETFL);
        if (!S_ISFIFO(st.st_mode) || fl < 0)
            return -EINVAL;
        return (fl & O_ACCMODE) == (handed_out ? O_RDONLY : O_WRONLY) ? 0 : -EINVAL;
    }
    int type = 0, domain = 0;
    socklen_t len = sizeof type;
    if (!S_ISSOCK(st.st_mode) || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len))
        return -EINVAL;
    len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) || domain != AF_UNIX)
        return -EINVAL;
    return type == (ops->kind == MFX_STREAM ? SOCK_STREAM : SOCK_DGRAM) ? 0 : -EINVAL;
}

static int mfx_attach(int memfd, int fd, int peer_fd, struct mfx_handle **out)
{
    int r = mfx_check_memfd(memfd);
    if (r)
        return r;
    struct mfx_handle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->sh = mfx_map(memfd);
    if (!h->sh) {
        r = neg_errno();
        free(h);
        return r;
    }
    /* Each shared word read once: another holder may change it meanwhile. */
    uint32_t magic = __atomic_load_n(&h->sh->magic, __ATOMIC_ACQUIRE);
    uint32_t kind = __atomic_load_n(&h->sh->kind, __ATOMIC_RELAXED);
    uint64_t fd_ino = __atomic_load_n(&h->sh->fd_ino, __ATOMIC_RELAXED);
    uint64_t peer_ino = __atomic_load_n(&h->sh->peer_ino, __ATOMIC_RELAXED);
    h->ops = magic == MFX_MAGIC ? mfx_backing_of(kind) : NULL;
    if (!h->ops)
        r = -EINVAL;
    else if (!(r = mfx_check_end(h->ops, fd_ino, fd, 1)) && peer_fd >= 0)
        /* The pipe's writer stays with its creator: its last close is HUP. */
        r = h->ops->peer_travels ? mfx_check_end(h->ops, peer_ino, peer_fd, 0) : -EINVAL;
    if (!r) {
        h->fd = fd;
        h->peer_fd = peer_fd;
        r = h->ops->adopt(h);
    }
    if (r) {
        munmap(h->sh, STATE_SIZE);
        free(h);
        return r;
    }
    h->memfd = memfd;
    h->fd = fd;
    h->peer_fd = peer_fd;
    *out = h;
    return 0;
}

/* --- limits, recovery, change -------------------------------------------- */

static int mfx_limits(struct mfx_handle *h)
{
    if (!h)
        return -EBADF; /* a finalized MaskFD (resurrected): closed */
    uint32_t s, c;
    int r = mfx_lock(h);
    if (r)
        return r;
    if (mfx_closed(h)) {
        r = -EBADF;
    } else {
        h->ops->limits(h, &s, &c);
        r = (int)(s << 16 | c);
    }
    mfx_unlock(h);
    return r;
}

/* After a holder died holding the lock: the kernel objects may be anywhere
 * between the pair it found and the one it was writing (a datagram peer
 * disconnected before its reconnect, a byte sent but not recorded, a fill
 * half drained, ...).  Bring the backing to a known base state, then make
 * it show the stored pair again.  Idempotent: a recovery killed half-way is
 * simply done again by the next caller. */
static void mfx_resync(struct mfx_handle *h)
{
    struct mfx_shared *sh = h->sh;
    const struct mfx_backing_ops *ops = h->ops;
    /* A change in flight is rolled forward when the kernel objects can
     * show it (a step the dead holder made may not be undoable: a stream
     * ERR taken, a shutdown), else back. */
    uint32_t cur = mfx_cur(sh), next = mfx_next(sh);
    int staged = next != cur;
    uint32_t want = sh->slot[staged ? next : cur].events & MFX_VALID;
    if (ops->recover(h, &want))
        return;
    if (staged) {
        uint32_t cant_set, cant_clear, old = sh->slot[cur].events & MFX_VALID;
        ops->limits(h, &cant_set, &cant_clear);
        (void)cant_clear; /* a bit it cannot clear now stays as an extra */
        if (!(want & ~ops->shown(sh) & cant_set) && !ops->apply(h, want)) {
            __atomic_store_n(&sh->cur, next, __ATOMIC_RELEASE); /* forward */
        } else {
            __atomic_store_n(&sh->next, cur, __ATOMIC_RELEASE); /* back */
            want = old;
        }
    }
    /* Best effort: a failure leaves extra bits, never missing ones that a
     * syscall could have shown. */
    ops->apply(h, want);
    if (sh->hup_shown)
        ops->edge(h, want); /* a gained extra bit's edge the dead holder owed */
    sh->need_resync = 0;
}

/* Write (events, data) into the free slot and stage it (mfx_resync rolls
 * a staged pair forward or back). */
static void mfx_stage(struct mfx_shared *sh, uint32_t events, uint64_t data)
{
    uint32_t next = !mfx_cur(sh);
    sh->slot[next].events = events;
    sh->slot[next].data = data;
    mfx_step();
    __atomic_store_n(&sh->next, next, __ATOMIC_RELEASE);
    mfx_step();
}

/* Commit the staged pair with one store. */
static void mfx_commit(struct mfx_shared *sh)
{
    __atomic_store_n(&sh->cur, mfx_next(sh), __ATOMIC_RELEASE);
    mfx_step();
}

/* A refusal: its reason and the bits it refused, in one negative int
 * (maskfd_shim.h, mfx_change). */
static int mfx_refused(int err, uint32_t bits)
{
    return -(int)((uint32_t)err | bits << MFX_REFUSED_SHIFT);
}

/* What the backing's limits refuse of the change from old to want, known
 * before any syscall: the refusal naming the bits, or 0. */
static int mfx_refusal(struct mfx_handle *h, uint32_t old, uint32_t want)
{
    uint32_t cant_set, cant_clear;
    h->ops->limits(h, &cant_set, &cant_clear);
    if (old & ~want & cant_clear)
        return mfx_refused(ENOTRECOVERABLE, old & ~want & cant_clear);
    if (want & ~old & cant_set)
        return mfx_refused(EOPNOTSUPP, want & ~old & cant_set);
    return 0;
}

/* After apply(want) failed with r, on the way from old: leave the stored
 * pair and what the kernel objects show in agreement.  A refusal (EBUSY)
 * undoes the bits changed before it; a limit learnt just now (EOPNOTSUPP)
 * changed nothing; any other failure stores the bits the kernel objects
 * reached, so that read() and readiness still agree. */
static void mfx_undo(struct mfx_handle *h, uint32_t old, uint32_t want, int r)
{
    struct mfx_shared *sh = h->sh;
    if (r == -EBUSY)
        h->ops->apply(h, old);
    if (r == -EBUSY || r == -EOPNOTSUPP) {
        __atomic_store_n(&sh->next, mfx_cur(sh), __ATOMIC_RELEASE); /* unstage */
        return;
    }
    uint32_t reached = (old & ~(old ^ want)) | ((old ^ want) & h->ops->shown(sh));
    mfx_stage(sh, reached, sh->slot[mfx_cur(sh)].data);
    mfx_commit(sh);
}

/* What a failed apply(want) reports: a refusal of the backing names the
 * bits it refused (before: what showed before the change); any other
 * failure is its -errno. */
static int mfx_failure(struct mfx_handle *h, uint32_t old, uint32_t want, uint32_t before, int r)
{
    const struct mfx_backing_ops *ops = h->ops;
    if (r == -EBUSY)
        return mfx_refused(EBUSY, want & ~old & ops->last_close_bits);
    if (r == -EPERM)
        return mfx_refused(EPERM, (want ^ before) & ops->owner_only_bits);
    if (r == -EOPNOTSUPP) { /* a limit learnt just now (no OOB) */
        uint32_t cant_set, cant_clear;
        ops->limits(h, &cant_set, &cant_clear);
        return mfx_refused(EOPNOTSUPP, want & ~old & cant_set);
    }
    return r;
}

static int mfx_change(struct mfx_handle *h, uint32_t clear_bits, uint32_t set_bits,
                      int set_data, uint64_t data)
{
    if (!h)
        return -EBADF; /* a finalized MaskFD (resurrected): closed */
    if ((clear_bits | set_bits) & ~(uint32_t)MFX_VALID)
        return -EINVAL;
    struct mfx_shared *sh = h->sh;
    const struct mfx_backing_ops *ops = h->ops;
    int r = mfx_lock(h);
    if (r)
        return r;
    if (mfx_closed(h)) {
        r = -EBADF;
        goto out;
    }
    struct mfx_pair *cur = &sh->slot[mfx_cur(sh)];
    uint32_t old = cur->events & MFX_VALID, want = (old & ~clear_bits) | set_bits;
    if (!set_data)
        data = cur->data;
    if (want != old) {
        if ((r = mfx_refusal(h, old, want)))
            goto out;
        uint32_t before = ops->shown(sh);
        mfx_stage(sh, want, data);
        r = ops->apply(h, want);
        if (r) {
            mfx_undo(h, old, want, r);
            r = mfx_failure(h, old, want, before, r);
            goto out;
        }
        mfx_commit(sh);
        uint32_t gained = want & ~old & before;
        if (gained)
            r = ops->edge(h, gained); /* stored and shown; an error says the
                                         edge may be missing */
    } else if (set_data && data != cur->data) {
        mfx_stage(sh, want, data);
        mfx_commit(sh);
    }
out:
    mfx_unlock(h);
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
    if (!h)
        return -EBADF; /* a finalized MaskFD (resurrected): closed */
    int r = mfx_lock(h);
    if (r)
        return r;
    if (mfx_closed(h)) {
        r = -EBADF;
    } else {
        *out = h->sh->slot[mfx_cur(h->sh)];
        out->events &= MFX_VALID;
    }
    mfx_unlock(h);
    return r;
}

/* --- bookkeeping ------------------------------------------------------- */

static int mfx_kind(struct mfx_handle *h) { return h ? h->ops->kind : -EBADF; }
static int mfx_peer_travels(struct mfx_handle *h) { return h ? h->ops->peer_travels : -EBADF; }
static int mfx_fd(struct mfx_handle *h) { return !h || h->closed ? -1 : h->fd; }
static int mfx_peer_fd(struct mfx_handle *h) { return !h || h->closed ? -1 : h->peer_fd; }
static int mfx_memfd(struct mfx_handle *h) { return !h || h->closed ? -1 : h->memfd; }

static int mfx_syscalls(struct mfx_handle *h, uint64_t *out)
{
    if (!h)
        return -EBADF; /* a finalized MaskFD (resurrected): closed */
    *out = __atomic_load_n(&h->sh->syscalls, __ATOMIC_RELAXED);
    return 0;
}

static int mfx_recoveries(struct mfx_handle *h)
{
    if (!h)
        return -EBADF; /* a finalized MaskFD (resurrected): closed */
    return (int)(__atomic_load_n(&h->sh->recoveries, __ATOMIC_RELAXED) & 0x7fffffff);
}

static int mfx_mark_shared(struct mfx_handle *h, int in_child)
{
    if (!h)
        return -EBADF; /* a finalized MaskFD (resurrected): closed */
    if (h->closed)
        return -EBADF;
    __atomic_store_n(&h->sh->shared, 1, __ATOMIC_RELEASE);
    /* In the child only the forking thread runs: no change is in flight
     * here, and this handle's fds are this process's own.  A peer that
     * does not travel stays with its creator (the pipe's writer, whose
     * last close is HUP). */
    if (in_child && !h->ops->peer_travels && h->peer_fd >= 0) {
        close(h->peer_fd);
        h->peer_fd = -1;
    }
    return 0;
}

static void mfx_close_fds(struct mfx_handle *h)
{
    __atomic_store_n(&h->closed, 1, __ATOMIC_SEQ_CST);
    if (h->fds_closed)
        return;
    h->fds_closed = 1;
    close(h->fd);
    if (h->peer_fd >= 0)
        close(h->peer_fd);
    close(h->memfd);
    h->fd = h->peer_fd = h->memfd = -1;
}

/* 1 if tid is a thread of this process. */
static int mfx_thread_here(uint32_t tid)
{
    char path[40];
    snprintf(path, sizeof path, "/proc/self/task/%u", tid);
    return access(path, F_OK) == 0;
}

static int mfx_close(struct mfx_handle *h)
{
    if (!h)
        return -EBADF; /* a finalized MaskFD (resurrected): closed */
    /* First: from here on no call of this handle starts a change (each
     * looks at closed once it has the lock). */
    __atomic_store_n(&h->closed, 1, __ATOMIC_SEQ_CST);
    int r = mfx_lock(h);
    if (!r) {
        mfx_close_fds(h);
        mfx_unlock(h);
        return 0;
    }
    /* Not had within a slice (or a signal came).  A thread of this process
     * holding it is inside a change on these fds: wait for it (-EINTR: call
     * again).  Anything else (another process, stopped or not, or a word
     * someone wrote) uses none of this process's fds: close them without
     * the lock, rather than wait for a peer that may never let go.  A
     * thread here that takes the lock later finds closed set (the store
     * above comes before this load, and its lock before its look). */
    uint32_t tid = __atomic_load_n(&h->sh->lock, __ATOMIC_SEQ_CST) & EFX_SHLOCK_TID;
    if (tid && tid != efx_shlock_tid() && mfx_thread_here(tid))
        return r;
    mfx_close_fds(h);
    return 0;
}

static int mfx_free(struct mfx_handle *h)
{
    if (!h)
        return 0;
    mfx_close_fds(h); /* nothing else can use the handle any more */
    munmap(h->sh, STATE_SIZE);
    free(h);
    return 0;
}

/* ---- the MaskFD object: the handle behind the lifecycle core ----------- */

static int mfxo_release(struct efx_owner *o, int close_fds)
{
    struct mfx_handle *h = o->mask;
    /* No call of this process is in flight (the core saw to it), so a
     * holder of the lock is another process, whose changes use its own
     * fds: take the lock if it is free, never wait for it (a stopped peer
     * may never let go). */
    __atomic_store_n(&h->closed, 1, __ATOMIC_SEQ_CST);
    uint32_t free = 0;
    int locked = __atomic_compare_exchange_n(&h->sh->lock, &free, efx_shlock_tid(), 0,
                                             __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
    mfx_close_fds(h);
    if (locked)
        mfx_unlock_state(h->sh);
    return 0;
}

static void mfxo_free(struct efx_owner *o)
{
    mfx_free(o->mask);
}

static int mfxo_fds(struct efx_owner *o, int *out)
{
    struct mfx_handle *h = o->mask;
    int n = 0;
    out[n++] = h->memfd;
    out[n++] = h->fd;
    if (h->peer_fd >= 0 && h->ops->peer_travels) /* a pipe's writer stays here */
        out[n++] = h->peer_fd;
    return n;
}

static const struct efxo_kind mfxo_kind = {EFX_KIND_MASKFD, mfxo_release, NULL, mfxo_free,
                                           mfxo_fds};

static int mfx_own(struct mfx_handle *h, efx_owner_t **out)
{
    struct efx_owner *o = efxo_new(&mfxo_kind, h->fd, -1);
    if (!o)
        return -ENOMEM;
    o->mask = h;
    h->owner = o;
    *out = o;
    return 0;
}
