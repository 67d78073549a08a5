"""A Channel across processes: fork, multiprocessing, fds()/from_fds and
SCM_RIGHTS, and the MPMC stress test (senders and receivers in processes,
every message checked for identity, order and content)."""

from __future__ import annotations

import array
import functools
import multiprocessing
import os
import shutil
import socket
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

import eventfd_ext
from _kernel import TIMEOUT, Child, eventfd_id, open_fds, record, send_raw
from eventfd_ext import Channel, Doorbell, recv_channel, recv_doorbell, send_channel, send_doorbell

_F_ADD_SEALS = 1033
_SEALS = 0x1 | 0x2 | 0x4  # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW


def test_a_forked_child_sends_and_receives() -> None:
    with Channel(4096) as requests, Channel(4096) as replies:

        def child() -> None:
            assert requests.recv(timeout=TIMEOUT) == b"ping"
            replies.send(b"pong")

        c = Child(child)
        requests.send(b"ping")
        assert replies.recv(timeout=TIMEOUT) == b"pong"
        c.check()


def _echo(requests: Channel, replies: Channel, n: int) -> None:
    for _ in range(n):
        replies.put(requests.get(timeout=TIMEOUT))


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_carries_the_same_channel(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    with Channel(4096, spin=0) as requests, Channel(4096, spin=0) as replies:
        p = ctx.Process(target=_echo, args=(requests, replies, 3))  # type: ignore[attr-defined]
        p.start()
        for obj in (1, "two", {"three": [3]}):
            requests.put(obj)
            assert replies.get(timeout=TIMEOUT) == obj
        p.join(TIMEOUT)
        assert p.exitcode == 0


def test_from_fds_adopts_a_channel_in_another_object() -> None:
    with Channel(4096, nonblocking=True) as ch:
        fds = [os.dup(fd) for fd in ch.fds()]
        with Channel.from_fds(*fds, spin=0) as other:
            assert other.capacity == 4096
            assert not other.nonblocking
            assert other.spin == 0
            ch.send(b"across")
            assert other.recv(timeout=TIMEOUT) == b"across"
            other.shutdown()
            with pytest.raises(BrokenPipeError):
                ch.send(b"after")


def test_from_fds_refuses_what_is_not_a_channel() -> None:
    with Channel(4096) as ch, Doorbell() as bell:
        memfd, data, space = ch.fds()
        before = open_fds()
        unsealed = os.memfd_create("x")
        os.ftruncate(unsealed, 1024 + 4096)
        sealed_other = os.memfd_create("y", os.MFD_ALLOW_SEALING)
        os.ftruncate(sealed_other, 1024 + 4096)
        import fcntl

        fcntl.fcntl(sealed_other, _F_ADD_SEALS, _SEALS)
        r, w = os.pipe()
        with Channel(4096) as another:
            _, data2, space2 = another.fds()
            cases = [
                ((unsealed, data, space), "not a sealed Channel memfd"),
                ((sealed_other, data, space), "not a sealed Channel memfd"),
                ((bell.fds()[0], data, space), "not a sealed Channel memfd"),
                ((memfd, r, space), "not a Channel's fds"),
                ((memfd, data2, space2), "not the Channel's"),
                ((memfd, space, data), "not the Channel's"),
            ]
            for fds, message in cases:
                with pytest.raises(ValueError, match=message):
                    Channel.from_fds(*fds)
        with pytest.raises(TypeError, match="fd numbers"):
            Channel.from_fds(ch, data, space)  # type: ignore[arg-type]
        for fd in (unsealed, sealed_other, r, w):
            os.close(fd)
        assert open_fds() == before
        ch.send(b"still fine")
        assert ch.recv() == b"still fine"


def test_send_channel_recv_channel() -> None:
    a, b = socket.socketpair()
    with a, b, Channel(4096) as ch:
        send_channel(a, ch)
        with recv_channel(b, spin=0) as got:
            assert got.spin == 0
            assert eventfd_id(got.fds()[1]) == eventfd_id(ch.fds()[1])
            got.send(b"hi")
            assert ch.recv() == b"hi"
        with Doorbell() as bell:
            send_doorbell(a, bell)
            with pytest.raises(ValueError, match="send_doorbell"):
                recv_channel(b)
            send_channel(a, ch)
            with pytest.raises(ValueError, match="send_channel"):
                recv_doorbell(b)
        before = open_fds()
        send_raw(a, [ch.fds()[1]], b"C")
        with pytest.raises(ValueError, match="in the message: 1, where send_channel sends 3"):
            recv_channel(b)
        assert open_fds() == before  # the one fd the message carried is closed
        with pytest.raises(TypeError, match="expected a Channel"):
            send_channel(a, bell)  # type: ignore[arg-type]


# -- the stress test ------------------------------------------------------------------


def message(sid: int, seq: int) -> bytes:
    """Sender sid's message seq: who, which, then bytes derived from both,
    0 to 300 of them, with a CRC of the whole."""
    body = bytes((sid * 131 + seq + i) % 256 for i in range((sid * 7919 + seq * 104729) % 301))
    head = struct.pack("<II", sid, seq) + body
    return head + struct.pack("<I", zlib.crc32(head))


def check(m: bytes) -> tuple[int, int]:
    sid, seq = struct.unpack_from("<II", m)
    assert m == message(sid, seq), f"message {sid}:{seq} torn or wrong"
    return sid, seq


@pytest.mark.parametrize(
    "per_sender",
    [5_000, pytest.param(250_000, marks=pytest.mark.slow)],
)
def test_processes_mpmc_every_message_once_whole_in_order(tmp_path: Path, per_sender: int) -> None:
    senders, receivers = 4, 4
    with Channel(16384) as ch:

        def send(sid: int) -> None:
            for seq in range(per_sender):
                ch.send(message(sid, seq), timeout=TIMEOUT)

        def receive(rid: int) -> None:
            seen = array.array("I")
            last = [-1] * senders
            while True:
                try:
                    sid, seq = check(ch.recv(timeout=TIMEOUT))
                except EOFError:
                    break
                assert seq > last[sid], f"sender {sid}: {seq} after {last[sid]}"
                last[sid] = seq
                seen.extend((sid, seq))
            (tmp_path / f"r{rid}").write_bytes(seen.tobytes())

        rs = [Child(functools.partial(receive, rid)) for rid in range(receivers)]
        ss = [Child(functools.partial(send, sid)) for sid in range(senders)]
        limit = TIMEOUT + per_sender / 1000
        for c in ss:
            c.check(limit)
        ch.shutdown()
        for c in rs:
            c.check(limit)
    got = array.array("I")
    for rid in range(receivers):
        got.frombytes((tmp_path / f"r{rid}").read_bytes())
    pairs = sorted(zip(got[::2], got[1::2], strict=True))
    assert pairs == [(s, i) for s in range(senders) for i in range(per_sender)]
    record(
        f"channel.mpmc.{per_sender}",
        {"senders": senders, "receivers": receivers, "sent": senders * per_sender,
         "delivered_once": len(set(pairs)), "delivered": len(pairs)},
    )  # fmt: skip


# -- a C peer -------------------------------------------------------------------------

PEER = Path(__file__).resolve().parents[1] / "csrc" / "tests" / "chan_peer.c"


def test_a_c_peer_mapping_the_layout_receives_and_sends(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the peer")
    exe = tmp_path / "chan_peer"
    # The installed header alone, and warnings as errors.
    flags = ["-O2", "-Wall", "-Wextra", "-Werror", f"-I{eventfd_ext.get_include()}"]
    subprocess.run([cc, *flags, "-o", str(exe), str(PEER)], check=True, timeout=120)
    with Channel(4096) as there, Channel(4096) as back:
        fds = [*there.fds(), *back.fds()]
        peer = subprocess.Popen([str(exe), "echo", *map(str, fds)], pass_fds=fds)
        try:
            for i in range(2000):
                data = bytes((i + j) % 256 for j in range(i % 1500))  # wraps the ring often
                there.send(data, timeout=TIMEOUT)
                assert back.recv(timeout=TIMEOUT) == data[::-1], i
            there.shutdown()
            with pytest.raises(EOFError):  # the peer shut its way down once it saw the end
                back.recv(timeout=TIMEOUT)
        finally:
            assert peer.wait(TIMEOUT) == 0
