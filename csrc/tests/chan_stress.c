/* The Channel's C core under many threads, for ThreadSanitizer (.ci/tsan):
 * SENDERS threads send N messages each, RECEIVERS threads receive until
 * the channel is shut down and drained; every message is checked for
 * identity, content and order per sender, and counted exactly once.  A
 * small ring makes senders wait for room and records wrap constantly.
 *
 *   chan_stress threads N      PASS, or FAIL with the first problem
 */
#define _GNU_SOURCE
#include <eventfd_ext/channel.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SENDERS 3
#define RECEIVERS 3
#define TIMEOUT_MS 5000

static struct efx_chan *ch;
static long per_sender;
static _Atomic long *seen; /* per (sender, seq): times received */
static _Atomic int failed;

static void fail(const char *what, long a, long b)
{
    if (!atomic_exchange(&failed, 1))
        fprintf(stderr, "FAIL: %s (%ld, %ld)\n", what, a, b);
}

/* Message seq of sender s: [s][seq] then (seq % 200) bytes of s + seq + i. */
static size_t make(unsigned char *buf, long s, long seq)
{
    size_t n = (size_t)(seq % 200);
    memcpy(buf, &s, sizeof s);
    memcpy(buf + sizeof s, &seq, sizeof seq);
    for (size_t i = 0; i < n; i++)
        buf[16 + i] = (unsigned char)(s + seq + (long)i);
    return 16 + n;
}

static void *sender(void *arg)
{
    long s = (long)(intptr_t)arg;
    unsigned char buf[256];
    for (long seq = 0; seq < per_sender && !failed; seq++) {
        /* Sender 0 never spins: it sleeps on the futex whenever it finds no room. */
        int r = efx_chan_send(ch, buf, make(buf, s, seq), TIMEOUT_MS, s ? -1 : 0);
        if (r)
            fail("send (a lost wake-up if timed out)", s, r);
    }
    return NULL;
}

static void *receiver(void *arg)
{
    int64_t spin = arg ? -1 : 0; /* receiver 0 never spins: it sleeps in poll */
    unsigned char buf[256], want[256];
    long last[SENDERS];
    for (int i = 0; i < SENDERS; i++)
        last[i] = -1;
    int64_t len = 0;
    while (!failed && (len = efx_chan_recv(ch, buf, sizeof buf, TIMEOUT_MS, spin)) >= 0) {
        long s, seq;
        memcpy(&s, buf, sizeof s);
        memcpy(&seq, buf + sizeof s, sizeof seq);
        if (len < 16 || len > (int64_t)sizeof buf || s < 0 || s >= SENDERS || seq < 0 || seq >= per_sender) {
            fail("a message that nobody sent", s, seq);
            break;
        }
        if ((size_t)len != make(want, s, seq) || memcmp(buf, want, (size_t)len))
            fail("a torn message", s, seq);
        if (seq <= last[s])
            fail("out of order for its sender", s, seq);
        last[s] = seq;
        atomic_fetch_add(&seen[s * per_sender + seq], 1);
    }
    if (!failed && len != -EPIPE)
        fail("recv (a lost wake-up if timed out)", (long)len, 0);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "threads")) {
        fprintf(stderr, "usage: chan_stress threads N\n");
        return 2;
    }
    per_sender = atol(argv[2]);
    seen = calloc((size_t)(SENDERS * per_sender), sizeof *seen);
    int fds[3];
    int r = efx_chan_create(1024, fds, &ch);
    if (r) {
        fprintf(stderr, "create: %s\n", strerror(-r));
        return 1;
    }
    pthread_t t[SENDERS + RECEIVERS];
    for (long i = 0; i < SENDERS; i++)
        pthread_create(&t[i], NULL, sender, (void *)(intptr_t)i);
    for (long i = 0; i < RECEIVERS; i++)
        pthread_create(&t[SENDERS + i], NULL, receiver, (void *)(intptr_t)i);
    for (int i = 0; i < SENDERS; i++)
        pthread_join(t[i], NULL);
    efx_chan_shutdown(ch);
    for (int i = 0; i < RECEIVERS; i++)
        pthread_join(t[SENDERS + i], NULL);
    for (long i = 0; i < SENDERS * per_sender && !failed; i++)
        if (seen[i] != 1)
            fail("received other than once", i / per_sender, seen[i]);
    if (failed)
        return 1;
    printf("PASS: %ld messages from %d senders to %d receivers, each once, whole, in order\n",
           SENDERS * per_sender, SENDERS, RECEIVERS);
    return 0;
}
