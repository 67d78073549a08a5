"""What spinning costs in CPU, and when it pays.

Two processes, pinned across two CPUs (or on one with --same-cpu), signal
each other through a pair of channels.  For each way of waiting it prints
the round-trip time and the CPU time both processes burn per round trip
(user + system), in two regimes:

- ping-pong: the peer answers at once (the case spinning is for);
- slow peer: the peer answers after --think seconds of sleeping, so every
  wait is long and a spin cannot pay (the case the adaptive budget must
  notice: it should shrink to nothing and cost what a plain sleep costs).

    python benchmarks/spin_cost.py                 # about half a minute
    python benchmarks/spin_cost.py --same-cpu

The cases run interleaved, --runs times; the medians are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import time
from collections.abc import Callable
from typing import Any

from eventfd_ext import Doorbell, EventFD

CASES: dict[str, Callable[[], Any]] = {
    "EventFD": EventFD,
    "EventFD spin=50us": lambda: EventFD(spin=50e-6),
    "Doorbell (adaptive)": Doorbell,
    "Doorbell spin=0": lambda: Doorbell(spin=0),
}


def measure(
    make: Callable[[], Any], rounds: int, think: float, cpus: tuple[int, int]
) -> tuple[float, float]:
    """(seconds per round trip, CPU seconds per round trip, both sides).

    CPU time is each process's CLOCK_PROCESS_CPUTIME_ID (time.process_time:
    exact, where getrusage samples at the tick); the peer sends its own
    back through a pipe."""
    ping, pong = make(), make()
    report_r, report_w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # the peer: answer every signal, after `think` seconds
            try:
                os.sched_setaffinity(0, {cpus[1]})
                cpu = time.process_time()
                for _ in range(rounds):
                    ping.read()
                    if think:
                        time.sleep(think)
                    pong.write(1)
                os.write(report_w, struct.pack("d", time.process_time() - cpu))
            finally:
                os._exit(0)
        os.sched_setaffinity(0, {cpus[0]})
        cpu = time.process_time()
        start = time.perf_counter()
        for _ in range(rounds):
            ping.write(1)
            pong.read()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        (peer_cpu,) = struct.unpack("d", os.read(report_r, 8))
        os.waitpid(pid, 0)
        return elapsed / rounds, (cpu + peer_cpu) / rounds
    finally:
        for fd in (report_r, report_w):
            os.close(fd)
        ping.close()
        pong.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5000, help="round trips per ping-pong run")
    p.add_argument("--think", type=float, default=1e-3, help="the slow peer's delay, seconds")
    p.add_argument("--same-cpu", action="store_true", help="both processes on one CPU")
    args = p.parse_args()
    allowed = sorted(os.sched_getaffinity(0))
    cpus = (allowed[0], allowed[0] if args.same_cpu or len(allowed) < 2 else allowed[1])
    where = "one CPU" if cpus[0] == cpus[1] else "two CPUs"
    regimes = {
        "ping-pong": (args.rounds, 0.0),
        f"slow peer ({args.think * 1e3:g} ms)": (200, args.think),
    }
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.runs):
        for regime, (rounds, think) in regimes.items():
            for name, make in CASES.items():
                results.setdefault((regime, name), []).append(measure(make, rounds, think, cpus))
    print(f"Processes on {where}; medians of {args.runs} runs; CPU = user + system, both processes")
    for regime in regimes:
        print(f"\n{regime:34} {'round trip':>12} {'CPU per round trip':>20}")
        for name in CASES:
            runs = results[(regime, name)]
            rtt = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            print(f"  {name:32} {rtt * 1e6:9.1f} us {cpu * 1e6:17.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
