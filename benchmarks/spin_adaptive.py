"""Does the Doorbell's adaptive spin budget (spin=None) hold?

Two checks, each against fixed budgets measured in the same run:

- ping-pong across CPUs: two processes, pinned to two CPUs, bounce a count
  through two Doorbells (one each way).  Each run of --rounds round trips is
  timed in stretches of --stretch; the adaptive budget must keep every
  stretch within 1.5x the best fixed budget's median stretch.  A budget that
  collapses to 0 makes both sides sleep, and a stretch then costs the
  scheduler's wake-ups (tens of us) instead of a spin's fraction of one.
- slow peer: the peer answers after --think seconds, so no spin can pay; the
  reader's own CPU time per round trip (time.process_time, in the reader)
  with spin=None must stay near spin=0's, far from a fixed 50 us budget's.

    python benchmarks/spin_adaptive.py           # 10 runs of 20,000: ~1 min
    python benchmarks/spin_adaptive.py --quick   # 2 runs of 4,000: seconds

Configurations run interleaved (run 1 of each, then run 2, ...), each run
with new Doorbells, so each run starts the adaptive budget afresh and drift
on a shared machine falls on every configuration alike.  Only the public
API is used: Doorbell(spin=...), read(), write().  Exit status: 0 when both
goals are met, 1 when one is not, 2 when it cannot run (one CPU).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time

from eventfd_ext import Doorbell

#: Ping-pong configurations: label -> spin.  The fixed ones with a budget
#: give the yardstick (the best median among them); spin=0 is shown for
#: reference: what a stretch costs when every wait sleeps.
PINGPONG: dict[str, float | None] = {
    "adaptive (spin=None)": None,
    "fixed 10 us": 10e-6,
    "fixed 50 us": 50e-6,
    "fixed 100 us": 100e-6,
    "spin=0 (reference)": 0.0,
}
ADAPTIVE = "adaptive (spin=None)"
FIXED = ("fixed 10 us", "fixed 50 us", "fixed 100 us")
PINGPONG_LIMIT = 1.5
#: A stretch this many times the best fixed median is counted as collapsed.
COLLAPSED = 10

SLOW: dict[str, float | None] = {
    "adaptive (spin=None)": None,
    "fixed 50 us": 50e-6,
    "spin=0": 0.0,
}
#: adaptive CPU per round trip / spin=0's, at most.
SLOW_LIMIT = 1.25


def _peer(ping: Doorbell, pong: Doorbell, rounds: int, think: float, cpu: int, ready: int) -> None:
    """The forked peer: answer every ping with a pong, after `think` s."""
    try:
        os.sched_setaffinity(0, {cpu})
        os.write(ready, b"r")
        for _ in range(rounds):
            ping.read()
            if think:
                time.sleep(think)  # the slow peer's work, not a synchronisation
            pong.write(1)
    finally:
        os._exit(0)


def run_pair(
    spin: float | None, rounds: int, stretch: int, think: float, cpus: tuple[int, int]
) -> tuple[list[float], float]:
    """One run: fork a peer, do `rounds` round trips.

    Returns (seconds per round trip of each stretch of `stretch` round trips,
    the reader's CPU seconds per round trip)."""
    ping, pong = Doorbell(spin=spin), Doorbell(spin=spin)
    ready_r, ready_w = os.pipe()
    pid = -1
    try:
        pid = os.fork()
        if pid == 0:
            _peer(ping, pong, rounds, think, cpus[1], ready_w)
        os.sched_setaffinity(0, {cpus[0]})
        # The peer is pinned and about to wait: start the clock from there.
        if os.read(ready_r, 1) != b"r":
            raise RuntimeError("the peer died before it started")
        stretches: list[float] = []
        clock = time.perf_counter_ns
        cpu = time.process_time()
        start = clock()
        for i in range(1, rounds + 1):
            ping.write(1)
            pong.read()
            if i % stretch == 0:
                now = clock()
                stretches.append((now - start) / stretch / 1e9)
                start = now
        cpu = time.process_time() - cpu
        _, status = os.waitpid(pid, 0)
        pid = -1
        if status != 0:
            raise RuntimeError(f"the peer exited with status {status:#x}")
        return stretches, cpu / rounds
    finally:
        if pid > 0:  # interrupted: the peer may be blocked in read() forever
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
        ping.close()
        pong.close()


def pingpong(args: argparse.Namespace, cpus: tuple[int, int]) -> bool:
    results: dict[str, list[list[float]]] = {name: [] for name in PINGPONG}
    for run in range(args.runs):
        print(f"ping-pong run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
        for name, spin in PINGPONG.items():
            results[name].append(run_pair(spin, args.rounds, args.stretch, 0.0, cpus)[0])
    flat = {name: [s for run in runs for s in run] for name, runs in results.items()}
    best = min(FIXED, key=lambda name: statistics.median(flat[name]))
    best_median = statistics.median(flat[best])
    limit = PINGPONG_LIMIT * best_median
    n = len(flat[ADAPTIVE])
    print(
        f"\nPing-pong across CPUs {cpus[0]} and {cpus[1]}: {args.runs} runs of "
        f"{args.rounds:,} round trips, timed in stretches of {args.stretch:,} "
        f"({n} stretches per configuration); us per round trip"
    )
    print(
        f"  {'':22} {'median':>8} {'best':>8} {'worst':>8}"
        f"  {'> ' + format(PINGPONG_LIMIT, 'g') + 'x best fixed':>20}"
        f" {'> ' + format(COLLAPSED, 'g') + 'x':>7}  runs hit"
    )
    for name in PINGPONG:
        s = flat[name]
        over = sum(x > limit for x in s)
        collapsed = sum(x > COLLAPSED * best_median for x in s)
        runs_hit = sum(any(x > limit for x in run) for run in results[name])
        print(
            f"  {name:22} {statistics.median(s) * 1e6:8.2f} {min(s) * 1e6:8.2f} "
            f"{max(s) * 1e6:8.2f}  {f'{over} of {len(s)}':>20} {collapsed:7}"
            f"  {runs_hit} of {args.runs}"
        )
    print(
        f"  (best fixed median: {best}, {best_median * 1e6:.2f} us; a stretch over "
        f"{COLLAPSED:g}x it slept on many of its waits: both sides stopped spinning)"
    )
    worst = max(flat[ADAPTIVE])
    ratio = worst / best_median
    met = ratio <= PINGPONG_LIMIT
    print(
        f"adaptive: worst stretch / best fixed median ({best}) = {ratio:.2f} "
        f"(goal <= {PINGPONG_LIMIT:g}): {'met' if met else 'NOT met'}"
    )
    return met


def slow_peer(args: argparse.Namespace, cpus: tuple[int, int]) -> bool:
    rounds = args.slow_rounds
    cpu: dict[str, list[float]] = {name: [] for name in SLOW}
    rtt: dict[str, list[float]] = {name: [] for name in SLOW}
    for run in range(args.runs):
        print(f"slow-peer run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
        for name, spin in SLOW.items():
            stretches, c = run_pair(spin, rounds, rounds, args.think, cpus)
            cpu[name].append(c)
            rtt[name].append(stretches[0])
    med = {name: statistics.median(v) for name, v in cpu.items()}
    print(
        f"\nSlow peer ({args.think * 1e3:g} ms per answer): {args.runs} runs of {rounds} "
        f"round trips; medians; the reader's own CPU time (time.process_time)"
    )
    print(f"  {'':22} {'round trip':>12} {'reader CPU per round trip':>27}")
    for name in SLOW:
        print(
            f"  {name:22} {statistics.median(rtt[name]) * 1e6:9.1f} us {med[name] * 1e6:24.2f} us"
        )
    zero, fixed, adaptive = med["spin=0"], med["fixed 50 us"], med[ADAPTIVE]
    ratio = adaptive / zero
    gap = fixed - zero
    where = (adaptive - zero) / gap if gap > 0 else float("nan")
    print(
        f"  ratios to spin=0: adaptive {ratio:.2f}x, fixed 50 us {fixed / zero:.2f}x; "
        f"adaptive is {where:.0%} of the way from spin=0 to fixed 50 us"
    )
    met = ratio <= SLOW_LIMIT and where <= 0.25
    print(
        f"adaptive CPU per round trip vs spin=0 = {ratio:.2f} (goal <= {SLOW_LIMIT:g}, "
        f"and at most 25% of the way to fixed 50 us): {'met' if met else 'NOT met'}"
    )
    return met


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, help="runs of each configuration (10; quick: 2)")
    p.add_argument(
        "--rounds", type=int, help="ping-pong round trips per run (20,000; quick: 4,000)"
    )
    p.add_argument("--stretch", type=int, default=2_000, help="round trips timed together")
    p.add_argument(
        "--slow-rounds", type=int, help="slow-peer round trips per run (300; quick: 100)"
    )
    p.add_argument("--think", type=float, default=1e-3, help="the slow peer's delay, seconds")
    p.add_argument("--quick", action="store_true", help="the smaller defaults: a few seconds")
    p.add_argument("--cpus", help="two CPUs, e.g. 0,1 (default: the first two allowed)")
    args = p.parse_args(argv)
    for name, full, quick in (
        ("runs", 10, 2),
        ("rounds", 20_000, 4_000),
        ("slow_rounds", 300, 100),
    ):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.runs < 1 or args.stretch < 1 or args.rounds < args.stretch or args.slow_rounds < 1:
        p.error("need --runs >= 1, --slow-rounds >= 1 and --rounds >= --stretch >= 1")
    allowed = sorted(os.sched_getaffinity(0))
    if args.cpus:
        try:
            chosen = tuple(int(c) for c in args.cpus.split(","))
        except ValueError:
            p.error("--cpus: two CPU numbers, e.g. 0,1")
        if len(chosen) != 2 or chosen[0] == chosen[1] or not set(chosen) <= set(allowed):
            p.error(f"--cpus: two different CPUs among the allowed {allowed}")
        cpus = (chosen[0], chosen[1])
    elif len(allowed) < 2:
        print(
            f"skipped: the ping-pong runs across two CPUs, and this process may "
            f"use only {len(allowed)} ({allowed})",
            file=sys.stderr,
        )
        return 2
    else:
        cpus = (allowed[0], allowed[1])
    print(
        f"spin_adaptive: CPython {sys.version.split()[0]}, {os.uname().release}, "
        f"{os.cpu_count()} CPUs, pinned to {list(cpus)}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}" + (" (quick)" if args.quick else "")
    )
    ok = pingpong(args, cpus)
    ok = slow_peer(args, cpus) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # run_pair has killed and reaped its peer
        raise SystemExit(130) from None
