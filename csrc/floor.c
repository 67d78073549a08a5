/* The C floor: the benchmark's loops with no Python in them.
 * Declarations and the calling convention are in floor.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The Doorbell's and the Channel's C APIs (header-only), so that their
 * floors run the very functions the Python classes call. */
#include <eventfd_ext/channel.h>
#include <eventfd_ext/doorbell.h>

#define EFX_FLOOR_EVENTFD 0
#define EFX_FLOOR_PIPE 1
#define EFX_FLOOR_SOCKETPAIR 2
#define EFX_FLOOR_DOORBELL 3
#define EFX_FLOOR_EVENTFD_SPIN 4 /* an eventfd read as EventFD(spin=50e-6) does */
#define EFX_FLOOR_CHANNEL 5      /* 64-byte messages on Channels (adaptive spin) */
#define EFX_FLOOR_MESSAGE 64     /* a Channel round trip's message */
#define EFX_FLOOR_CHANNEL_RING (1 << 16)
#define EFX_FLOOR_SPIN_NS 50000
/* Whether a mechanism's channel is an eventfd (8-byte reads and writes,
 * one fd for both ends). */
#define EFX_FLOOR_IS_EVENTFD(m) ((m) == EFX_FLOOR_EVENTFD || (m) == EFX_FLOOR_EVENTFD_SPIN)
/* Untimed round trips before the clock starts, so that the peer is running
 * and settled: a freshly forked child stays measurably slower for its
 * first few hundred round trips. */
#define EFX_FLOOR_WARMUP(n) (256 + (n) / 4)

/* One signal and one wait on a channel: an eventfd takes 8 bytes, a pipe
 * or a socket 1.  Both return 0 or -errno.  EINTR is retried: a loop is
 * over in milliseconds, and Python runs its signal handlers right after,
 * whereas giving up half way would strand the peer. */
static int efx_floor_send(int mechanism, int fd)
{
    uint64_t one = 1;
    size_t size = EFX_FLOOR_IS_EVENTFD(mechanism) ? sizeof one : 1;
    ssize_t n;
    while ((n = write(fd, &one, size)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)size ? 0 : n < 0 ? -errno : -EIO;
}

/* EventFD's spin (efx_efd_spin): yield, then look with poll(0), until the
 * fd is readable or spin_ns passed. */
static void efx_floor_spin(int fd, int64_t spin_ns)
{
    int64_t end = efx_now_ns() + spin_ns;
    struct pollfd pfd = {fd, POLLIN, 0};
    do
        sched_yield();
    while (poll(&pfd, 1, 0) == 0 && efx_now_ns() < end);
}

static int efx_floor_recv(int mechanism, int fd)
{
    uint64_t value;
    size_t size = EFX_FLOOR_IS_EVENTFD(mechanism) ? sizeof value : 1;
    ssize_t n;
    if (mechanism == EFX_FLOOR_EVENTFD_SPIN)
        efx_floor_spin(fd, EFX_FLOOR_SPIN_NS); /* as EventFD.read: the spin, then the read */
    while ((n = read(fd, &value, size)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)size ? 0 : n < 0 ? -errno : -EIO;
}

static int64_t efx_floor_call_eventfd(int fd, int64_t n)
{
    int64_t start = efx_now_ns();
    for (int64_t i = 0; i < n; i++) {
        int err = efx_floor_send(EFX_FLOOR_EVENTFD, fd);
        if (!err)
            err = efx_floor_recv(EFX_FLOOR_EVENTFD, fd);
        if (err)
            return err;
    }
    return efx_now_ns() - start;
}

static int64_t efx_floor_call_pipe(int rfd, int wfd, int64_t n)
{
    int64_t start = efx_now_ns();
    for (int64_t i = 0; i < n; i++) {
        int err = efx_floor_send(EFX_FLOOR_PIPE, wfd);
        if (!err)
            err = efx_floor_recv(EFX_FLOOR_PIPE, rfd);
        if (err)
            return err;
    }
    return efx_now_ns() - start;
}

static int64_t efx_floor_call_socketpair(int a, int b, int64_t n)
{
    int64_t start = efx_now_ns();
    for (int64_t i = 0; i < n; i++) {
        /* write and read are send and recv with no flags on a socket */
        int err = efx_floor_send(EFX_FLOOR_SOCKETPAIR, a);
        if (!err)
            err = efx_floor_recv(EFX_FLOOR_SOCKETPAIR, b);
        if (err)
            return err;
    }
    return efx_now_ns() - start;
}

/* A Doorbell with its two fds, for the floor's loops. */
struct efx_floor_bell {
    struct efx_bell *bell;
    int memfd, efd;
};

static int efx_floor_bell_open(struct efx_floor_bell *fb)
{
    return efx_bell_create(0, 0, &fb->memfd, &fb->efd, &fb->bell);
}

static void efx_floor_bell_close(struct efx_floor_bell *fb)
{
    efx_bell_detach(fb->bell);
    close(fb->memfd);
    close(fb->efd);
}

/* A write(1) then a read on a Doorbell (the default adaptive spin when it
 * waits), EINTR retried as for the fds above. */
static int efx_floor_bell_send(struct efx_bell *bell)
{
    int r;
    while ((r = efx_bell_write(bell, 1, -1)) == -EINTR)
        ;
    return r;
}

static int efx_floor_bell_recv(struct efx_bell *bell)
{
    uint64_t value;
    int r;
    while ((r = efx_bell_wait_read(bell, -1, -1, &value)) == -EINTR)
        ;
    return r == 1 ? 0 : r ? r : -EIO;
}

static int64_t efx_floor_call_doorbell(int64_t n)
{
    struct efx_floor_bell fb;
    int err = efx_floor_bell_open(&fb);
    if (err)
        return err;
    int64_t start = efx_now_ns();
    for (int64_t i = 0; !err && i < n; i++) {
        err = efx_bell_write(fb.bell, 1, 0);
        if (!err && !efx_bell_take(fb.bell))
            err = -EIO;
    }
    int64_t elapsed = efx_now_ns() - start;
    efx_floor_bell_close(&fb);
    return err ? err : elapsed;
}

/* A Channel with its three fds, for the floor's loops. */
struct efx_floor_chan {
    struct efx_chan *ch;
    int fds[3];
};

static int efx_floor_chan_open(struct efx_floor_chan *fc, uint64_t capacity)
{
    return efx_chan_create(capacity, fc->fds, &fc->ch);
}

static void efx_floor_chan_close(struct efx_floor_chan *fc)
{
    efx_chan_detach(fc->ch);
    for (int i = 0; i < 3; i++)
        close(fc->fds[i]);
}

/* One message of size bytes on a Channel, and one taken from it (the
 * adaptive spin when it waits; EINTR is retried inside). */
static int efx_floor_chan_send(struct efx_chan *ch, const void *buf, size_t size)
{
    return efx_chan_send(ch, buf, size, -1, -1);
}

static int efx_floor_chan_recv(struct efx_chan *ch, void *buf, size_t size)
{
    int64_t n = efx_chan_recv(ch, buf, size, -1, -1);
    return n == (int64_t)size ? 0 : n < 0 ? (int)n : -EIO;
}

/* The two one-way channels of a ping-pong: ping -> pong and pong -> ping.
 * For an eventfd both ends of a channel are the same fd; a socketpair is
 * both channels at once; a Doorbell channel is a Doorbell. */
struct efx_floor_link {
    int mechanism;
    int64_t rounds;
    int cpu;
    int to_pong[2]; /* read end, write end */
    int to_ping[2];
    struct efx_floor_bell bell_to_pong, bell_to_ping;
    struct efx_floor_chan chan_to_pong, chan_to_ping;
};

/* One signal on, and one wait for, a channel of the link. */
static int efx_floor_link_send(struct efx_floor_link *link, int to_pong)
{
    static const char message[EFX_FLOOR_MESSAGE];
    if (link->mechanism == EFX_FLOOR_CHANNEL)
        return efx_floor_chan_send(to_pong ? link->chan_to_pong.ch : link->chan_to_ping.ch,
                                   message, sizeof message);
    if (link->mechanism == EFX_FLOOR_DOORBELL)
        return efx_floor_bell_send(to_pong ? link->bell_to_pong.bell : link->bell_to_ping.bell);
    return efx_floor_send(link->mechanism, to_pong ? link->to_pong[1] : link->to_ping[1]);
}

static int efx_floor_link_recv(struct efx_floor_link *link, int to_pong)
{
    char message[EFX_FLOOR_MESSAGE];
    if (link->mechanism == EFX_FLOOR_CHANNEL)
        return efx_floor_chan_recv(to_pong ? link->chan_to_pong.ch : link->chan_to_ping.ch,
                                   message, sizeof message);
    if (link->mechanism == EFX_FLOOR_DOORBELL)
        return efx_floor_bell_recv(to_pong ? link->bell_to_pong.bell : link->bell_to_ping.bell);
    return efx_floor_recv(link->mechanism, to_pong ? link->to_pong[0] : link->to_ping[0]);
}

static int efx_floor_pin(int cpu)
{
    cpu_set_t set;
    if (cpu < 0)
        return 0;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) ? -errno : 0;
}

static int efx_floor_open(struct efx_floor_link *link)
{
    if (link->mechanism == EFX_FLOOR_CHANNEL) {
        int err = efx_floor_chan_open(&link->chan_to_pong, EFX_FLOOR_CHANNEL_RING);
        if (!err && (err = efx_floor_chan_open(&link->chan_to_ping, EFX_FLOOR_CHANNEL_RING)))
            efx_floor_chan_close(&link->chan_to_pong);
        return err;
    }
    if (link->mechanism == EFX_FLOOR_DOORBELL) {
        int err = efx_floor_bell_open(&link->bell_to_pong);
        if (!err && (err = efx_floor_bell_open(&link->bell_to_ping)))
            efx_floor_bell_close(&link->bell_to_pong);
        return err;
    }
    if (link->mechanism == EFX_FLOOR_SOCKETPAIR) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair))
            return -errno;
        link->to_pong[0] = link->to_ping[1] = pair[1];
        link->to_pong[1] = link->to_ping[0] = pair[0];
        return 0;
    }
    if (link->mechanism == EFX_FLOOR_PIPE) {
        if (pipe2(link->to_pong, O_CLOEXEC))
            return -errno;
        if (pipe2(link->to_ping, O_CLOEXEC)) {
            int err = -errno;
            close(link->to_pong[0]);
            close(link->to_pong[1]);
            return err;
        }
        return 0;
    }
    int a = eventfd(0, EFD_CLOEXEC);
    if (a < 0)
        return -errno;
    int b = eventfd(0, EFD_CLOEXEC);
    if (b < 0) {
        int err = -errno;
        close(a);
        return err;
    }
    link->to_pong[0] = link->to_pong[1] = a;
    link->to_ping[0] = link->to_ping[1] = b;
    return 0;
}

static void efx_floor_close(struct efx_floor_link *link)
{
    if (link->mechanism == EFX_FLOOR_CHANNEL) {
        efx_floor_chan_close(&link->chan_to_pong);
        efx_floor_chan_close(&link->chan_to_ping);
        return;
    }
    if (link->mechanism == EFX_FLOOR_DOORBELL) {
        efx_floor_bell_close(&link->bell_to_pong);
        efx_floor_bell_close(&link->bell_to_ping);
        return;
    }
    close(link->to_pong[0]);
    close(link->to_ping[0]);
    if (!EFX_FLOOR_IS_EVENTFD(link->mechanism)) {
        close(link->to_pong[1]);
        close(link->to_ping[1]);
    }
}

/* The peer: echo every signal back.  Returns 0 or -errno. */
static int efx_floor_pong(struct efx_floor_link *link)
{
    int err = efx_floor_pin(link->cpu);
    for (int64_t i = 0; !err && i < link->rounds; i++) {
        err = efx_floor_link_recv(link, 1);
        if (!err)
            err = efx_floor_link_send(link, 0);
    }
    return err;
}

static void *efx_floor_pong_thread(void *arg)
{
    return (void *)(intptr_t)efx_floor_pong(arg);
}

/* The caller's side: warm up, then time n round trips. */
static int64_t efx_floor_ping(struct efx_floor_link *link, int64_t n)
{
    int64_t start = 0;
    for (int64_t i = 0; i < link->rounds; i++) {
        if (i == link->rounds - n)
            start = efx_now_ns();
        int err = efx_floor_link_send(link, 1);
        if (!err)
            err = efx_floor_link_recv(link, 0);
        if (err)
            return err;
    }
    return efx_now_ns() - start;
}

static int64_t efx_floor_pingpong(int mechanism, int processes, int64_t n,
                                  int cpu_ping, int cpu_pong)
{
    struct efx_floor_link link = {
        .mechanism = mechanism, .rounds = n + EFX_FLOOR_WARMUP(n), .cpu = cpu_pong};
    cpu_set_t saved;
    int64_t result;
    if (n <= 0 || mechanism < EFX_FLOOR_EVENTFD || mechanism > EFX_FLOOR_CHANNEL)
        return -EINVAL;
    if (sched_getaffinity(0, sizeof saved, &saved))
        return -errno;
    int err = efx_floor_open(&link);
    if (err)
        return err;
    if (processes) {
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid == 0) { /* only async-signal-safe calls from here on */
            /* Killed with the parent, rather than wait for it forever. */
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
                _exit(1);
            _exit(efx_floor_pong(&link) ? 1 : 0);
        }
        if (pid < 0) {
            result = -errno;
        } else {
            result = efx_floor_pin(cpu_ping);
            if (!result)
                result = efx_floor_ping(&link, n);
            int status;
            if (result < 0)
                kill(pid, SIGKILL); /* it would wait for the rest forever */
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            if (result >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                result = -EIO;
        }
    } else {
        pthread_t thread;
        void *peer;
        err = pthread_create(&thread, NULL, efx_floor_pong_thread, &link);
        if (err) {
            result = -err;
        } else {
            result = efx_floor_pin(cpu_ping);
            if (result < 0) {
                /* Release the peer: the signals it waits for. */
                for (int64_t i = 0; i < link.rounds; i++)
                    efx_floor_link_send(&link, 1);
            } else {
                result = efx_floor_ping(&link, n);
            }
            pthread_join(thread, &peer);
            if (result >= 0 && peer)
                result = (int)(intptr_t)peer;
        }
    }
    sched_setaffinity(0, sizeof saved, &saved);
    efx_floor_close(&link);
    return result;
}

/* ---- one way: a stream of messages from a forked sender ------------------ */

/* All size bytes through a stream socket, in as many writes (sending) or
 * reads as it takes, EINTR retried: 0, -errno, or -EIO at end of file. */
static int efx_floor_whole(int fd, char *buf, size_t size, int sending)
{
    for (size_t done = 0; done < size;) {
        ssize_t k = sending ? write(fd, buf + done, size - done) : read(fd, buf + done, size - done);
        if (k < 0 && errno != EINTR)
            return -errno;
        if (k == 0)
            return -EIO;
        done += k > 0 ? (size_t)k : 0;
    }
    return 0;
}

/* One side of a stream: n + 1 messages of size bytes sent or received, the
 * first untimed.  The nanoseconds of the other n, or -errno. */
static int64_t efx_floor_stream_side(int mechanism, struct efx_floor_chan *fc, int fd, int64_t n,
                                     size_t size, char *buf, int sending)
{
    int64_t start = 0;
    for (int64_t i = 0; i <= n; i++) {
        if (i == 1)
            start = efx_now_ns();
        int err = mechanism != EFX_FLOOR_CHANNEL ? efx_floor_whole(fd, buf, size, sending)
                  : sending                     ? efx_floor_chan_send(fc->ch, buf, size)
                                                : efx_floor_chan_recv(fc->ch, buf, size);
        if (err)
            return err;
    }
    return efx_now_ns() - start;
}

static int64_t efx_floor_stream(int mechanism, int64_t n, int64_t size, int cpu_send,
                                int cpu_recv)
{
    struct efx_floor_chan fc = {NULL, {-1, -1, -1}};
    int pair[2] = {-1, -1};
    cpu_set_t saved;
    int64_t result;
    if (n <= 0 || size <= 0 || size > (1 << 26) ||
        (mechanism != EFX_FLOOR_CHANNEL && mechanism != EFX_FLOOR_SOCKETPAIR))
        return -EINVAL;
    if (sched_getaffinity(0, sizeof saved, &saved))
        return -errno;
    char *buf = calloc(1, (size_t)size);
    if (!buf)
        return -ENOMEM;
    /* A ring of 8 messages or 1 MiB, as the Python section's. */
    uint64_t ring = EFX_CHAN_RECORD_SIZE(size) * 8 > (1 << 20) ? EFX_CHAN_RECORD_SIZE(size) * 8
                                                              : (1 << 20);
    int err = mechanism == EFX_FLOOR_CHANNEL ? efx_floor_chan_open(&fc, ring)
              : socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) ? -errno
                                                                          : 0;
    if (err) {
        free(buf);
        return err;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) { /* the sender */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent || efx_floor_pin(cpu_send))
            _exit(1);
        _exit(efx_floor_stream_side(mechanism, &fc, pair[0], n, (size_t)size, buf, 1) < 0);
    }
    if (pid < 0) {
        result = -errno;
    } else {
        result = efx_floor_pin(cpu_recv);
        if (!result)
            result = efx_floor_stream_side(mechanism, &fc, pair[1], n, (size_t)size, buf, 0);
        int status;
        if (result < 0)
            kill(pid, SIGKILL); /* it would wait for room forever */
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (result >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            result = -EIO;
    }
    sched_setaffinity(0, sizeof saved, &saved);
    if (mechanism == EFX_FLOOR_CHANNEL) {
        efx_floor_chan_close(&fc);
    } else {
        close(pair[0]);
        close(pair[1]);
    }
    free(buf);
    return result;
}
