/* Stress test of the Doorbell's C API (eventfd_ext/doorbell.h), C only.
 *
 *   doorbell_stress threads [ROUNDS]   threads of one process (run it under
 *                                      TSan: .ci/tsan)
 *   doorbell_stress pingpong [ROUNDS] [SPIN_NS]
 *                                      only the two-thread ping-pong (loops)
 *   doorbell_stress procs [ROUNDS] [BELL_PEER]
 *                                      fork()ed processes, and the exec'ed
 *                                      C peer csrc/tests/bell_peer (no TSan)
 *
 * ROUNDS is the number of ping-pong handshakes per variant (default 1e5).
 * Every check is exact: the sum read equals the sum written, every
 * handshake completes within HANDSHAKE_MS (a lost wake-up shows as a
 * timeout, reported with the round and the Doorbell's state), and every
 * mixed run ends with nothing left behind.  Exit status 0 only if all
 * passed.
 */
#define _GNU_SOURCE
#include <eventfd_ext/doorbell.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define HANDSHAKE_MS 5000  /* one answer; far above any scheduling delay */
#define SLOW_MS 2000       /* an answer this late is a lost wake-up too */
#define STALL_MS 10000     /* a mixed run that makes no progress this long */

static void fail(efx_bell_t *bell, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL [pid %d]: ", (int)getpid());
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (bell) {
        uint64_t v[EFX_BELL_INFO_N];
        efx_bell_info(bell, v, EFX_BELL_INFO_N);
        fprintf(stderr, " [count %llu sleepers %llu watchers %llu writers_waiting %llu"
                " rings %llu sleeps %llu]",
                (unsigned long long)v[0], (unsigned long long)v[1], (unsigned long long)v[2],
                (unsigned long long)v[3], (unsigned long long)v[4], (unsigned long long)v[5]);
    }
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

static void check(int ok, efx_bell_t *bell, const char *what, int r)
{
    if (!ok)
        fail(bell, "%s (result %d: %s)", what, r, r < 0 ? strerror(-r) : "-");
}

static efx_bell_t *new_bell(int flags, int *memfd, int *efd)
{
    efx_bell_t *bell = NULL;
    int r = efx_bell_create(0, flags, memfd, efd, &bell);
    check(r == 0, NULL, "efx_bell_create", r);
    return bell;
}

static void free_bell(efx_bell_t *bell, int memfd, int efd)
{
    efx_bell_detach(bell);
    close(memfd);
    close(efd);
}

/* ---- the API's edges, single-threaded -------------------------------- */

static void test_edges(void)
{
    int memfd, efd;
    uint64_t v;
    efx_bell_t *bell = new_bell(0, &memfd, &efd), *other;
    v = efx_bell_take(bell);
    check(v == 0, bell, "take on 0", 0);
    int r = efx_bell_write(bell, UINT64_MAX, 0);
    check(r == -EINVAL, bell, "write(2**64-1)", r);
    r = efx_bell_write(bell, EFX_BELL_MAX, 0);
    check(r == 0, bell, "write(max)", r);
    r = efx_bell_write(bell, 1, 0);
    check(r == -EAGAIN, bell, "write past max, non-blocking", r);
    int64_t t0 = efx_now_ns();
    r = efx_bell_write(bell, 1, 30);
    check(r == -EAGAIN && efx_now_ns() - t0 >= 30000000, bell, "write past max, 30 ms", r);
    r = efx_bell_write(bell, 0, 0);
    check(r == 0, bell, "write(0) at max", r);
    r = efx_bell_wait_read(bell, 0, 0, &v);
    check(r == 1 && v == EFX_BELL_MAX, bell, "take max", r);
    r = efx_bell_wait_read(bell, 20, -1, &v);
    check(r == 0, bell, "wait_read times out", r);
    r = efx_bell_wait(bell, 20, 0);
    check(r == 0, bell, "wait times out", r);
    r = efx_bell_attach(memfd, efd, &other);
    check(r == 0, bell, "attach", r);
    efx_bell_write(other, 5, 0);
    r = efx_bell_wait(bell, 0, 0);
    check(r == 1, bell, "wait sees an attached peer's write", r);
    v = efx_bell_take(bell);
    check(v == 5, bell, "take the peer's write", 0);
    efx_bell_detach(other);
    r = efx_bell_attach(efd, efd, &other);
    check(r == -EINVAL, bell, "attach to an eventfd", r);
    int junk = memfd_create("junk", MFD_CLOEXEC);
    r = ftruncate(junk, EFX_BELL_SIZE);
    r = efx_bell_attach(junk, efd, &other);
    check(r == -EINVAL, bell, "attach to a memfd of zeros", r);
    close(junk);
    /* watch: a pending count makes the eventfd readable at once */
    efx_bell_write(bell, 2, 0);
    struct pollfd pfd = {efd, POLLIN, 0};
    check(poll(&pfd, 1, 0) == 0, bell, "no ring without sleepers or watchers", 0);
    efx_bell_watch_enter(bell);
    check(poll(&pfd, 1, 0) == 1, bell, "watch_enter rings for a pending count", 0);
    v = efx_bell_poll_take(bell);
    check(v == 2, bell, "poll_take", 0);
    check(poll(&pfd, 1, 0) == 0, bell, "poll_take took the token", 0);
    efx_bell_write(bell, 1, 0);
    check(poll(&pfd, 1, 0) == 1, bell, "a write while watched rings", 0);
    efx_bell_poll_take(bell);
    efx_bell_watch_exit(bell);
    free_bell(bell, memfd, efd);

    /* semaphore mode: a take leaves the rest, and rings it for pollers */
    bell = new_bell(EFX_BELL_SEMAPHORE, &memfd, &efd);
    efx_bell_watch_enter(bell);
    efx_bell_write(bell, 2, 0);
    pfd.fd = efd;
    v = efx_bell_poll_take(bell);
    check(v == 1, bell, "semaphore poll_take", 0);
    check(poll(&pfd, 1, 0) == 1, bell, "the count left behind rang again", 0);
    v = efx_bell_poll_take(bell);
    check(v == 1, bell, "semaphore poll_take 2", 0);
    v = efx_bell_poll_take(bell);
    check(v == 0, bell, "semaphore empty", 0);
    efx_bell_watch_exit(bell);
    free_bell(bell, memfd, efd);

    printf("ok   edges\n");
}

/* ---- ping-pong: the lost wake-up hunt -------------------------------- */

enum { PONG_TAKE, PONG_WAIT, PONG_POLL };
static const char *const pong_names[] = {"wait_read", "wait+take", "watch+poll+poll_take"};

struct pingpong {
    efx_bell_t *a, *b; /* ping -> pong, pong -> ping */
    int efd_a;
    long rounds;
    int64_t spin_ns;
    int style;
};

/* One answer on `bell` in the given style; fails after HANDSHAKE_MS. */
static void answer(efx_bell_t *bell, int efd, int style, int64_t spin_ns, long round,
                   const char *who)
{
    uint64_t v = 0;
    int r;
    int64_t t0 = efx_now_ns();
    if (style == PONG_TAKE) {
        r = efx_bell_wait_read(bell, HANDSHAKE_MS, spin_ns, &v);
    } else if (style == PONG_WAIT) {
        r = efx_bell_wait(bell, HANDSHAKE_MS, spin_ns);
        if (r == 1)
            r = (v = efx_bell_take(bell)) ? 1 : -EAGAIN;
    } else {
        int64_t deadline = efxb_deadline(HANDSHAKE_MS);
        for (;;) {
            struct pollfd pfd = {efd, POLLIN, 0};
            r = poll(&pfd, 1, efxb_left_ms(deadline));
            if (r <= 0)
                break;
            v = efx_bell_poll_take(bell);
            if (v) {
                r = 1;
                break;
            }
        }
    }
    if (r != 1 || v != 1)
        fail(bell, "%s round %ld: %s", who, round,
             r == 0 ? "no answer in 5 s: a lost wake-up" : "bad result");
    /* A wait's last try after its timeout takes a count whose wake-up was
     * lost: an answer that slow is a lost wake-up too. */
    int64_t ms = (efx_now_ns() - t0) / 1000000;
    if (ms >= SLOW_MS)
        fail(bell, "%s round %ld: the answer took %lld ms: a lost wake-up", who, round,
             (long long)ms);
}

/* Pin the calling thread to `cpu` if the machine has it: the ping-pong
 * pins its two sides to CPUs 0 and 1, so that the racing windows really
 * overlap (left to itself the scheduler often runs both on one CPU, where
 * the race almost never shows).  Returns the previous mask for unpin. */
static cpu_set_t pin(int cpu)
{
    cpu_set_t old, set;
    sched_getaffinity(0, sizeof old, &old);
    if (CPU_ISSET(cpu, &old) && CPU_COUNT(&old) > 1) {
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    return old;
}

static void *pong_thread(void *arg)
{
    struct pingpong *pp = arg;
    pin(1);
    if (pp->style == PONG_POLL)
        efx_bell_watch_enter(pp->a);
    for (long i = 0; i < pp->rounds; i++) {
        answer(pp->a, pp->efd_a, pp->style, pp->spin_ns, i, "pong");
        int r = efx_bell_write(pp->b, 1, -1);
        check(r == 0, pp->b, "pong write", r);
    }
    if (pp->style == PONG_POLL)
        efx_bell_watch_exit(pp->a);
    return NULL;
}

static void ping(struct pingpong *pp)
{
    cpu_set_t old = pin(0);
    for (long i = 0; i < pp->rounds; i++) {
        int r = efx_bell_write(pp->a, 1, -1);
        check(r == 0, pp->a, "ping write", r);
        answer(pp->b, -1, PONG_TAKE, pp->spin_ns, i, "ping");
    }
    sched_setaffinity(0, sizeof old, &old);
}

static void test_pingpong_threads(long rounds, int style, int64_t spin_ns)
{
    int ma, ea, mb, eb;
    efx_bell_t *a = new_bell(0, &ma, &ea), *b = new_bell(0, &mb, &eb);
    struct pingpong pp = {a, b, ea, rounds, spin_ns, style};
    pthread_t t;
    int64_t t0 = efx_now_ns();
    pthread_create(&t, NULL, pong_thread, &pp);
    ping(&pp);
    pthread_join(t, NULL);
    uint64_t v[EFX_BELL_INFO_N], w[EFX_BELL_INFO_N];
    efx_bell_info(pp.b, v, EFX_BELL_INFO_N);
    efx_bell_info(pp.a, w, EFX_BELL_INFO_N);
    printf("ok   pingpong threads %-22s spin %6lld: %ld rounds, %.2f us/round,"
           " sleeps %llu+%llu, spins paid %llu+%llu\n",
           pong_names[style], (long long)spin_ns, rounds,
           (efx_now_ns() - t0) / 1e3 / rounds, (unsigned long long)v[5],
           (unsigned long long)w[5], (unsigned long long)v[6], (unsigned long long)w[6]);
    free_bell(pp.a, ma, ea);
    free_bell(pp.b, mb, eb);
}

/* ---- many writers, many readers of every kind ----------------------- */

enum { R_BLOCK, R_TIMED, R_SPIN, R_FIXSPIN, R_POLL, R_WAIT, R_KINDS };
static const char *const reader_names[] = {"block", "timed", "adaptive-spin",
                                           "fixed-spin", "poller", "wait+take"};

/* Lives in MAP_SHARED memory so that forked processes share it. */
struct mix {
    _Atomic uint64_t read_sum;
    _Atomic int done;
    _Atomic int readers_out;
    uint64_t per_writer;
    int memfd, efd, flags;
};

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void mix_writer(efx_bell_t *bell, struct mix *mx, uint64_t seed)
{
    uint64_t left = mx->per_writer;
    while (left) {
        uint64_t n = 1 + xorshift(&seed) % 5;
        if (n > left)
            n = left;
        int r = efx_bell_write(bell, n, HANDSHAKE_MS);
        check(r == 0, bell, "mix write", r);
        left -= n;
        if (xorshift(&seed) % 64 == 0)
            sched_yield();
    }
}

static void mix_reader(efx_bell_t *bell, struct mix *mx, int kind)
{
    uint64_t v;
    if (kind == R_POLL)
        efx_bell_watch_enter(bell);
    while (!atomic_load(&mx->done)) {
        int r;
        switch (kind) {
        case R_BLOCK: r = efx_bell_wait_read(bell, -1, 0, &v); break;
        case R_TIMED: r = efx_bell_wait_read(bell, 3, 0, &v); break;
        case R_SPIN: r = efx_bell_wait_read(bell, -1, -1, &v); break;
        case R_FIXSPIN: r = efx_bell_wait_read(bell, -1, 5000, &v); break;
        case R_WAIT:
            r = efx_bell_wait(bell, -1, 0);
            if (r == 1)
                r = (v = efx_bell_take(bell)) != 0;
            break;
        default: {
            struct pollfd pfd = {mx->efd, POLLIN, 0};
            r = poll(&pfd, 1, -1);
            check(r == 1, bell, "poller poll", r);
            r = (v = efx_bell_poll_take(bell)) != 0;
        }
        }
        check(r >= 0, bell, reader_names[kind], r);
        if (r == 1 && !atomic_load(&mx->done))
            atomic_fetch_add(&mx->read_sum, v);
        /* after done, what is taken is main's wake-up units, not counted:
         * done is set only once every written unit has been read */
    }
    if (kind == R_POLL)
        efx_bell_watch_exit(bell);
    atomic_fetch_add(&mx->readers_out, 1);
}

/* Wait for every written unit to be read, then release the readers.  A
 * run that stops progressing with units unread is a lost wake-up. */
static void mix_finish(efx_bell_t *bell, struct mix *mx, uint64_t total, int readers,
                       const char *what)
{
    uint64_t last = 0;
    int64_t progress = efx_now_ns();
    for (;;) {
        uint64_t sum = atomic_load(&mx->read_sum);
        if (sum == total)
            break;
        if (sum > total)
            fail(bell, "%s: read %llu > written %llu", what, (unsigned long long)sum,
                 (unsigned long long)total);
        if (sum != last) {
            last = sum;
            progress = efx_now_ns();
        } else if (efx_now_ns() - progress > (int64_t)STALL_MS * 1000000) {
            fail(bell, "%s: stuck at %llu of %llu read for %d ms: a lost wake-up", what,
                 (unsigned long long)sum, (unsigned long long)total, STALL_MS);
        }
        usleep(1000);
    }
    atomic_store(&mx->done, 1);
    int64_t deadline = efxb_deadline(STALL_MS);
    while (atomic_load(&mx->readers_out) < readers) {
        if (efx_now_ns() > deadline)
            fail(bell, "%s: readers did not stop", what);
        efx_bell_write(bell, 1, 0);
        usleep(500);
    }
}

struct mix_arg {
    efx_bell_t *bell;
    struct mix *mx;
    int kind;
    uint64_t seed;
};

static void *mix_writer_thread(void *p)
{
    struct mix_arg *a = p;
    mix_writer(a->bell, a->mx, a->seed);
    return NULL;
}

static void *mix_reader_thread(void *p)
{
    struct mix_arg *a = p;
    mix_reader(a->bell, a->mx, a->kind);
    return NULL;
}

static struct mix *new_mix(int flags, uint64_t per_writer)
{
    struct mix *mx = mmap(NULL, sizeof *mx, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    check(mx != MAP_FAILED, NULL, "mmap", -errno);
    memset(mx, 0, sizeof *mx);
    mx->per_writer = per_writer;
    mx->flags = flags;
    return mx;
}

static void test_mix_threads(int flags, int writers, uint64_t per_writer)
{
    struct mix *mx = new_mix(flags, per_writer);
    efx_bell_t *bell = new_bell(flags, &mx->memfd, &mx->efd);
    int readers = 2 * R_KINDS;
    pthread_t t[64];
    struct mix_arg args[64];
    int64_t t0 = efx_now_ns();
    for (int i = 0; i < readers; i++) {
        args[i] = (struct mix_arg){bell, mx, i % R_KINDS, 0};
        pthread_create(&t[i], NULL, mix_reader_thread, &args[i]);
    }
    for (int i = 0; i < writers; i++) {
        args[readers + i] = (struct mix_arg){bell, mx, 0, 0x9e3779b97f4a7c15ULL * (i + 1)};
        pthread_create(&t[readers + i], NULL, mix_writer_thread, &args[readers + i]);
    }
    for (int i = 0; i < writers; i++)
        pthread_join(t[readers + i], NULL);
    mix_finish(bell, mx, per_writer * writers, readers, "mix threads");
    for (int i = 0; i < readers; i++)
        pthread_join(t[i], NULL);
    uint64_t v[EFX_BELL_INFO_N];
    efx_bell_info(bell, v, EFX_BELL_INFO_N);
    check(v[1] == 0 && v[2] == 0 && v[3] == 0, bell, "sleepers/watchers/writers back to 0", 0);
    printf("ok   mix threads %s: %d writers, %d readers, %llu read == written,"
           " %.0f ms, rings %llu sleeps %llu spins paid %llu\n",
           flags ? "semaphore" : "normal   ", writers, readers,
           (unsigned long long)(per_writer * writers), (efx_now_ns() - t0) / 1e6,
           (unsigned long long)v[4], (unsigned long long)v[5], (unsigned long long)v[6]);
    free_bell(bell, mx->memfd, mx->efd);
    munmap(mx, sizeof *mx);
}

/* ---- writers blocked at the maximum --------------------------------- */

struct overflow {
    efx_bell_t *bell;
    long rounds;
};

static uint64_t overflow_value(long i)
{
    static const uint64_t v[] = {EFX_BELL_MAX, 1, EFX_BELL_MAX - 1, 2, 7, EFX_BELL_MAX};
    return v[i % 6];
}

static void *overflow_writer(void *p)
{
    struct overflow *o = p;
    for (long i = 0; i < o->rounds; i++) {
        int r = efx_bell_write(o->bell, overflow_value(i), HANDSHAKE_MS);
        check(r == 0, o->bell, "overflow write: no room made in 5 s (lost futex wake?)", r);
    }
    return NULL;
}

static void test_overflow_threads(long rounds)
{
    int memfd, efd;
    struct overflow o = {new_bell(0, &memfd, &efd), rounds};
    unsigned __int128 written = 0, read = 0;
    pthread_t t;
    for (long i = 0; i < rounds; i++)
        written += overflow_value(i);
    pthread_create(&t, NULL, overflow_writer, &o);
    while (read < written) {
        uint64_t v;
        int r = efx_bell_wait_read(o.bell, HANDSHAKE_MS, 0, &v);
        check(r == 1, o.bell, "overflow read", r);
        read += v;
    }
    pthread_join(t, NULL);
    uint64_t info[EFX_BELL_INFO_N];
    efx_bell_info(o.bell, info, EFX_BELL_INFO_N);
    check(read == written, o.bell, "overflow: read == written", 0);
    printf("ok   overflow threads: %ld writes near 2**64, sums equal, %llu writer waits\n",
           rounds, (unsigned long long)info[8]);
    free_bell(o.bell, memfd, efd);
}

/* ---- processes ------------------------------------------------------ */

static pid_t spawn(void)
{
    pid_t parent = getpid();
    fflush(stdout);
    pid_t pid = fork();
    check(pid >= 0, NULL, "fork", -errno);
    if (pid == 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent))
        _exit(1);
    return pid;
}

static void reap(pid_t pid, const char *what)
{
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail(NULL, "%s: child %d ended with status 0x%x", what, (int)pid, status);
}

/* A child maps the Doorbell itself, through the inherited memfd. */
static efx_bell_t *child_attach(int memfd, int efd)
{
    efx_bell_t *bell;
    int r = efx_bell_attach(memfd, efd, &bell);
    check(r == 0, NULL, "child attach", r);
    return bell;
}

static void test_mix_procs(int flags, int writers, uint64_t per_writer)
{
    struct mix *mx = new_mix(flags, per_writer);
    efx_bell_t *bell = new_bell(flags, &mx->memfd, &mx->efd);
    int readers = R_KINDS + 2;
    pid_t pids[64];
    int64_t t0 = efx_now_ns();
    for (int i = 0; i < readers; i++)
        if ((pids[i] = spawn()) == 0) {
            mix_reader(child_attach(mx->memfd, mx->efd), mx, i % R_KINDS);
            _exit(0);
        }
    for (int i = 0; i < writers; i++)
        if ((pids[readers + i] = spawn()) == 0) {
            mix_writer(child_attach(mx->memfd, mx->efd), mx, 0x2545F4914F6CDD1DULL * (i + 1));
            _exit(0);
        }
    for (int i = 0; i < writers; i++)
        reap(pids[readers + i], "mix writer");
    mix_finish(bell, mx, per_writer * writers, readers, "mix procs");
    for (int i = 0; i < readers; i++)
        reap(pids[i], "mix reader");
    printf("ok   mix procs %s: %d writer and %d reader processes, %llu read == written, %.0f ms\n",
           flags ? "semaphore" : "normal   ", writers, readers,
           (unsigned long long)(per_writer * writers), (efx_now_ns() - t0) / 1e6);
    free_bell(bell, mx->memfd, mx->efd);
    munmap(mx, sizeof *mx);
}

static void test_pingpong_procs(long rounds, int style, int64_t spin_ns)
{
    int ma, ea, mb, eb;
    efx_bell_t *a = new_bell(0, &ma, &ea), *b = new_bell(0, &mb, &eb);
    struct pingpong pp = {a, b, ea, rounds, spin_ns, style};
    int64_t t0 = efx_now_ns();
    pid_t pid = spawn();
    if (pid == 0) {
        struct pingpong mine = pp;
        mine.a = child_attach(ma, ea);
        mine.b = child_attach(mb, eb);
        pong_thread(&mine);
        _exit(0);
    }
    ping(&pp);
    reap(pid, "pong process");
    printf("ok   pingpong procs   %-22s spin %6lld: %ld rounds, %.2f us/round\n",
           pong_names[style], (long long)spin_ns, rounds, (efx_now_ns() - t0) / 1e3 / rounds);
    free_bell(pp.a, ma, ea);
    free_bell(pp.b, mb, eb);
}

/* The exec'ed C peer: `bell_peer pong` and `bell_peer write`. */
static pid_t spawn_peer(const char *peer, char **argv, const int *fds, int nfds)
{
    pid_t pid = spawn();
    if (pid == 0) {
        for (int i = 0; i < nfds; i++) /* the fds are O_CLOEXEC */
            fcntl(fds[i], F_SETFD, 0);
        execv(peer, argv);
        _exit(127);
    }
    return pid;
}

static void test_peer(const char *peer, long rounds)
{
    int ma, ea, mb, eb;
    char s[4][16], n[24];
    efx_bell_t *a = new_bell(0, &ma, &ea), *b = new_bell(0, &mb, &eb);
    struct pingpong pp = {a, b, ea, rounds, -1, PONG_TAKE};
    int fds[4] = {ma, ea, mb, eb};
    for (int i = 0; i < 4; i++)
        snprintf(s[i], sizeof s[i], "%d", fds[i]);
    snprintf(n, sizeof n, "%ld", rounds);
    char *argv[] = {(char *)peer, "pong", s[0], s[1], s[2], s[3], n, NULL};
    pid_t pid = spawn_peer(peer, argv, fds, 4);
    ping(&pp);
    reap(pid, "bell_peer pong");
    printf("ok   pingpong with the exec'ed C peer: %ld rounds\n", rounds);

    /* the peer writes, we read: sums equal */
    long units = 200000;
    snprintf(n, sizeof n, "%ld", units);
    char *wargv[] = {(char *)peer, "write", s[0], s[1], n, NULL};
    pid = spawn_peer(peer, wargv, fds, 2);
    uint64_t sum = 0, v;
    while (sum < (uint64_t)units) {
        int r = efx_bell_wait_read(pp.a, HANDSHAKE_MS, -1, &v);
        check(r == 1, pp.a, "read the peer's writes", r);
        sum += v;
    }
    reap(pid, "bell_peer write");
    check(sum == (uint64_t)units && efx_bell_take(pp.a) == 0, pp.a,
          "peer: read == written", 0);
    printf("ok   the exec'ed C peer's %ld writes all read\n", units);
    free_bell(pp.a, ma, ea);
    free_bell(pp.b, mb, eb);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "threads";
    long rounds = argc > 2 ? atol(argv[2]) : 100000;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(mode, "threads")) {
        test_edges();
        test_pingpong_threads(rounds, PONG_TAKE, 0);
        test_pingpong_threads(rounds, PONG_TAKE, -1);
        test_pingpong_threads(rounds / 4, PONG_TAKE, 3000);
        test_pingpong_threads(rounds / 4, PONG_WAIT, 0);
        test_pingpong_threads(rounds / 4, PONG_POLL, 0);
        test_overflow_threads(rounds / 10);
        test_mix_threads(0, 4, rounds);
        test_mix_threads(EFX_BELL_SEMAPHORE, 4, rounds / 10);
    } else if (!strcmp(mode, "procs")) {
        test_pingpong_procs(rounds, PONG_TAKE, 0);
        test_pingpong_procs(rounds, PONG_TAKE, -1);
        test_pingpong_procs(rounds / 4, PONG_WAIT, 0);
        test_pingpong_procs(rounds / 4, PONG_POLL, 0);
        test_mix_procs(0, 4, rounds);
        test_mix_procs(EFX_BELL_SEMAPHORE, 4, rounds / 10);
        if (argc > 3)
            test_peer(argv[3], rounds / 4);
    } else if (!strcmp(mode, "pingpong")) { /* the hunt alone, for loops */
        test_pingpong_threads(rounds, PONG_TAKE, argc > 3 ? atoll(argv[3]) : 0);
    } else {
        fprintf(stderr, "usage: %s threads|procs|pingpong [ROUNDS] [BELL_PEER|SPIN_NS]\n",
                argv[0]);
        return 2;
    }
    printf("PASS %s\n", mode);
    return 0;
}
