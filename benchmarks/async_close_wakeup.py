"""How long close() from another thread takes to wake every task awaiting
an object, under each async framework installed (the issue's bound: 10 ms).

Each round parks WAITERS tasks in ``aread()`` of a new EventFD or Doorbell,
then a thread closes it; the figure is the time from the start of close()
to the last waiter's ValueError.  anyio runs the loops: asyncio's, uvloop's
(anyio's ``use_uvloop``) and trio's, the three ways a waiter is woken.

    python benchmarks/async_close_wakeup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import threading
import time
from typing import Any

import anyio

from eventfd_ext import Doorbell, EventFD

WAITERS = 4
SETUPS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    # name: (anyio backend, its options, the package it needs beside anyio)
    "asyncio": ("asyncio", {}, None),
    "asyncio+uvloop": ("asyncio", {"use_uvloop": True}, "uvloop"),
    "trio": ("trio", {}, "trio"),
}


def one_round(backend: str, options: dict[str, Any], cls: type[EventFD | Doorbell]) -> float:
    obj = cls()
    started: list[float] = []
    woke: list[float] = []

    def close() -> None:
        started.append(time.perf_counter())
        obj.close()

    async def waiter() -> None:
        try:
            await obj.aread()
        except ValueError:
            woke.append(time.perf_counter())

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(WAITERS):
                group.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            threading.Thread(target=close).start()

    anyio.run(main, backend=backend, backend_options=options)
    assert len(woke) == WAITERS
    return max(woke) - started[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    print(f"close() from another thread until the last of {WAITERS} waiters woke, ms")
    print(f"{'':16}{'':10}{'median':>8}{'p95':>8}{'max':>8}")
    for name, (backend, options, package) in SETUPS.items():
        if package and importlib.util.find_spec(package) is None:
            print(f"{name:16}(not installed: {package})")
            continue
        for cls in (EventFD, Doorbell):
            times = sorted(one_round(backend, options, cls) * 1e3 for _ in range(rounds))
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(
                f"{name:16}{cls.__name__:10}{statistics.median(times):8.3f}{p95:8.3f}{times[-1]:8.3f}"
            )


if __name__ == "__main__":
    main()
