"""Channel: messages, sizes, bad input, waiting, shutdown and close, in one
process and its threads.  Processes, passing and the stress test are in
test_channel_processes.py; death and scribbles in test_channel_faults.py.

A waiting call is known to wait by the kernel's word (the thread sleeps in
poll for a receive, in futex for a send: ``wait_in_syscall``), never by a
sleep.
"""

from __future__ import annotations

import array
import asyncio
import errno
import io
import math
import pickle
import select
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest

from _kernel import TIMEOUT, in_thread, join_thread, wait_in_syscall
from eventfd_ext import Channel


@pytest.fixture
def ch() -> Any:
    with Channel(4096, spin=0) as channel:
        yield channel


def state(channel: Channel) -> dict[str, int]:
    """What the queue holds, from the shared page."""
    info = channel._info()
    return {key: info[key] for key in ("head", "tail", "messages", "flags", "count")}


# -- messages -----------------------------------------------------------------


def test_a_message_comes_back_whole_as_bytes(ch: Channel) -> None:
    ch.send(b"hello")
    message = ch.recv()
    assert message == b"hello"
    assert type(message) is bytes


@pytest.mark.parametrize(
    "data",
    [
        bytearray(b"abc"),
        memoryview(b"xabcx")[1:4],
        array.array("B", b"abc"),
        memoryview(b"aXbXcX")[::2],  # not contiguous: sent as its bytes
    ],
    ids=["bytearray", "memoryview", "array", "strided"],
)
def test_send_takes_any_bytes_like_object(ch: Channel, data: object) -> None:
    ch.send(data)
    assert ch.recv() == b"abc"


def test_wide_items_are_sent_as_their_bytes(ch: Channel) -> None:
    ints = array.array("i", [1, 2, 3])
    ch.send(ints)
    assert ch.recv() == ints.tobytes()


def test_fifo_and_try_recv(ch: Channel) -> None:
    assert ch.try_recv() is None
    for i in range(50):
        ch.send(b"%d" % i)
    assert [ch.try_recv() for _ in range(50)] == [b"%d" % i for i in range(50)]
    assert ch.try_recv() is None


def test_messages_wrap_around_the_ring_intact(ch: Channel) -> None:
    # 4096-byte ring, 1000-byte messages at odd lengths: every record
    # boundary lands somewhere else, and many wrap.
    for i in range(200):
        data = bytes([i % 251]) * (997 + i % 7)
        ch.send(data)
        ch.send(b"")
        assert ch.recv() == data
        assert ch.recv() == b""


def test_zero_length_and_largest_messages(ch: Channel) -> None:
    assert ch.capacity == 4096
    assert ch.max_message == 4088
    ch.send(b"")
    assert ch.recv() == b""
    big = bytes(range(256)) * 15 + bytes(248)
    assert len(big) == ch.max_message
    ch.send(big)
    assert ch.recv() == big
    assert state(ch)["messages"] == 0


def test_a_message_that_never_fits_is_refused_and_queues_nothing(ch: Channel) -> None:
    ch.send(b"keep")
    before = state(ch)
    with pytest.raises(ValueError, match=r"4089 bytes never fits.*at most 4088"):
        ch.send(bytes(ch.max_message + 1))
    with pytest.raises(ValueError, match="never fits"):
        ch.put(bytes(5000))
    assert state(ch) == before
    assert ch.recv() == b"keep"


def test_capacity_default_and_rounding() -> None:
    with Channel() as default, Channel(100) as rounded:
        assert default.capacity == 1 << 20
        assert rounded.capacity == 104
        assert rounded.max_message == 96


@pytest.mark.parametrize(
    ("capacity", "error"),
    [
        ("4096", TypeError),
        (4096.0, TypeError),
        (True, TypeError),
        (None, TypeError),
        (63, ValueError),
        (-1, ValueError),
        (2**31 + 1, ValueError),
        (2**70, ValueError),
    ],
)
def test_bad_capacities_are_refused(capacity: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="capacity"):
        Channel(capacity)  # type: ignore[arg-type]


@pytest.mark.parametrize("spin", [-1, 2.0, math.inf, math.nan, 2**70, "0"])
def test_bad_spins_are_refused(spin: object) -> None:
    with pytest.raises((ValueError, TypeError), match="spin"):
        Channel(spin=spin)  # type: ignore[arg-type]


@pytest.mark.parametrize("data", ["text", 42, None, [1], object()])
def test_send_refuses_what_is_not_bytes_like(ch: Channel, data: object) -> None:
    ch.send(b"keep")
    before = state(ch)
    with pytest.raises(TypeError, match="bytes-like"):
        ch.send(data)
    assert state(ch) == before


@pytest.mark.parametrize("timeout", ["1", b"1", [], object()])
def test_bad_timeouts_are_refused_before_anything_moves(ch: Channel, timeout: object) -> None:
    ch.send(b"keep")
    before = state(ch)
    for call in (lambda: ch.send(b"x", timeout), lambda: ch.recv(timeout)):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="timeout"):
            call()
    with pytest.raises(ValueError, match="timeout"):
        ch.recv(math.nan)
    assert state(ch) == before


def test_absurd_timeouts_wait_as_long_as_they_must(ch: Channel) -> None:
    ch.send(b"a")
    assert ch.recv(timeout=1e300) == b"a"
    ch.send(b"b", timeout=math.inf)
    assert ch.recv(timeout=2**70) == b"b"


# -- recv_into ----------------------------------------------------------------


def test_recv_into_fills_the_buffer(ch: Channel) -> None:
    ch.send(b"hello")
    buf = bytearray(10)
    assert ch.recv_into(buf) == 5
    assert buf == b"hello\0\0\0\0\0"
    ch.send(b"abcd")
    backing = bytearray(8)
    view = memoryview(backing)[2:6]
    assert ch.recv_into(view) == 4
    assert backing[2:6] == b"abcd"


def test_recv_into_never_truncates(ch: Channel) -> None:
    ch.send(b"0123456789")
    buf = bytearray(4)
    with pytest.raises(ValueError, match=r"10 bytes, longer than the buffer.*stays queued"):
        ch.recv_into(buf)
    assert buf == bytes(4)
    assert ch.recv() == b"0123456789"


@pytest.mark.parametrize("buffer", [b"immutable", "text", 5, None])
def test_recv_into_refuses_what_it_cannot_write(ch: Channel, buffer: object) -> None:
    ch.send(b"keep")
    with pytest.raises(TypeError, match="writable bytes-like"):
        ch.recv_into(buffer)
    assert ch.recv() == b"keep"


# -- put / get --------------------------------------------------------------------


def test_put_get_objects(ch: Channel) -> None:
    for obj in [None, 1, "text", {"a": [1, 2.5]}, (b"x", bytearray(b"y"))]:
        ch.put(obj)
        assert ch.get() == obj


def test_put_sends_out_of_band_buffers_into_the_ring(ch: Channel) -> None:
    big = bytearray(range(256)) * 8
    ch.put(["head", pickle.PickleBuffer(big), 7])
    head, buf, tail = ch.get()
    assert (head, tail) == ("head", 7)
    assert bytes(buf) == big
    # Not pickled in band: the record holds the bytes once, not twice.
    assert len(pickle.dumps(big, protocol=5)) > len(big)
    ch.put(pickle.PickleBuffer(big))
    assert state(ch)["tail"] - state(ch)["head"] < len(big) + 100


def test_get_refuses_a_message_that_put_did_not_frame(ch: Channel) -> None:
    ch.send(b"\xff\xff\xff\xff")
    with pytest.raises(ValueError, match="not a message sent with put"):
        ch.get()
    ch.send(b"")
    with pytest.raises(ValueError, match="too short"):
        ch.get()


# -- waiting ------------------------------------------------------------------------


def fill(channel: Channel) -> int:
    """Fill *channel* with 64-byte messages; how many it took."""
    n = 0
    while True:
        try:
            channel.send(bytes(64), timeout=0)
        except TimeoutError:
            return n
        n += 1


def test_timeouts(ch: Channel) -> None:
    with pytest.raises(TimeoutError, match=r"no message within 0\.02 s"):
        ch.recv(timeout=0.02)
    with pytest.raises(TimeoutError):
        ch.recv_into(bytearray(8), timeout=0)
    n = fill(ch)
    assert n == 4096 // 72
    before = state(ch)
    with pytest.raises(TimeoutError, match=r"no room within 0\.02 s"):
        ch.send(b"x" * 64, timeout=0.02)
    assert state(ch) == before


def test_nonblocking(ch: Channel) -> None:
    ch.nonblocking = True
    assert ch.nonblocking
    with pytest.raises(BlockingIOError):
        ch.recv()
    with pytest.raises(BlockingIOError):
        ch.get()
    n = fill(ch)
    with pytest.raises(BlockingIOError) as info:
        ch.send(bytes(64))
    assert info.value.errno == errno.EAGAIN
    with pytest.raises(TimeoutError):  # a timeout still waits, whatever the mode
        ch.send(bytes(64), timeout=0.01)
    assert [len(ch.recv()) for _ in range(n)] == [64] * n


def test_a_blocked_receiver_wakes_for_a_message(ch: Channel) -> None:
    t, out = in_thread(ch.recv)
    assert wait_in_syscall(t, "poll")
    ch.send(b"wake")
    join_thread(t)
    assert out == {"result": b"wake"}


def test_a_blocked_sender_wakes_when_a_receive_makes_room(ch: Channel) -> None:
    fill(ch)
    t, out = in_thread(lambda: ch.send(b"late" * 16))
    assert wait_in_syscall(t, "futex")
    assert state(ch)["messages"] == 56
    assert len(ch.recv()) == 64
    join_thread(t)
    assert out == {"result": None}
    assert [len(ch.recv()) for _ in range(56)][-1] == 64


def test_a_large_sender_waits_until_its_message_fits(ch: Channel) -> None:
    fill(ch)
    t, out = in_thread(lambda: ch.send(bytes(1000)))
    assert wait_in_syscall(t, "futex")
    ch.recv()  # 72 bytes free: not enough
    assert wait_in_syscall(t, "futex")
    assert t.is_alive()
    for _ in range(13):
        ch.recv()
    join_thread(t)
    assert out == {"result": None}


def test_threads_mpmc_exactly_once_in_order() -> None:
    senders, per = 4, 3000
    with Channel(1024) as ch:  # small: senders wait for room often
        got: list[list[bytes]] = [[] for _ in range(4)]

        def send(sid: int) -> None:
            for i in range(per):
                ch.send(b"%d:%d" % (sid, i))

        def receive(rid: int) -> None:
            while True:
                try:
                    got[rid].append(ch.recv())
                except EOFError:
                    return

        threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
        threads += [threading.Thread(target=receive, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads[:senders]:
            join_thread(t)
        ch.shutdown()
        for t in threads[senders:]:
            join_thread(t)
    seen = [tuple(map(int, m.split(b":"))) for each in got for m in each]
    assert sorted(seen) == [(s, i) for s in range(senders) for i in range(per)]
    for each in got:  # FIFO per sender, as each receiver sees it
        last: dict[int, int] = {}
        for m in each:
            sid, i = map(int, m.split(b":"))
            assert i > last.get(sid, -1)
            last[sid] = i


def test_a_signal_handler_receiving_inside_a_receive_gets_its_own_message() -> None:
    """Receives share scratch buffers: one in a signal handler, run between
    any two bytecodes of another receive, must not write into the buffer
    that receive is about to copy out."""
    rounds = 20_000
    with Channel(4096) as ch, Channel(4096) as other:
        handled: list[int] = []
        running = [True]

        def handler(signum: int, frame: object) -> None:
            mine = b"handler %d" % len(handled)
            other.send(mine)
            assert other.recv() == mine
            handled.append(1)
            if running[0]:  # re-armed here: never nested, and never after the loop
                signal.setitimer(signal.ITIMER_REAL, 20e-6)

        old = signal.signal(signal.SIGALRM, handler)
        try:
            signal.setitimer(signal.ITIMER_REAL, 20e-6)
            for i in range(rounds):
                message = b"main %d" % i
                ch.send(message)
                assert ch.recv() == message
        finally:
            running[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        assert len(handled) > 100  # the handler did run inside the loop


# -- shutdown and close ---------------------------------------------------------------


def test_shutdown_drains_then_ends(ch: Channel) -> None:
    ch.send(b"1")
    ch.put(2)
    ch.shutdown()
    ch.shutdown()  # idempotent
    with pytest.raises(BrokenPipeError):
        ch.send(b"late")
    with pytest.raises(BrokenPipeError):
        ch.put("late")
    assert ch.recv() == b"1"
    assert ch.get() == 2
    for call in (ch.recv, ch.try_recv, ch.get, lambda: ch.recv_into(bytearray(4))):
        with pytest.raises(EOFError):
            call()
    assert "shut down" in repr(ch)


def test_shutdown_wakes_blocked_receivers_and_senders() -> None:
    with Channel(4096, spin=0) as receivers, Channel(4096, spin=0) as senders:
        r, r_out = in_thread(receivers.recv)
        assert wait_in_syscall(r, "poll")
        fill(senders)
        s, s_out = in_thread(lambda: senders.send(bytes(64)))
        assert wait_in_syscall(s, "futex")
        receivers.shutdown()
        senders.shutdown()
        join_thread(r)
        join_thread(s)
    assert isinstance(r_out["error"], EOFError)
    assert isinstance(s_out["error"], BrokenPipeError)


def test_close_wakes_blocked_calls_with_valueerror() -> None:
    ch = Channel(4096, spin=0)
    r, r_out = in_thread(ch.recv)
    assert wait_in_syscall(r, "poll")
    other = Channel(4096, spin=0)
    fill(other)
    s, s_out = in_thread(lambda: other.send(bytes(64)))
    assert wait_in_syscall(s, "futex")
    ch.close()
    other.close()
    join_thread(r)
    join_thread(s)
    assert isinstance(r_out["error"], ValueError)
    assert isinstance(s_out["error"], ValueError)


def test_a_closed_channel_says_so() -> None:
    ch = Channel(4096)
    ch.close()
    ch.close()
    assert ch.closed
    assert repr(ch) == "<Channel [closed]>"
    calls: list[Callable[[], object]] = [
        lambda: ch.send(b"x"),
        lambda: ch.recv(),
        lambda: ch.try_recv(),
        lambda: ch.recv_into(bytearray(4)),
        lambda: ch.put(1),
        lambda: ch.get(),
        ch.shutdown,
        ch.fileno,
        ch.fds,
        lambda: ch.capacity,
    ]
    for call in calls:
        with pytest.raises(ValueError, match="closed Channel"):
            call()


def test_plain_pickle_is_refused(ch: Channel) -> None:
    with pytest.raises(TypeError, match=r"cannot pickle Channel.*send_channel"):
        pickle.dumps(ch)


# -- pollers and asyncio --------------------------------------------------------------


def test_watch_makes_a_pending_message_readable(ch: Channel) -> None:
    ch.send(b"before")
    with ch.watch():
        assert select.select([ch], [], [], 0)[0] == [ch]
        assert ch.try_recv() == b"before"
        assert select.select([ch], [], [], 0)[0] == []
        ch.send(b"during")
        assert select.select([ch], [], [], 0)[0] == [ch]
        assert ch.recv() == b"during"


def test_asyncio_arecv_asend_aget_aput() -> None:
    async def main(ch: Channel) -> list[object]:
        receiver = asyncio.ensure_future(ch.arecv())
        await asyncio.sleep(0)  # let it wait in the loop
        await ch.asend(b"one")
        first = await receiver
        await ch.aput({"two": 2})
        second = await ch.aget()
        # A full channel: asend waits in the loop until arecv makes room.
        while True:
            try:
                ch.send(bytes(64), timeout=0)
            except TimeoutError:
                break
        sender = asyncio.ensure_future(ch.asend(b"last" * 16))
        await asyncio.sleep(0)
        assert not sender.done()
        drained = [await ch.arecv() for _ in range(56)]
        await sender
        ch.shutdown()
        last = await ch.arecv()
        with pytest.raises(EOFError):
            await ch.arecv()
        return [first, second, len(drained), len(last)]

    with Channel(4096) as ch:
        assert asyncio.run(main(ch)) == [b"one", {"two": 2}, 56, 64]


def test_fileno_is_pollable_only_inside_watch(ch: Channel) -> None:
    """Outside watch() a send does not reach the fd, so a poller given it
    would sleep through messages: fileno() refuses, naming the ways that
    work; an arecv() waiting does not open it for others."""
    with pytest.raises(io.UnsupportedOperation, match=r"inside its watch\(\).*arecv"):
        ch.fileno()
    with ch.watch():
        ch.send(b"m")
        assert select.select([ch.fileno()], [], [], 0)[0] == [ch.fileno()]
    with pytest.raises(io.UnsupportedOperation):
        ch.fileno()

    async def main() -> None:
        task = asyncio.ensure_future(ch.arecv())
        await asyncio.sleep(0)  # the task takes "m" without waiting
        assert await task == b"m"
        task = asyncio.ensure_future(ch.arecv())
        for _ in range(3):
            await asyncio.sleep(0)  # the task now waits in its own watch
        assert not task.done()
        with pytest.raises(io.UnsupportedOperation):
            ch.fileno()
        ch.send(b"n")
        assert await asyncio.wait_for(task, TIMEOUT) == b"n"

    asyncio.run(main())
