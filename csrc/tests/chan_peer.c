/* A plain C peer of a Channel: maps it from the memfd and the two eventfds
 * it inherited, and sends and receives under the same rules as the Python
 * module, through the header the package installs (<eventfd_ext/channel.h>,
 * eventfd_ext.get_include()) and nothing else.
 *
 *   chan_peer echo MEMFD DATA SPACE MEMFD2 DATA2 SPACE2
 *       receive from the first channel until it is shut down and drained,
 *       sending each message back on the second with its bytes reversed;
 *       then shut the second down.
 *
 * Exit status 0, or 1 with a message (a wait longer than 10 s included).
 */
#define _GNU_SOURCE
#include <eventfd_ext/channel.h>

#include <stdio.h>
#include <string.h>

#define PEER_TIMEOUT_MS 10000

static struct efx_chan *open_channel(char **fds)
{
    struct efx_chan *ch = NULL;
    int r = efx_chan_attach(atoi(fds[0]), atoi(fds[1]), atoi(fds[2]), &ch);
    if (r) {
        fprintf(stderr, "chan_peer: attach(%s, %s, %s): %s\n", fds[0], fds[1], fds[2],
                strerror(-r));
        exit(1);
    }
    return ch;
}

int main(int argc, char **argv)
{
    if (argc != 8 || strcmp(argv[1], "echo")) {
        fprintf(stderr, "usage: chan_peer echo MEMFD DATA SPACE MEMFD2 DATA2 SPACE2\n");
        return 2;
    }
    struct efx_chan *in = open_channel(argv + 2), *out = open_channel(argv + 5);
    size_t size = in->capacity;
    unsigned char *buf = malloc(size), *back = malloc(size);
    uint64_t n = 0;
    int64_t len; /* never above size: the largest message fits in the ring */
    while ((len = efx_chan_recv(in, buf, size, PEER_TIMEOUT_MS, -1)) >= 0) {
        for (int64_t i = 0; i < len; i++)
            back[i] = buf[len - 1 - i];
        int r = efx_chan_send(out, back, (size_t)len, PEER_TIMEOUT_MS, -1);
        if (r) {
            fprintf(stderr, "chan_peer: send %llu: %s\n", (unsigned long long)n, strerror(-r));
            return 1;
        }
        n++;
    }
    if (len != -EPIPE) {
        fprintf(stderr, "chan_peer: recv %llu: %s\n", (unsigned long long)n,
                len == -EAGAIN ? "timed out (a lost wake-up?)" : strerror((int)-len));
        return 1;
    }
    efx_chan_shutdown(out);
    efx_chan_detach(in);
    efx_chan_detach(out);
    free(buf);
    free(back);
    return 0;
}
