"""Leaks: the open fds, the shared mappings, the Python objects, the C heap
and the RSS stay flat over many create/use/close cycles of each way to hold
an eventfd (EventFD, the drop-ins, the Doorbell, the Channel), error paths
included.

CI size: 5,000 cycles per kind.  Full size (``--runslow``): 100,000.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import warnings
from collections.abc import Callable

import pytest

from _kernel import c_heap_in_use, open_fds, record, rss_bytes, shared_mappings
from eventfd_ext import (
    EFD_NONBLOCK,
    Channel,
    Doorbell,
    EventFD,
    eventfd,
    eventfd_read,
    eventfd_write,
)

SIZES = [
    pytest.param(5_000, id="ci"),
    pytest.param(100_000, id="full", marks=pytest.mark.slow),
]
#: RSS growth allowed over the measured cycles (RSS misses leaks that fit
#: in memory freed earlier: the C heap and object counts below do not).
RSS_SLACK = 2 * 1024 * 1024
#: C heap growth allowed: well under one byte a cycle at the full size.
HEAP_SLACK = 64 * 1024


def _eventfd_object() -> None:
    with EventFD(3) as ev:
        ev.write(4)
        assert ev.peek() == 7
        assert ev.wait(0)
        assert ev.read() == 7
        repr(ev)


def _semaphore_nonblocking() -> None:
    ev = EventFD(2, semaphore=True, nonblocking=True)
    try:
        assert ev.read() == 1
        assert ev.read(timeout=0) == 1
        try:
            ev.read()
        except BlockingIOError:
            pass
    finally:
        ev.close()


def _error_paths() -> None:
    with EventFD() as ev:
        for bad in (-1, 2**64 - 1, 2**64, 1.5, None):
            try:
                ev.write(bad)  # type: ignore[arg-type]
            except (ValueError, OverflowError, TypeError):
                pass
        try:
            ev.read(timeout=0)
        except TimeoutError:
            pass
    try:
        ev.read()
    except ValueError:
        pass


def _dropins() -> None:
    fd = eventfd(1, EFD_NONBLOCK)
    try:
        eventfd_write(fd, 2)
        assert eventfd_read(fd) == 3
        try:
            eventfd_read(fd)
        except BlockingIOError:
            pass
    finally:
        os.close(fd)


def _adopt_detach() -> None:
    ev = EventFD.from_fd(eventfd(5))
    fd = ev.detach()
    with EventFD.from_fd(fd) as again:
        assert again.read() == 5


def _collected_unclosed() -> None:
    ev = EventFD(1)
    del ev  # closed by __del__ with a ResourceWarning (recorded, not raised)


def _doorbell_object() -> None:
    with Doorbell(3) as bell:
        bell.write(4)
        assert bell.peek() == 7
        assert bell.wait(0)
        assert bell.read() == 7
        assert bell.try_read() == 0
        bell.write()
        assert bell.try_read() == 1
        repr(bell)


def _doorbell_semaphore_nonblocking() -> None:
    bell = Doorbell(2, semaphore=True, nonblocking=True)
    try:
        assert bell.read() == 1
        assert bell.read(timeout=0) == 1
        try:
            bell.read()
        except BlockingIOError:
            pass
        bell.write(2**64 - 2)
        try:
            bell.write(1)  # past the maximum: EAGAIN
        except BlockingIOError:
            pass
    finally:
        bell.close()


def _doorbell_from_fds() -> None:
    with Doorbell(5) as bell:
        fds = tuple(map(os.dup, bell.fds()))
        with Doorbell.from_fds(*fds, nonblocking=True, spin=0) as again:
            assert again.read() == 5
            again.write(6)
        assert bell.read() == 6


def _doorbell_watch() -> None:
    with Doorbell(1) as bell, bell.watch():  # rings at once: a count is pending
        assert bell.read() == 1  # the token, then the count
        assert bell.try_read() == 0
        bell.write(2)
        with bell.watch():
            assert bell.read(timeout=0) == 2


def _doorbell_error_paths() -> None:
    with Doorbell() as bell:
        for bad in (-1, 2**64 - 1, 2**64, 1.5, None):
            try:
                bell.write(bad)  # type: ignore[arg-type]
            except (ValueError, OverflowError, TypeError):
                pass
        for timeout in (0, "x"):
            try:
                bell.read(timeout=timeout)  # type: ignore[arg-type]
            except (TimeoutError, TypeError):
                pass
        # from_fds refusing fds that are not a Doorbell's: left open, nothing mapped.
        r, w = os.pipe()
        small = os.memfd_create("eventfd_ext.test")
        os.ftruncate(small, 100)
        junk = os.memfd_create("eventfd_ext.test")
        os.ftruncate(junk, 256)
        try:
            for fds in ((bell.fds()[0], r), (small, bell.fds()[1]), (junk, bell.fds()[1])):
                try:
                    Doorbell.from_fds(*fds)
                except ValueError:
                    pass
        finally:
            for fd in (r, w, small, junk):
                os.close(fd)
    try:
        bell.read()
    except ValueError:
        pass


def _doorbell_collected_unclosed() -> None:
    bell = Doorbell(1)
    del bell  # closed by __del__ with a ResourceWarning (recorded, not raised)


def _channel_object() -> None:
    with Channel(4096) as ch:
        ch.send(b"x" * 100)
        assert ch.recv() == b"x" * 100
        ch.send(b"y" * 1000)  # longer than the first try's buffer
        assert len(ch.recv()) == 1000
        ch.put([1, bytearray(b"oob")])
        assert ch.get() == [1, bytearray(b"oob")]
        buf = bytearray(16)
        ch.send(b"into")
        assert ch.recv_into(buf) == 4
        assert ch.try_recv() is None
        repr(ch)


def _channel_from_fds() -> None:
    with Channel(4096) as ch:
        fds = tuple(map(os.dup, ch.fds()))
        with Channel.from_fds(*fds, spin=0) as again:
            again.send(b"across")
            assert ch.recv() == b"across"


def _channel_error_paths() -> None:
    with Channel(4096, nonblocking=True) as ch:
        memfd, data, _ = ch.fds()
        with contextlib.suppress(ValueError):
            ch.send(b"x" * 5000)  # never fits
        with contextlib.suppress(TypeError):
            ch.send("text")
        with contextlib.suppress(BlockingIOError):
            ch.recv()  # nonblocking, empty
        with contextlib.suppress(TimeoutError):
            ch.recv(timeout=0)
        with contextlib.suppress(ValueError):
            Channel.from_fds(memfd, data, data)  # fds left open
        ch.send(b"too long for the buffer")
        with contextlib.suppress(ValueError):
            ch.recv_into(bytearray(1))
        assert ch.recv() == b"too long for the buffer"  # it stayed queued
        ch.shutdown()
        with contextlib.suppress(BrokenPipeError):
            ch.send(b"x")
        with contextlib.suppress(EOFError):
            ch.recv()
    with contextlib.suppress(ValueError):
        ch.recv()


def _channel_collected_unclosed() -> None:
    ch = Channel(4096)
    del ch  # closed by __del__ with a ResourceWarning (recorded, not raised)


KINDS: dict[str, Callable[[], None]] = {
    "EventFD": _eventfd_object,
    "semaphore_nonblocking": _semaphore_nonblocking,
    "error_paths": _error_paths,
    "dropins": _dropins,
    "from_fd_detach": _adopt_detach,
    "collected_unclosed": _collected_unclosed,
    "Doorbell": _doorbell_object,
    "Doorbell-semaphore_nonblocking": _doorbell_semaphore_nonblocking,
    "Doorbell-from_fds": _doorbell_from_fds,
    "Doorbell-watch": _doorbell_watch,
    "Doorbell-error_paths": _doorbell_error_paths,
    "Doorbell-collected_unclosed": _doorbell_collected_unclosed,
    "Channel": _channel_object,
    "Channel-from_fds": _channel_from_fds,
    "Channel-error_paths": _channel_error_paths,
    "Channel-collected_unclosed": _channel_collected_unclosed,
}


@pytest.mark.parametrize("cycles", SIZES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_fds_and_rss_flat(kind: str, cycles: int) -> None:
    cycle = KINDS[kind]
    warned = 0

    def count(*args: object, **kwargs: object) -> None:
        nonlocal warned  # counted, not stored: a stored warning keeps its object
        warned += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always", ResourceWarning)
        warnings.showwarning = count
        for _ in range(max(cycles // 10, 500)):  # warm up caches and free lists
            cycle()
        gc.collect()
        warned = 0
        fds_before, rss_before, maps_before = open_fds(), rss_bytes(), shared_mappings()
        blocks_before, heap_before = sys.getallocatedblocks(), c_heap_in_use()
        for _ in range(cycles):
            cycle()
        gc.collect()
        fds_after, rss_after, maps_after = open_fds(), rss_bytes(), shared_mappings()
        blocks_after, heap_after = sys.getallocatedblocks(), c_heap_in_use()
    assert fds_after == fds_before
    assert maps_after == maps_before
    # A leak of one object a cycle shows; interpreter caches stay below.
    assert blocks_after - blocks_before < max(cycles // 20, 200), (blocks_before, blocks_after)
    if not os.environ.get("EFX_SANITIZER"):  # ASan's quarantine holds freed memory
        assert rss_after - rss_before < RSS_SLACK, (rss_before, rss_after)
        if heap_before is not None and heap_after is not None:
            assert heap_after - heap_before < HEAP_SLACK, (heap_before, heap_after)
    if kind.endswith("collected_unclosed"):
        assert warned == cycles  # one ResourceWarning per collected object
    record(
        f"leaks.{kind}.{cycles}",
        {
            "cycles": cycles,
            "fds_before": len(fds_before),
            "fds_after": len(fds_after),
            "rss_before_kib": rss_before // 1024,
            "rss_after_kib": rss_after // 1024,
            "blocks_before": blocks_before,
            "blocks_after": blocks_after,
            "heap_before": heap_before,
            "heap_after": heap_after,
        },
    )
