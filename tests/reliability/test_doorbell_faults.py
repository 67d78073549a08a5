"""Doorbell holders killed mid-operation (issue 12): a writer SIGKILLed at a
random point loses at most the write it was inside; a sleeper SIGKILLed
while counted as one leaves later writes ringing needlessly, never lost,
and nobody hanging.
"""

from __future__ import annotations

import mmap
import os
import random
import signal
import struct

import pytest

from eventfd_ext._doorbell import Doorbell

from _kernel import TIMEOUT, Child, blocked_in, record

_DONE = struct.Struct("=Q")  # the writer's count of finished writes


@pytest.mark.parametrize("kills", [pytest.param(40, id="ci"), pytest.param(400, id="full", marks=pytest.mark.slow)])
def test_a_killed_writer_loses_at_most_its_own_write(kills: int) -> None:
    rng = random.Random(kills)
    lost_at_most_one = 0
    with Doorbell() as bell, mmap.mmap(-1, _DONE.size) as done:
        taken = 0
        for _ in range(kills):
            _DONE.pack_into(done, 0, 0)

            def writer() -> None:
                n = 0
                while True:
                    bell.write(1)
                    n += 1
                    _DONE.pack_into(done, 0, n)

            child = Child(writer)
            try:
                # Let it get going: kill it somewhere in its loop.
                while _DONE.unpack_from(done)[0] < rng.randrange(1, 2_000):
                    os.sched_yield()
                child.kill()
            finally:
                child.close()
            finished = _DONE.unpack_from(done)[0]
            got = bell.try_read()
            taken += got
            # Every finished write is there, and at most the one in flight.
            assert finished <= got <= finished + 1, (finished, got)
            lost_at_most_one += got - finished
        bell.write(1)
        assert bell.read(timeout=TIMEOUT) == 1  # still usable
    record("doorbell_faults.writer_kills", {"kills": kills, "in_flight_counted": lost_at_most_one})


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
