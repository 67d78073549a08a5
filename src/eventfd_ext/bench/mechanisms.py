"""The catalogue of what the benchmark compares: one Mechanism per way of
signalling, written as the statements a user would write.

Every measurement (per-call cost, ping-pong, throughput) is built from these
statements by ``runner``, the way ``timeit`` builds its loop, so that each
mechanism pays only for its own calls.  To add a case (MaskFD, say), add a
Mechanism to ``catalogue()``; the runner, the table, the JSON and the plot
pick it up.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .results import Kind

__all__ = ["Channel", "Mechanism", "catalogue"]

#: The names a mechanism's statements use, and what closes them.
Namespace = dict[str, Any]


@dataclass
class Channel:
    """An open instance of a mechanism: the statements' names and a closer."""

    names: Namespace
    close: Callable[[], None]


@dataclass(frozen=True)
class Mechanism:
    """One way of signalling, as statements over the names ``open()`` makes.

    ``a`` carries ping -> pong and ``b`` pong -> ping.  A statement left as
    None means the mechanism does not take part in that measurement.
    """

    name: str
    #: The C floor it is compared to (runner._FLOORS: "eventfd", "pipe",
    #: "socketpair", "doorbell", "eventfd spin=50us").
    floor: str
    open: Callable[[], Channel]
    #: Per-call cost: signal then consume on one channel.
    call: str | None
    #: One round trip, on the side that starts it and on the echoing side.
    ping: str | None
    pong: str | None
    #: Throughput: one signal from the producer; an expression that takes
    #: whatever is pending and evaluates to how many signals it took.
    give: str | None = None
    take: str | None = None
    #: Whether the channel still works after fork() (threading.Event does not).
    processes: bool = True
    #: What it is (results.Kind): it picks the row's colour in the plot, and
    #: "diagnostic" rows are shown only with --dev.
    kind: Kind = "eventfd_ext"
    #: Whether it competes for a section's "fastest" line: False for an
    #: operation other than the one the section compares.
    ranked: bool = True


def _closer(*closers: Callable[[], None]) -> Callable[[], None]:
    def close() -> None:
        for c in closers:
            c()

    return close


def _fds(*fds: int) -> Callable[[], None]:
    return _closer(*(lambda fd=fd: os.close(fd) for fd in fds))


def _os_eventfd() -> Channel:
    a, b = os.eventfd(0), os.eventfd(0)
    names = {"write": os.eventfd_write, "read": os.eventfd_read, "a": a, "b": b}
    return Channel(names, _fds(a, b))


def _dropin() -> Channel:
    from eventfd_ext import eventfd, eventfd_read, eventfd_write

    a, b = eventfd(0), eventfd(0)
    names = {"write": eventfd_write, "read": eventfd_read, "a": a, "b": b}
    return Channel(names, _fds(a, b))


def _eventfd_object() -> Channel:
    from eventfd_ext import EventFD

    a, b = EventFD(), EventFD()
    return Channel({"a": a, "b": b}, _closer(a.close, b.close))


def _in_defs(signal: Callable[[Any], object], read: Callable[[Any], object]) -> dict[str, Any]:
    """The least a Python function over a shim call can cost: a frame around
    the call and nothing else (no error handling at all)."""

    def bare_write(target: Any, value: int) -> object:
        return signal(target)

    def bare_read(target: Any) -> object:
        return read(target)

    return {"write": bare_write, "read": bare_read}


def _raw_fd_channel(wrapped: bool) -> Channel:
    # The drop-ins' calls, on raw fd numbers.
    from eventfd_ext._shim import lib

    a, b = os.eventfd(0), os.eventfd(0)
    calls = {"signal": lib.efx_signal, "read": lib.efx_take}
    names = _in_defs(calls["signal"], calls["read"]) if wrapped else calls
    return Channel({**names, "a": a, "b": b}, _fds(a, b))


def _owner_channel(wrapped: bool) -> Channel:
    # EventFD's own calls: each enters and leaves the object's lifecycle
    # handle, and the read is RWF_NOWAIT (never blocks, so close() can
    # always wake a waiting read): what the lifecycle costs below Python.
    from eventfd_ext import EventFD
    from eventfd_ext._shim import lib

    a, b = EventFD(), EventFD()
    calls = {"signal": lib.efx_efd_signal, "read": lib.efx_efd_take}
    names = _in_defs(calls["signal"], calls["read"]) if wrapped else calls
    return Channel({**names, "a": a._h, "b": b._h}, _closer(a.close, b.close))


def _pipe() -> Channel:
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    names = {
        "write": os.write,
        "read": os.read,
        "B": b"\0",
        "a_r": a_r,
        "a_w": a_w,
        "b_r": b_r,
        "b_w": b_w,
    }
    return Channel(names, _fds(a_r, a_w, b_r, b_w))


def _socketpair() -> Channel:
    a, b = socket.socketpair()
    return Channel({"a": a, "b": b, "B": b"\0"}, _closer(a.close, b.close))


def _threading_event() -> Channel:
    return Channel({"a": threading.Event(), "b": threading.Event()}, _closer())


def _mp_semaphore() -> Channel:
    import multiprocessing

    # The semaphores live in shared memory, so a fork()ed peer shares them.
    ctx = multiprocessing.get_context("fork")
    return Channel({"a": ctx.Semaphore(0), "b": ctx.Semaphore(0)}, _closer())


def _doorbell(spin: float | None) -> Callable[[], Channel]:
    def open_doorbell() -> Channel:
        from eventfd_ext._doorbell import Doorbell

        a, b = Doorbell(spin=spin), Doorbell(spin=spin)
        return Channel({"a": a, "b": b}, _closer(a.close, b.close))

    return open_doorbell


def _eventfd_spinning(spin: float) -> Callable[[], Channel]:
    def open_eventfd() -> Channel:
        from eventfd_ext import EventFD

        a, b = EventFD(spin=spin), EventFD(spin=spin)
        return Channel({"a": a, "b": b}, _closer(a.close, b.close))

    return open_eventfd


def _maskfd(events: int) -> Callable[[], Channel]:
    def open_maskfd() -> Channel:
        from eventfd_ext import MaskFD

        m = MaskFD(events, backing="stream")
        return Channel({"m": m, "IN": select.POLLIN}, m.close)

    return open_maskfd


def catalogue() -> list[Mechanism]:
    """Every mechanism, in the order the table shows them."""
    return [
        Mechanism(
            "os.eventfd_write/read",
            "eventfd",
            _os_eventfd,
            call="write(a, 1); read(a)",
            ping="write(a, 1); read(b)",
            pong="read(a); write(b, 1)",
            give="write(a, 1)",
            take="read(a)",
            kind="os.eventfd",
        ),
        Mechanism(
            "eventfd_ext drop-in",
            "eventfd",
            _dropin,
            call="write(a, 1); read(a)",
            ping="write(a, 1); read(b)",
            pong="read(a); write(b, 1)",
            give="write(a, 1)",
            take="read(a)",
        ),
        Mechanism(
            "EventFD.write/read",
            "eventfd",
            _eventfd_object,
            call="a.write(1); a.read()",
            ping="a.write(1); b.read()",
            pong="a.read(); b.write(1)",
            give="a.write(1)",
            take="a.read()",
        ),
        # The shim's calls with no Python around them, then inside functions
        # that do nothing else: what the cffi crossing costs, and the least
        # any Python-level API over it can add.
        Mechanism(
            "shim lib.efx_signal/take",
            "eventfd",
            lambda: _raw_fd_channel(wrapped=False),
            call="signal(a); read(a)",
            ping="signal(a); read(b)",
            pong="read(a); signal(b)",
            kind="diagnostic",
        ),
        Mechanism(
            "shim in do-nothing defs",
            "eventfd",
            lambda: _raw_fd_channel(wrapped=True),
            call="write(a, 1); read(a)",
            ping="write(a, 1); read(b)",
            pong="read(a); write(b, 1)",
            kind="diagnostic",
        ),
        # The same for the calls EventFD makes through its lifecycle handle.
        Mechanism(
            "owner shim efx_efd_signal/take",
            "eventfd",
            lambda: _owner_channel(wrapped=False),
            call="signal(a); read(a)",
            ping=None,
            pong=None,
            kind="diagnostic",
        ),
        Mechanism(
            "owner shim in do-nothing defs",
            "eventfd",
            lambda: _owner_channel(wrapped=True),
            call="write(a, 1); read(a)",
            ping=None,
            pong=None,
            kind="diagnostic",
        ),
        # The Doorbell: the count in shared memory, the eventfd only to wake
        # a sleeper; with its default adaptive spin, and never spinning.
        Mechanism(
            "Doorbell.write/read",
            "doorbell",
            _doorbell(None),
            call="a.write(1); a.read()",
            ping="a.write(1); b.read()",
            pong="a.read(); b.write(1)",
            give="a.write(1)",
            take="a.read()",
        ),
        Mechanism(
            "Doorbell spin=0",
            "doorbell",
            _doorbell(0),
            call=None,
            ping="a.write(1); b.read()",
            pong="a.read(); b.write(1)",
        ),
        # EventFD spinning 50 us with non-blocking reads before it sleeps.
        Mechanism(
            "EventFD spin=50us",
            "eventfd spin=50us",
            _eventfd_spinning(50e-6),
            call=None,
            ping="a.write(1); b.read()",
            pong="a.read(); b.write(1)",
        ),
        Mechanism(
            "pipe os.write/read",
            "pipe",
            _pipe,
            call="write(a_w, B); read(a_r, 1)",
            ping="write(a_w, B); read(b_r, 1)",
            pong="read(a_r, 1); write(b_w, B)",
            give="write(a_w, B)",
            take="len(read(a_r, 65536))",
            kind="alternative",
        ),
        Mechanism(
            "socketpair send/recv",
            "socketpair",
            _socketpair,
            call="a.send(B); b.recv(1)",
            ping="a.send(B); a.recv(1)",
            pong="b.recv(1); b.send(B)",
            give="a.send(B)",
            take="len(b.recv(65536))",
            kind="alternative",
        ),
        Mechanism(
            "threading.Event",
            "eventfd",
            _threading_event,
            call="a.set(); a.wait(); a.clear()",
            ping="a.set(); b.wait(); b.clear()",
            pong="a.wait(); a.clear(); b.set()",
            processes=False,
            kind="reference",
        ),
        Mechanism(
            "multiprocessing.Semaphore",
            "eventfd",
            _mp_semaphore,
            call="a.release(); a.acquire()",
            ping="a.release(); b.acquire()",
            pong="a.acquire(); b.release()",
            kind="reference",
        ),
        # MaskFD's stream backing shows POLLIN with one byte in a socketpair:
        # a set then a clear of IN is a send then a recv, compared with the
        # raw socketpair row above.
        Mechanism(
            "MaskFD IN set/clear",
            "socketpair",
            _maskfd(0),
            call="m.set(IN); m.clear(IN)",
            ping=None,
            pong=None,
        ),
        # A write of the bits already shown makes no system call; a single
        # write is not the pair the other rows make, so it is not ranked.
        Mechanism(
            "MaskFD no-change write",
            "socketpair",
            _maskfd(select.POLLIN),
            call="m.write(IN)",
            ping=None,
            pong=None,
            ranked=False,
        ),
    ]
