"""No lost wakeups: set/clear handshakes through two EventFDs between the test
and a peer (a forked process or a thread), each side blocked in a read, a
poll, an epoll or a wait.  Any wait that passes TIMEOUT fails with its round.

CI size: 2,000 rounds per case.  Full size (``--runslow``): 100,000 rounds.
"""

from __future__ import annotations

import select
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from _kernel import TIMEOUT, handshakes, record
from eventfd_ext import EventFD

SIZES = [
    pytest.param(2_000, id="ci"),
    pytest.param(100_000, id="full", marks=pytest.mark.slow),
]

Waiter = Callable[[EventFD, int], None]


class Stuck(Exception):
    """A side waited longer than TIMEOUT for its partner."""


def _fail(ev: EventFD, rnd: int, how: str) -> None:
    raise Stuck(f"round {rnd}: no wakeup within {TIMEOUT} s (blocked in {how}, count={ev.peek()})")


def _read(ev: EventFD, rnd: int) -> None:
    # A plain blocking read(2); in a main thread a timer signal bounds it
    # (the timer is per process and its handler runs in the main thread).
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGALRM) is not _alarm
    ):
        _took_one(ev.read(), rnd)
        return
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        _took_one(ev.read(), rnd)
    except _Alarm:
        _fail(ev, rnd, "read")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class _Alarm(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Alarm


def _took_one(got: int, rnd: int) -> None:
    if got != 1:
        raise AssertionError(f"round {rnd}: read {got}, expected 1")


def _read_timeout(ev: EventFD, rnd: int) -> None:
    try:
        _took_one(ev.read(timeout=TIMEOUT), rnd)
    except TimeoutError:
        _fail(ev, rnd, "read(timeout)")


def _wait(ev: EventFD, rnd: int) -> None:
    if not ev.wait(TIMEOUT):
        _fail(ev, rnd, "wait")
    _took_one(ev.read(), rnd)


def _poll(ev: EventFD, rnd: int) -> None:
    p = select.poll()
    p.register(ev, select.POLLIN)
    if not p.poll(TIMEOUT * 1000):
        _fail(ev, rnd, "poll")
    _took_one(ev.read(), rnd)


def _epoll(ev: EventFD, rnd: int) -> None:
    with select.epoll() as ep:
        ep.register(ev, select.EPOLLIN)
        if not ep.poll(TIMEOUT):
            _fail(ev, rnd, "epoll")
    _took_one(ev.read(), rnd)


WAITERS: dict[str, Waiter] = {
    "read": _read,
    "read_timeout": _read_timeout,
    "wait": _wait,
    "poll": _poll,
    "epoll": _epoll,
}


@contextmanager
def _alarm_guard() -> Iterator[None]:
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("rounds", SIZES)
@pytest.mark.parametrize("mode", list(WAITERS))
@pytest.mark.parametrize("peer", ["process", "thread"])
def test_handshakes(peer: str, mode: str, rounds: int) -> None:
    wait = WAITERS[mode]
    with EventFD() as ping, EventFD() as pong, _alarm_guard():
        figures = handshakes(
            peer,
            rounds,
            ping,
            pong,
            ring=lambda ev, rnd: ev.write(1),
            waiter=lambda ev: lambda rnd: wait(ev, rnd),
            release=lambda: ping.write(rounds),  # a peer left waiting gets out
            # A forked child owns its main thread: bound its reads too.
            in_child=lambda: signal.signal(signal.SIGALRM, _alarm),
        )
        assert ping.peek() == 0
        assert pong.peek() == 0
    record(f"wakeups.{peer}.{mode}.{rounds}", figures)
