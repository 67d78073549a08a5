"""A Channel against death and bad peers: senders and receivers SIGKILLed
mid-call, a holder stopped with the lock, a peer that scribbles on the
shared memfd or tries to shrink it, and leaks over many lifetimes.

The holder's side is played by forked children that touch the memfd
through Python's mmap (the layout is <eventfd_ext/channel.h>: the lock word
at 64, head at 72, tail at 80, messages at 88, the data Doorbell's count at
128 + 64)."""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import random
import select
import signal
import struct
import time
import zlib
from collections.abc import Iterator

import pytest

from _kernel import TIMEOUT, Child, record
from eventfd_ext import Channel

LOCK, HEAD, TAIL, MESSAGES, COUNT = 64, 72, 80, 88, 192
RING = 1024


def big_message(seq: int, size: int) -> bytes:
    body = random.Random(seq).randbytes(size)
    return struct.pack("<Q", seq) + body + struct.pack("<I", zlib.crc32(body))


def whole(m: bytes) -> int:
    """The message's seq, once its CRC says it is whole."""
    (seq,) = struct.unpack_from("<Q", m)
    assert zlib.crc32(m[8:-4]) == struct.unpack("<I", m[-4:])[0], f"message {seq} torn"
    return int(seq)


@pytest.fixture
def page() -> Iterator[tuple[Channel, mmap.mmap]]:
    with Channel(4096, spin=0) as ch:
        memfd = ch.fds()[0]
        with mmap.mmap(memfd, RING + 4096) as m:
            yield ch, m


# -- death -------------------------------------------------------------------------


@pytest.mark.parametrize("rounds", [20, pytest.param(200, marks=pytest.mark.slow)])
def test_a_sender_killed_mid_send_shows_no_torn_message_and_wedges_nobody(rounds: int) -> None:
    size = 1 << 20  # a copy long enough that the kill often lands inside it
    body = random.Random(0).randbytes(size)
    crc = struct.pack("<I", zlib.crc32(body))
    received = 0
    buf = bytearray(size + 12)
    with Channel(4 * size, spin=0) as ch:
        for r in range(rounds):

            def sender(r: int = r) -> None:
                for seq in range(r << 32, (r + 1) << 32):
                    ch.send(struct.pack("<Q", seq) + body + crc)

            c = Child(sender)
            # Receive while it sends (without checking: the checks would
            # slow this side down until the sender only waits for room),
            # then kill it at a random point.
            stop = time.monotonic() + random.uniform(0.002, 0.02)  # fault injection
            while time.monotonic() < stop:
                if ch._info()["messages"]:
                    ch.recv_into(buf)
                    received += 1
            c.kill()
            c.close()
            while (m := ch.try_recv()) is not None:
                whole(m)
            ch.send(b"alive", timeout=TIMEOUT)  # not wedged, not torn
            assert ch.recv(timeout=TIMEOUT) == b"alive"
        recovered = ch._info()["recoveries"]
    record(f"channel.sender_kills.{rounds}", {"rounds": rounds, "lock_taken_over": recovered})
    assert received, "nothing was received: the test proved nothing"
    assert recovered, "no kill landed inside a send: the test proved nothing"


def test_a_sender_dead_inside_its_copy_leaves_nothing_visible(
    page: tuple[Channel, mmap.mmap],
) -> None:
    ch, m = page
    ch.send(b"before")

    def dies_inside_a_send() -> None:
        struct.pack_into("<I", m, LOCK, os.getpid())  # the lock, as a sender takes it
        (tail,) = struct.unpack_from("<Q", m, TAIL)
        at = RING + tail % 4096
        struct.pack_into("<II", m, at, 100, ~100 & 0xFFFFFFFF)  # a header, half a copy
        m[at + 8 : at + 58] = b"h" * 50
        os._exit(0)  # dead before the commit (tail)

    Child(dies_inside_a_send).check()
    assert ch.recv(timeout=TIMEOUT) == b"before"
    assert ch.try_recv() is None
    ch.send(b"after")
    assert ch.recv(timeout=TIMEOUT) == b"after"
    assert ch._info()["recoveries"] == 1


@pytest.mark.parametrize("rounds", [12, pytest.param(200, marks=pytest.mark.slow)])
def test_a_receiver_killed_mid_receive_loses_at_most_that_message(rounds: int) -> None:
    size = 1 << 19
    with Channel(8 * size, spin=0) as ch:
        for r in range(rounds):
            sent = list(range(r * 100, r * 100 + 6))
            for seq in sent:
                ch.send(big_message(seq, size))
            r_fd, w_fd = os.pipe()

            def receiver(w_fd: int = w_fd) -> None:
                while True:
                    seq = whole(ch.recv())
                    os.write(w_fd, struct.pack("<Q", seq))

            c = Child(receiver)
            time.sleep(random.uniform(0, 0.002))  # fault injection
            c.kill()
            c.close()
            os.close(w_fd)
            with os.fdopen(r_fd, "rb") as f:
                data = f.read()
            taken = [s for (s,) in struct.iter_unpack("<Q", data)]
            rest = []
            while (m := ch.try_recv()) is not None:
                rest.append(whole(m))
            got = taken + rest
            assert len(got) == len(set(got)), "a message was delivered twice"
            assert set(got) <= set(sent)
            assert len(sent) - len(got) <= 1
            assert rest == sorted(rest)


def test_a_stopped_holder_delays_but_timeouts_and_ctrl_c_still_leave(
    page: tuple[Channel, mmap.mmap],
) -> None:
    ch, m = page
    ch.send(b"queued")

    def holder() -> None:
        struct.pack_into("<I", m, LOCK, os.getpid())  # the lock, as a holder takes it
        os.kill(os.getpid(), signal.SIGSTOP)

    c = Child(holder)
    _, status = os.waitpid(c.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ch.recv(timeout=0.2)
        with pytest.raises(TimeoutError):
            ch.send(b"x", timeout=0.05)
        assert ch.try_recv() is None  # within a slice of the lock, queued or not
        assert time.monotonic() - start < TIMEOUT

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        old = signal.signal(signal.SIGALRM, interrupt)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            with pytest.raises(KeyboardInterrupt):
                ch.recv()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    finally:
        c.kill()
        c.close()
    assert ch.recv(timeout=TIMEOUT) == b"queued"  # the dead holder's lock taken over
    assert ch._info()["recoveries"] >= 1


# -- bad peers ---------------------------------------------------------------------


def test_the_memfd_cannot_be_shrunk_or_grown(page: tuple[Channel, mmap.mmap]) -> None:
    ch, _ = page
    memfd = ch.fds()[0]
    for size in (0, RING, RING + 8192):
        with pytest.raises(PermissionError):
            os.ftruncate(memfd, size)
    ch.send(b"fine")
    assert ch.recv() == b"fine"


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (LOCK, 0x3FFFFFF0),  # a holder that no thread is (above pid_max): taken over
        (HEAD, 3),  # not a record boundary
        (TAIL, 1 << 40),  # past the capacity
        (TAIL, 0),  # before head: "negative" bytes in use
        (MESSAGES, 999),
        (COUNT, 12345),  # the data Doorbell says messages that are not there
        (RING, 0xFFFFFFFF),  # the first record's length
        (RING + 4, 0),  # its check word
        (16, 1 << 40),  # the capacity in the header: read once, at attach
    ],
)
def test_a_scribbled_word_is_repaired_not_trusted(
    page: tuple[Channel, mmap.mmap], offset: int, value: int
) -> None:
    ch, m = page
    ch.send(b"first")
    ch.send(b"second")
    fmt = "<I" if offset >= RING else "<Q"
    struct.pack_into(fmt, m, offset, value)
    got = []
    while (msg := ch.try_recv()) is not None:
        got.append(msg)
    assert set(got) <= {b"first", b"second"}  # some may be dropped, none made up
    info = ch._info()
    assert info["count"] == info["messages"] == 0
    for i in range(200):  # whole laps of the ring still work
        ch.send(b"%d" % i * 10)
        assert ch.recv(timeout=TIMEOUT) == b"%d" % i * 10
    if offset != 16:
        assert ch._info()["recoveries"] >= 1


@pytest.mark.parametrize("rounds", [3_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_random_scribbles_never_crash_or_hang_a_holder(
    page: tuple[Channel, mmap.mmap], rounds: int
) -> None:
    ch, _ = page
    memfd = ch.fds()[0]

    def scribbler() -> None:
        rng = random.Random(1)
        with mmap.mmap(memfd, RING + 4096) as mine:
            while True:
                # Every word but the lock's: a lock word rewritten without
                # end is a holder that never lets go (the stopped-holder
                # test), and each call would wait out its slice.
                at = rng.choice([rng.randrange(68, 128), rng.randrange(RING, RING + 4096)])
                at -= at % 4
                struct.pack_into("<I", mine, at, rng.getrandbits(32))

    c = Child(scribbler)
    try:
        rng = random.Random(2)
        for _ in range(rounds):
            op = rng.randrange(4)
            try:
                if op == 0:
                    ch.send(bytes(rng.randrange(300)), timeout=0)
                elif op == 1:
                    ch.try_recv()
                elif op == 2:
                    ch.recv_into(bytearray(64), timeout=0)
                else:
                    ch.recv(timeout=0)
            except (TimeoutError, ValueError):
                pass  # no room, nothing queued, or a scribbled length too long for 64
            except (BrokenPipeError, EOFError):
                pass  # the flags word was written over: shut down
    finally:
        c.kill()
        c.close()
    while True:  # the scribbler gone, the holder goes on
        try:
            if ch.try_recv() is None:
                break
        except EOFError:
            break
    record(f"channel.scribbles.{rounds}", {"operations": rounds})  # its counters were scribbled too


@pytest.mark.parametrize("target", [5_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_senders_and_receivers_sigkilled_at_random_points(target: int) -> None:
    """Two sender and two receiver processes, one of the four SIGKILLed at
    a random point every few milliseconds and replaced, until *target*
    messages were delivered: every message whole, none twice, each
    receiver sees each sender's messages in order, and no more are lost
    than receivers were killed (each loses at most the one it was taking)."""
    rng = random.Random(3)
    r_fd, w_fd = os.pipe()
    os.set_blocking(r_fd, False)
    records = bytearray()
    with Channel(1 << 16) as ch:

        def sender(sid: int) -> None:
            seq = 0
            while True:
                ch.send(_message(sid, seq))
                seq += 1

        def receiver(rid: int) -> None:
            while True:
                try:
                    m = ch.recv()
                except EOFError:
                    return
                sid, seq = struct.unpack_from("<II", m)
                torn = m != _message(sid, seq)
                os.write(w_fd, struct.pack("<III", rid, 0xFFFFFFFF if torn else sid, seq))

        next_id = iter(range(1_000_000))
        senders = [Child(functools.partial(sender, next(next_id))) for _ in range(2)]
        receivers = [Child(functools.partial(receiver, next(next_id))) for _ in range(2)]
        try:
            receiver_kills = sender_kills = 0
            deadline = time.monotonic() + TIMEOUT * 4
            while len(records) // 12 < target:
                assert time.monotonic() < deadline, f"{len(records) // 12} delivered: wedged?"
                time.sleep(rng.uniform(0, 0.004))  # fault injection, not synchronisation
                with contextlib.suppress(BlockingIOError):
                    records += os.read(r_fd, 1 << 20)
                group = senders if rng.random() < 0.5 else receivers
                i = rng.randrange(2)
                group[i].kill()
                group[i].close()
                if group is senders:
                    sender_kills += 1
                    senders[i] = Child(functools.partial(sender, next(next_id)))
                else:
                    receiver_kills += 1
                    receivers[i] = Child(functools.partial(receiver, next(next_id)))
            for c in senders:
                c.kill()
                c.close()
            ch.shutdown()
            # The receivers drain what is queued into the pipe, which must be
            # emptied meanwhile: a full pipe would block them in os.write.
            deadline = time.monotonic() + TIMEOUT
            while not all(c.poll() for c in receivers):
                assert time.monotonic() < deadline, "receivers still running after shutdown"
                select.select([r_fd], [], [], 0.01)
                with contextlib.suppress(BlockingIOError):
                    records += os.read(r_fd, 1 << 20)
            for c in receivers:
                c.check()
        finally:  # a failure leaves no child behind
            for c in senders + receivers:
                c.close()
    os.close(w_fd)
    os.set_blocking(r_fd, True)
    with os.fdopen(r_fd, "rb") as f:
        records += f.read()  # the rest, now that every writer is gone
    seen: dict[int, list[int]] = {}
    last: dict[tuple[int, int], int] = {}
    for rid, sid, seq in struct.iter_unpack("<III", records):
        assert sid != 0xFFFFFFFF, f"message {seq} torn"
        assert seq > last.get((rid, sid), -1), f"receiver {rid}: sender {sid} out of order"
        last[rid, sid] = seq
        seen.setdefault(sid, []).append(seq)
    lost = 0
    for sid, seqs in seen.items():
        assert len(seqs) == len(set(seqs)), f"sender {sid}: a message delivered twice"
        lost += max(seqs) + 1 - len(seqs)
    assert lost <= receiver_kills
    record(
        f"channel.random_kills.{target}",
        {"delivered": len(records) // 12, "sender_kills": sender_kills,
         "receiver_kills": receiver_kills, "lost": lost},
    )  # fmt: skip


def _message(sid: int, seq: int) -> bytes:
    body = bytes((sid + seq + i) % 256 for i in range(seq % 97))
    return struct.pack("<II", sid, seq) + body
