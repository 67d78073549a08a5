"""What a wake-up costs when the reader sleeps in poll(2) rather than in
read(2): the price of a read that close() can wake.

Process ping-pong pinned to one CPU (where the wake-up path itself, not the
scheduler's cross-CPU latency, is what a round trip pays), interleaved so
that the machine's noise hits every row alike:

- ``read(2)``: os.eventfd_read, blocking in read(2) (close() cannot wake it);
- ``select.poll + read``: the same wait in pure Python, through poll(2);
- ``efx_efd_wait_read``: EventFD's waiting read, one crossing (poll(2) on the
  eventfd and the thread's wake-up fd, then an RWF_NOWAIT read);
- ``EventFD.read``: the method, which takes first and then calls the above.

    python benchmarks/wait_cost.py [--rounds N] [--runs N] [--cpu N]
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import time
from collections.abc import Callable

from eventfd_ext import EventFD
from eventfd_ext._shim import ffi, lib

Ops = tuple[Callable[[EventFD], object], Callable[[EventFD], object]]


def _ops() -> dict[str, Ops]:
    count = ffi.new("uint64_t *")

    def poll_read(e: EventFD) -> None:
        p = select.poll()
        p.register(e.fileno(), select.POLLIN)
        p.poll()
        os.eventfd_read(e.fileno())

    return {
        "read(2)": (
            lambda e: os.eventfd_read(e.fileno()),
            lambda e: os.eventfd_write(e.fileno(), 1),
        ),
        "select.poll + read": (poll_read, lambda e: os.eventfd_write(e.fileno(), 1)),
        "efx_efd_wait_read": (
            lambda e: lib.efx_efd_wait_read(e._h, -1, count),
            lambda e: lib.efx_efd_signal(e._h),
        ),
        "EventFD.read": (lambda e: e.read(), lambda e: e.write()),
    }


def round_trip(
    read: Callable[[EventFD], object], write: Callable[[EventFD], object], rounds: int, cpu: int
) -> float:
    """Microseconds per round trip between two processes on one CPU."""
    a, b = EventFD(), EventFD()
    pid = os.fork()
    os.sched_setaffinity(0, {cpu})
    if pid == 0:
        try:
            for _ in range(rounds):
                read(a)
                write(b)
        finally:
            os._exit(0)
    start = time.perf_counter()
    for _ in range(rounds):
        write(a)
        read(b)
    elapsed = time.perf_counter() - start
    os.waitpid(pid, 0)
    a.close()
    b.close()
    return elapsed / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    ops = _ops()
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(args.runs):
        for name, (read, write) in ops.items():
            times[name].append(round_trip(read, write, args.rounds, args.cpu))
    base = statistics.median(times["read(2)"])
    runs = f"{args.runs} runs of {args.rounds:,} round trips"
    print(f"process ping-pong on CPU {args.cpu}: {runs}, medians")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:20s} {median:6.2f} us  {median / base:5.2f}x read(2)")


if __name__ == "__main__":
    main()
