/* Measurements of the Doorbell against a plain eventfd, in C, between two
 * processes (fork), pinned as given.
 *
 *   doorbell_bench [ROUNDS] [CPU_PING CPU_PONG]    (default 20000 0 1)
 *
 * Round trip: ping writes 1 to A and waits on B; pong waits on A and
 * writes 1 to B.  Pair: one write then one take on the same object, with
 * nobody asleep (what a producer and consumer pay when both are busy).
 */
#define _GNU_SOURCE
#include "../floor.c"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

enum { CH_BELL, CH_SPIN_READ };

struct chan {
    int kind;
    int64_t spin;
    efx_bell_t *a, *b; /* CH_BELL */
    int ea, eb;        /* CH_SPIN_READ: blocking eventfds, as EventFD's default */
};

static int send_(struct chan *c, int to_pong)
{
    if (c->kind == CH_BELL)
        return efx_bell_write(to_pong ? c->a : c->b, 1, -1);
    uint64_t one = 1;
    return write(to_pong ? c->ea : c->eb, &one, 8) == 8 ? 0 : -errno;
}

/* EventFD(spin=...).read(): yield and look with poll(0) for up to spin
 * ns, then a blocking read.  1, or -errno. */
static int eventfd_spin_read(int fd, int64_t spin, uint64_t *v)
{
    efx_floor_spin(fd, spin);
    return read(fd, v, sizeof *v) == sizeof *v ? 1 : -errno;
}

static int recv_(struct chan *c, int at_pong)
{
    uint64_t v;
    int r;
    do {
        if (c->kind == CH_BELL)
            r = efx_bell_wait_read(at_pong ? c->a : c->b, -1, c->spin, &v);
        else
            r = eventfd_spin_read(at_pong ? c->ea : c->eb, c->spin, &v);
    } while (r == -EINTR);
    return r == 1 ? 0 : r ? r : -EIO;
}

/* Nanoseconds per round trip, or -errno. */
static double pingpong(struct chan *c, long n, int cpu_ping, int cpu_pong)
{
    long warm = 2000 + n / 4;
    cpu_set_t saved;
    sched_getaffinity(0, sizeof saved, &saved);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        efx_floor_pin(cpu_pong);
        for (long i = 0; i < warm + n; i++)
            if (recv_(c, 1) || send_(c, 0))
                _exit(1);
        _exit(0);
    }
    efx_floor_pin(cpu_ping);
    int64_t t0 = 0;
    int err = 0;
    for (long i = 0; i < warm + n && !err; i++) {
        if (i == warm)
            t0 = efx_now_ns();
        err = send_(c, 1);
        if (!err)
            err = recv_(c, 0);
    }
    double ns = (double)(efx_now_ns() - t0) / n;
    int status;
    if (err)
        kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    sched_setaffinity(0, sizeof saved, &saved);
    return err || status ? -1 : ns;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    int ping_cpu = argc > 3 ? atoi(argv[2]) : 0, pong_cpu = argc > 3 ? atoi(argv[3]) : 1;
    int ma, mb, bell_efd_a, bell_efd_b;
    struct chan c = {0};
    if (efx_bell_create(0, 0, &ma, &bell_efd_a, &c.a) ||
        efx_bell_create(0, 0, &mb, &bell_efd_b, &c.b))
        return 1;
    /* Not the Doorbells' wake-up eventfds: those are non-blocking, and a
     * spin that ends before the count comes must block in its read. */
    c.ea = eventfd(0, EFD_CLOEXEC);
    c.eb = eventfd(0, EFD_CLOEXEC);
    if (c.ea < 0 || c.eb < 0)
        return 1;
    printf("round trip, two processes on CPUs %d and %d, %ld rounds (us):\n", ping_cpu,
           pong_cpu, n);
    int64_t t = efx_floor_pingpong(EFX_FLOOR_EVENTFD, 1, n, ping_cpu, pong_cpu);
    printf("  eventfd, blocking read            %8.2f\n", t / 1e3 / n);
    c.kind = CH_SPIN_READ;
    c.spin = 50000;
    printf("  eventfd, spin 50 us then read     %8.2f\n", pingpong(&c, n, ping_cpu, pong_cpu) / 1e3);
    c.kind = CH_BELL;
    c.spin = 0;
    printf("  Doorbell, spin 0                  %8.2f\n", pingpong(&c, n, ping_cpu, pong_cpu) / 1e3);
    c.spin = -1;
    printf("  Doorbell, adaptive spin (default) %8.2f\n", pingpong(&c, n, ping_cpu, pong_cpu) / 1e3);
    if (getenv("EFX_BENCH_STATS")) {
        uint64_t s[EFX_BELL_INFO_N];
        for (int k = 0; k < 2; k++) {
            efx_bell_info(k ? c.b : c.a, s, EFX_BELL_INFO_N);
            printf("    bell %c: rings %llu sleeps %llu spins paid %llu failed %llu,"
                   " ping's budget %llu ns\n", "AB"[k], (unsigned long long)s[4],
                   (unsigned long long)s[5], (unsigned long long)s[6],
                   (unsigned long long)s[7], (unsigned long long)s[9]);
        }
    }

    long pairs = 2000000;
    int fd = eventfd(0, EFD_CLOEXEC);
    t = efx_floor_call_eventfd(fd, pairs);
    printf("write+read pair, nobody asleep (ns):\n  eventfd write+read                %8.1f\n",
           (double)t / pairs);
    int64_t t0 = efx_now_ns();
    for (long i = 0; i < pairs; i++)
        if (efx_bell_write(c.a, 1, 0) || !efx_bell_take(c.a))
            return 1;
    printf("  Doorbell write+take               %8.1f\n",
           (double)(efx_now_ns() - t0) / pairs);
    return 0;
}
