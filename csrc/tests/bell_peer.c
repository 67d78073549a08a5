/* A plain C peer of a Doorbell: maps it from a memfd and an eventfd that it
 * inherited (or received), and rings and takes under the same rules as
 * every other peer, the Python module included.  It follows the rules by
 * including the C API the package installs (eventfd_ext/doorbell.h,
 * header-only), found with eventfd_ext.get_include():
 *
 *   cc -Wall -Wextra -Werror -I"$(python -c 'import eventfd_ext; print(eventfd_ext.get_include())')" \
 *      bell_peer.c -o bell_peer
 *
 *   bell_peer pong MEMFD_A EFD_A MEMFD_B EFD_B ROUNDS [SPIN_NS]
 *       ROUNDS times: take 1 from A (waiting), then write 1 to B.
 *   bell_peer write MEMFD EFD UNITS      write 1, UNITS times
 *   bell_peer read MEMFD EFD UNITS       take until UNITS were read
 *   bell_peer info MEMFD EFD             print the shared state
 *
 * Exit status 0, or 1 with a message (a wait longer than 5 s included).
 */
#define _GNU_SOURCE
#include <eventfd_ext/doorbell.h>

#include <stdio.h>
#include <string.h>

#define PEER_TIMEOUT_MS 5000

static efx_bell_t *open_bell(const char *memfd, const char *efd)
{
    efx_bell_t *bell = NULL;
    int r = efx_bell_attach(atoi(memfd), atoi(efd), &bell);
    if (r) {
        fprintf(stderr, "bell_peer: attach(%s, %s): %s\n", memfd, efd, strerror(-r));
        exit(1);
    }
    return bell;
}

static int fail(const char *what, int r)
{
    fprintf(stderr, "bell_peer: %s: %s\n", what,
            r == 0 ? "timed out (a lost wake-up?)" : strerror(-r));
    return 1;
}

int main(int argc, char **argv)
{
    uint64_t v;
    int r;
    if (argc >= 7 && !strcmp(argv[1], "pong")) {
        efx_bell_t *a = open_bell(argv[2], argv[3]), *b = open_bell(argv[4], argv[5]);
        long rounds = atol(argv[6]);
        int64_t spin = argc > 7 ? atoll(argv[7]) : -1;
        for (long i = 0; i < rounds; i++) {
            if ((r = efx_bell_wait_read(a, PEER_TIMEOUT_MS, spin, &v)) != 1)
                return fail("pong: take", r);
            if ((r = efx_bell_write(b, 1, PEER_TIMEOUT_MS)) != 0)
                return fail("pong: write", r);
        }
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "write")) {
        efx_bell_t *bell = open_bell(argv[2], argv[3]);
        for (long i = atol(argv[4]); i > 0; i--)
            if ((r = efx_bell_write(bell, 1, PEER_TIMEOUT_MS)) != 0)
                return fail("write", r);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "read")) {
        efx_bell_t *bell = open_bell(argv[2], argv[3]);
        uint64_t want = strtoull(argv[4], NULL, 0), sum = 0;
        while (sum < want) {
            if ((r = efx_bell_wait_read(bell, PEER_TIMEOUT_MS, -1, &v)) != 1)
                return fail("read", r);
            sum += v;
        }
        printf("%llu\n", (unsigned long long)sum);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "info")) {
        efx_bell_t *bell = open_bell(argv[2], argv[3]);
        uint64_t s[EFX_BELL_INFO_N];
        static const char *const names[EFX_BELL_INFO_N] = {
            "count", "sleepers", "watchers", "writers_waiting", "rings", "sleeps",
            "spins_paid", "spins_failed", "writer_waits", "spin_budget_ns", "flags"};
        efx_bell_info(bell, s, EFX_BELL_INFO_N);
        for (int i = 0; i < EFX_BELL_INFO_N; i++)
            printf("%s %llu\n", names[i], (unsigned long long)s[i]);
        return 0;
    }
    fprintf(stderr, "usage: bell_peer pong|write|read|info MEMFD EFD ... (see the source)\n");
    return 2;
}
