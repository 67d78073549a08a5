"""Doorbell holders killed mid-operation: a writer SIGKILLed at a
random point loses at most the write it was inside; a sleeper SIGKILLed
while counted as one leaves later writes ringing needlessly, never lost,
and nobody hanging.
"""

from __future__ import annotations

import os
import random
import signal

import pytest

from _kernel import TIMEOUT, Child, blocked_in, record
from eventfd_ext._doorbell import Doorbell


def _pipe_bytes(fd: int) -> int:
    """The bytes waiting in the non-blocking pipe *fd* (to its end: EOF)."""
    n = 0
    try:
        while chunk := os.read(fd, 65536):
            n += len(chunk)
    except BlockingIOError:
        pass
    return n


@pytest.mark.parametrize(
    "kills", [pytest.param(40, id="ci"), pytest.param(400, id="full", marks=pytest.mark.slow)]
)
def test_a_killed_writer_loses_at_most_its_own_write(kills: int) -> None:
    rng = random.Random(kills)
    in_flight = 0
    with Doorbell() as bell:
        for _ in range(kills):
            # The writer reports each finished write with one byte.
            r, w = os.pipe()
            os.set_blocking(r, False)
            target = rng.randrange(1, 2_000)

            def writer(r: int = r, w: int = w) -> None:
                os.close(r)
                while True:
                    bell.write(1)
                    os.write(w, b"w")

            child = Child(writer)
            os.close(w)
            try:
                finished = 0
                while finished < target:  # kill it somewhere in its loop
                    finished += _pipe_bytes(r)
                    os.sched_yield()
                child.kill()
            finally:
                child.close()
            finished += _pipe_bytes(r)
            os.close(r)
            got = bell.try_read()
            # Every finished write is there, and at most the one in flight.
            assert finished <= got <= finished + 1, (finished, got)
            in_flight += got - finished
        bell.write(1)
        assert bell.read(timeout=TIMEOUT) == 1  # still usable
    record("doorbell_faults.writer_kills", {"kills": kills, "in_flight_counted": in_flight})


def test_killed_sleepers_leave_nobody_hanging() -> None:
    with Doorbell(spin=0) as bell:
        for _ in range(20):
            child = Child(lambda: bell.read())
            try:
                blocked_in(child.pid, ("poll", "ppoll"), pid=child.pid)
                child.kill(signal.SIGKILL)
            finally:
                child.close()
        # The dead are still counted as sleepers: writes ring (slower), and
        # every count still reaches a live reader.
        for rnd in range(100):
            bell.write(1)
            assert bell.read(timeout=TIMEOUT) == 1, rnd
        reader = Child(lambda: bell.read(timeout=TIMEOUT) == 5 or os._exit(3))
        try:
            blocked_in(reader.pid, ("poll", "ppoll"), pid=reader.pid)
            bell.write(5)
            reader.check()
        finally:
            reader.close()
