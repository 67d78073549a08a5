/* cffi cdef for the C floor (csrc/floor.c): the benchmark loops of
 * `python -m eventfd_ext.bench` done entirely in C, so that every Python
 * figure can be shown next to what the kernel itself allows.
 *
 * Each function returns the elapsed nanoseconds of its timed loop (measured
 * in C on CLOCK_MONOTONIC, so the cffi call around it is not counted), or
 * -errno (-EIO for a short read or write).  EINTR is retried.  cffi
 * releases the GIL around every call.
 */

#define EFX_FLOOR_EVENTFD ...
#define EFX_FLOOR_PIPE ...
#define EFX_FLOOR_SOCKETPAIR ...
#define EFX_FLOOR_DOORBELL ...
#define EFX_FLOOR_EVENTFD_SPIN ...
#define EFX_FLOOR_CHANNEL ...

/* n rounds of an 8-byte write then read on one eventfd. */
int64_t efx_floor_call_eventfd(int fd, int64_t n);

/* n rounds of a 1-byte write to wfd then read from rfd (a pipe). */
int64_t efx_floor_call_pipe(int rfd, int wfd, int64_t n);

/* n rounds of a 1-byte send on a then recv on b (an AF_UNIX socketpair;
 * done with write and read, which are send and recv with no flags). */
int64_t efx_floor_call_socketpair(int a, int b, int64_t n);

/* n rounds of a Doorbell write(1) then take (nobody asleep: no syscall),
 * on a Doorbell of its own (eventfd_ext/doorbell.h). */
int64_t efx_floor_call_doorbell(int64_t n);

/* n ping-pong round trips over a fresh pair of EFX_FLOOR_EVENTFD,
 * EFX_FLOOR_PIPE, EFX_FLOOR_SOCKETPAIR, EFX_FLOOR_DOORBELL (adaptive spin) or
 * EFX_FLOOR_EVENTFD_SPIN (eventfds read as EventFD(spin=50e-6) reads them)
 * channels, or EFX_FLOOR_CHANNEL (64-byte messages on two Channels,
 * <eventfd_ext/channel.h>, adaptive spin), between the calling thread and a new thread
 * (processes == 0) or a forked child (processes != 0).  The caller runs on
 * cpu_ping and the peer on cpu_pong (-1: not pinned); the caller's
 * affinity is restored before returning.  Untimed round trips come first
 * (256 + n/4), so thread creation and fork are not counted.  A forked
 * peer is killed if the caller's thread dies (PR_SET_PDEATHSIG). */
int64_t efx_floor_pingpong(int mechanism, int processes, int64_t n,
                           int cpu_ping, int cpu_pong);

/* One way: n messages of size bytes (after one untimed) from a forked
 * sender on cpu_send to the caller on cpu_recv (-1: not pinned), over a
 * Channel (EFX_FLOOR_CHANNEL, a ring of 8 messages or 1 MiB) or an AF_UNIX
 * stream socketpair (EFX_FLOOR_SOCKETPAIR, each message written and read
 * whole); the receiver's elapsed nanoseconds.  The caller's affinity is
 * restored; the sender dies with the caller (PR_SET_PDEATHSIG). */
int64_t efx_floor_stream(int mechanism, int64_t n, int64_t size, int cpu_send, int cpu_recv);
