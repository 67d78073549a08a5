"""Check the performance goals several times over, for work on the fast paths.

Runs only what the goals need (per-call, and thread ping-pong on one CPU),
``--runs`` times, each run interleaving every case as the bench command does,
and prints each goal's ratio per run and the median of the runs: one run's
ratio moves by a few percent on a shared machine, a goal's verdict should
not.

    python benchmarks/goals.py            # 3 runs, about a minute
    python benchmarks/goals.py --runs 5 --cpu 1
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys

from eventfd_ext.bench import cli, report, runner
from eventfd_ext.bench.mechanisms import catalogue


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)))
    args = p.parse_args()
    config = dataclasses.replace(cli.FULL, percall_repetitions=100)
    same_cpu = [runner.Placement(False, args.cpu, args.cpu)]
    ratios: dict[str, list[float]] = {}
    limits: dict[str, float] = {}
    bounds: dict[str, list[float]] = {}  # see report.Goal.bound
    shows: dict[str, str] = {}
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", file=sys.stderr)
        mechanisms = catalogue()

        def noop(*_: object) -> None:
            pass

        results = runner.percall(config, mechanisms, args.cpu, noop)
        results += runner.pingpong(config, mechanisms, same_cpu, noop)
        for row in report.goal_rows(results):
            name = f"{row['goal']} ({row['placement']})" if row["placement"] else row["goal"]
            ratios.setdefault(name, []).append(row["ratio"])
            limits[name] = row["limit"]
            if row["bound"] is not None:
                bounds.setdefault(name, []).append(row["bound"]["ratio"])
                shows[name] = row["bound"]["shows"]
    width = max(map(len, ratios))
    for name, values in ratios.items():
        med = statistics.median(values)
        runs = " ".join(f"{v:.3f}" for v in values)
        verdict = "met" if med <= limits[name] else "NOT met"
        goal = f"(goal <= {limits[name]:.2f}x)"
        print(f"{name:{width}}  median {med:.3f}x {goal} {verdict:7}  runs: {runs}")
        if name in bounds:
            lo = bounds[name]
            print(
                f"{'':{width}}  bound  {statistics.median(lo):.3f}x, {shows[name]}   runs: "
                + " ".join(f"{v:.3f}" for v in lo)
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
