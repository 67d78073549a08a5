"""Many threads on one object, for every class: exact totals, close races
that end cleanly, no call on a number after close, no gating counter that
drifts.  Meaningful with the GIL too; written for the free-threaded build
(3.14t), where nothing serializes the threads but the objects themselves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from eventfd_ext import Doorbell, EventFD, MaskFD

THREADS = 12
ROUNDS = 2_000


def _run(threads: int, body: Callable[[int], None]) -> None:
    """Run body(i) in *threads* threads started together; re-raise the
    first failure."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def run(i: int) -> None:
        try:
            start.wait()
            body(i)
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("cls", [EventFD, Doorbell])
def test_writers_and_readers_account_for_every_count(cls: Any) -> None:
    """Half the threads write 1..3, half take; what was taken plus what is
    left is exactly what was written."""
    obj = cls(semaphore=False)
    writers = THREADS // 2
    taken = [0] * THREADS
    done = threading.Event()
    left = [writers]
    lock = threading.Lock()

    def body(i: int) -> None:
        if i < writers:
            for r in range(ROUNDS):
                obj.write(1 + r % 3)
            with lock:
                left[0] -= 1
                if not left[0]:
                    done.set()
        else:
            while not done.is_set():
                taken[i] += obj.try_read()
            taken[i] += obj.try_read()

    _run(THREADS, body)
    written = writers * sum(1 + r % 3 for r in range(ROUNDS))
    assert sum(taken) + obj.try_read() == written
    obj.close()


def test_the_doorbells_gating_counters_do_not_drift() -> None:
    """Threads enter and leave watch() and read with and without it; at the
    end no watcher, sleeper or waiting writer is left counted."""
    bell = Doorbell()

    def body(i: int) -> None:
        for r in range(ROUNDS // 4):
            if (i + r) % 2:
                with bell.watch():
                    bell.write(1)
                    bell.try_read()
            else:
                bell.write(1)
                bell.wait(0.001)  # a sleeper, when the others took the count
                bell.try_read()

    _run(THREADS, body)
    info = bell._info()
    assert info[1:4] == [0, 0, 0], f"sleepers, watchers, writers_waiting: {info[1:4]}"
    bell.close()


def test_maskfd_threads_leave_what_they_stored() -> None:
    """Each thread owns one bit pattern of the data word and flips IN; the
    object ends showing exactly the stored pair."""
    mask = MaskFD()

    def body(i: int) -> None:
        for r in range(ROUNDS // 4):
            mask.set(1) if r % 2 else mask.clear(1)
            mask.update(data=i)

    _run(THREADS, body)
    events, data = mask.read()
    assert events in (0, 1)
    assert 0 <= data < THREADS
    mask.close()


OWNERS: dict[str, Callable[[], Any]] = {"EventFD": EventFD, "Doorbell": Doorbell, "MaskFD": MaskFD}


@pytest.mark.parametrize("owner", OWNERS)
def test_many_threads_racing_close_touch_no_other_file(owner: str) -> None:
    """Threads hammer an object while one closes it and eventfds (count 7)
    take the freed numbers at once: every thread ends with ValueError or
    its own results, and no new eventfd's count moves."""
    for _ in range(30):
        obj = OWNERS[owner]()
        seized: list[int] = []

        def body(i: int, obj: Any = obj, seized: list[int] = seized) -> None:
            if i == 0:
                obj.close()
                seized.extend(os.eventfd(7, os.EFD_NONBLOCK) for _ in range(3))
                return
            for _ in range(200):
                try:
                    if isinstance(obj, MaskFD):
                        obj.set(1)
                        obj.read()
                    else:
                        obj.write(1)
                        obj.try_read()
                    repr(obj)
                except ValueError:
                    return

        _run(8, body)
        try:
            for fd in seized:
                assert os.eventfd_read(fd) == 7
        finally:
            for fd in seized:
                os.close(fd)
