"""No lost wakeups through the Doorbell: set/clear handshakes
between the test and a peer (a forked process or a thread), with random
spin budgets (0 included), each side blocked in read(), read(timeout),
wait(), or a poller inside watch(): poll, epoll level- and edge-triggered.
Any wait past TIMEOUT fails with its round.

CI size: 2,000 rounds per case.  Full size (``--runslow``): 100,000.
"""

from __future__ import annotations

import random
import select
from collections.abc import Callable

import pytest

from _kernel import TIMEOUT, handshakes, record
from eventfd_ext._doorbell import Doorbell

SIZES = [
    pytest.param(2_000, id="ci"),
    pytest.param(100_000, id="full", marks=pytest.mark.slow),
]


class Stuck(Exception):
    """A side waited longer than TIMEOUT for its partner."""


def _took_one(got: int, rnd: int, how: str) -> None:
    if got != 1:
        raise AssertionError(f"round {rnd}: {how} took {got}, expected 1")


def _read(bell: Doorbell) -> Callable[[int], None]:
    # Bounded by the timeout: read() with none would hang the suite on a
    # lost wake-up, read(timeout) turns it into a failure with its round.
    def wait(rnd: int) -> None:
        try:
            _took_one(bell.read(timeout=TIMEOUT), rnd, "read")
        except TimeoutError:
            raise Stuck(f"round {rnd}: no wakeup within {TIMEOUT} s (read)") from None

    return wait


def _wait(bell: Doorbell) -> Callable[[int], None]:
    def wait(rnd: int) -> None:
        if not bell.wait(TIMEOUT):
            raise Stuck(f"round {rnd}: no wakeup within {TIMEOUT} s (wait)")
        _took_one(bell.try_read(), rnd, "wait then try_read")

    return wait


def _poller(kind: str) -> Callable[[Doorbell], Callable[[int], None]]:
    def make(bell: Doorbell) -> Callable[[int], None]:
        watch = bell.watch()
        watch.__enter__()  # for the side's lifetime (its process or thread)
        if kind == "poll":
            p = select.poll()
            p.register(bell, select.POLLIN)

            def ready() -> object:
                return p.poll(TIMEOUT * 1000)

        else:
            ep = select.epoll()
            ep.register(bell, select.EPOLLIN | (select.EPOLLET if kind == "epoll_et" else 0))

            def ready() -> object:
                return ep.poll(TIMEOUT)

        def wait(rnd: int, _watch: object = watch) -> None:  # keeps the watch open
            while True:
                if not ready():
                    raise Stuck(f"round {rnd}: no wakeup within {TIMEOUT} s ({kind})")
                got = bell.try_read()  # token first, then the count
                if got:
                    _took_one(got, rnd, kind)
                    return
                # a spurious wake-up (a token without a count): poll again

        return wait

    return make


WAITERS: dict[str, Callable[[Doorbell], Callable[[int], None]]] = {
    "read": _read,
    "wait": _wait,
    "poll": _poller("poll"),
    "epoll": _poller("epoll"),
    "epoll_et": _poller("epoll_et"),
}


@pytest.mark.parametrize("rounds", SIZES)
@pytest.mark.parametrize("mode", list(WAITERS))
@pytest.mark.parametrize("peer", ["process", "thread"])
def test_doorbell_handshakes(peer: str, mode: str, rounds: int) -> None:
    rng = random.Random(f"{peer}-{mode}-{rounds}")
    spins = [None, 0.0, rng.uniform(1e-6, 200e-6)]
    with Doorbell(spin=rng.choice(spins)) as ping, Doorbell(spin=rng.choice(spins)) as pong:
        figures = handshakes(
            peer,
            rounds,
            ping,
            pong,
            ring=lambda bell, rnd: bell.write(1),
            waiter=WAITERS[mode],
            release=lambda: ping.write(rounds),  # a peer left waiting gets out
        )
        assert ping.peek() == 0
        assert pong.peek() == 0
    record(f"doorbell_wakeups.{peer}.{mode}.{rounds}", figures)
