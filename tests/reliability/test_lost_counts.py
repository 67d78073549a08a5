"""No lost counts: several writers (processes or threads) into one EventFD,
one reader in the parent; the sum read equals the sum written, exactly.

CI size: 4 writers x 5,000 writes.  Full size (``--runslow``): 4 x 250,000.
"""

from __future__ import annotations

import time
from functools import partial

import pytest

from _kernel import TIMEOUT, Child, in_thread, join_thread, record
from eventfd_ext import EventFD, eventfd_write

WRITERS = 4
SIZES = [
    pytest.param(5_000, id="ci"),
    pytest.param(250_000, id="full", marks=pytest.mark.slow),
]


def _values(writer: int, n: int, semaphore: bool) -> list[int]:
    """What writer number *writer* writes: varied values, or 1s in semaphore
    mode (where the reader takes one unit per read)."""
    if semaphore:
        return [1] * n
    return [1 + (i * 7 + writer) % 13 for i in range(n)]


def _writer(ev: EventFD, writer: int, values: list[int]) -> None:
    # Half the writers use the method, half the drop-in: both paths count.
    if writer % 2:
        fd = ev.fileno()
        for v in values:
            eventfd_write(fd, v)
    else:
        write = ev.write
        for v in values:
            write(v)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("semaphore", [False, True], ids=["normal", "semaphore"])
@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_sum_read_equals_sum_written(kind: str, semaphore: bool, n: int) -> None:
    plan = [_values(w, n, semaphore) for w in range(WRITERS)]
    expected = sum(map(sum, plan))
    with EventFD(semaphore=semaphore) as ev:
        started = time.perf_counter()
        if kind == "processes":
            children = [Child(partial(_writer, ev, w, plan[w])) for w in range(WRITERS)]
        else:
            threads = [in_thread(partial(_writer, ev, w, plan[w])) for w in range(WRITERS)]
        total = reads = 0
        try:
            while total < expected:
                try:
                    total += ev.read(timeout=TIMEOUT)
                except TimeoutError:
                    pytest.fail(f"lost counts: read {total} of {expected} ({reads} reads)")
                reads += 1
        finally:
            if kind == "processes":
                for c in children:
                    c.check()
                    c.close()
            else:
                for t, out in threads:
                    join_thread(t)
                    assert "error" not in out, out
        elapsed = time.perf_counter() - started
        assert total == expected
        # Every writer has finished: nothing may be left over either.
        assert ev.peek() == 0
        assert not ev.wait(0)
    record(
        f"lost_counts.{kind}.{'semaphore' if semaphore else 'normal'}.{n}",
        {
            "writers": WRITERS,
            "writes": WRITERS * n,
            "sum_written": expected,
            "sum_read": total,
            "reads": reads,
            "seconds": round(elapsed, 3),
        },
    )
