"""No lost wakeups through MaskFD: set/clear handshakes between the test and
a peer (a thread, or a forked process sharing the MaskFDs), each side blocked
in poll, epoll or select on fileno().  The data word carries the round, so a
stale or skipped round is caught too.  Any wait past TIMEOUT fails with its
round.

CI size: 1,000 rounds per case.  Full size (``--runslow``): 100,000.
"""

from __future__ import annotations

import select
from collections.abc import Callable

import pytest

from _kernel import TIMEOUT, handshakes, record
from eventfd_ext import MaskFD
from eventfd_ext._backings import Backing

SIZES = [
    pytest.param(1_000, id="ci"),
    pytest.param(100_000, id="full", marks=pytest.mark.slow),
]
IN = select.POLLIN

Waiter = Callable[[MaskFD], Callable[[int], None]]


class Stuck(Exception):
    """A side waited longer than TIMEOUT for its partner."""


def _check(mask: MaskFD, rnd: int, how: str, woke: bool) -> None:
    if not woke:
        raise Stuck(
            f"round {rnd}: no wakeup within {TIMEOUT} s (blocked in {how}, stored {mask.read()})"
        )
    events, data = mask.read()
    if (events, data) != (IN, rnd):
        raise AssertionError(f"round {rnd}: woke to {(events, data)}, expected {(IN, rnd)}")
    mask.write(0, rnd)  # clear: the next wait must block until the next set


def _poll(mask: MaskFD) -> Callable[[int], None]:
    p = select.poll()
    p.register(mask, IN)
    return lambda rnd: _check(mask, rnd, "poll", bool(p.poll(TIMEOUT * 1000)))


def _epoll(mask: MaskFD) -> Callable[[int], None]:
    ep = select.epoll()  # closed with the process or the thread's frame
    ep.register(mask, select.EPOLLIN)
    return lambda rnd: _check(mask, rnd, "epoll", bool(ep.poll(TIMEOUT)))


def _select(mask: MaskFD) -> Callable[[int], None]:
    fds = [mask]
    return lambda rnd: _check(mask, rnd, "select", bool(select.select(fds, [], [], TIMEOUT)[0]))


WAITERS: dict[str, Waiter] = {"poll": _poll, "epoll": _epoll, "select": _select}


@pytest.mark.parametrize("rounds", SIZES)
@pytest.mark.parametrize("mode", list(WAITERS))
@pytest.mark.parametrize("backing", ["stream", "dgram", "pipe"])
@pytest.mark.parametrize("peer", ["process", "thread"])
def test_maskfd_handshakes(peer: str, backing: Backing, mode: str, rounds: int) -> None:
    with MaskFD(backing=backing) as ping, MaskFD(backing=backing) as pong:
        figures = handshakes(
            peer,
            rounds,
            ping,
            pong,
            ring=lambda mask, rnd: mask.write(IN, rnd),
            waiter=WAITERS[mode],
            release=lambda: ping.write(IN, rounds),  # a peer left waiting gets out
        )
        assert ping.read() == (0, rounds - 1)
        assert pong.read() == (0, rounds - 1)
    record(f"maskfd_wakeups.{peer}.{backing}.{mode}.{rounds}", figures)
