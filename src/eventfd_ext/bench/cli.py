"""The command line of ``python -m eventfd_ext.bench``."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import channel, report, runner
from .mechanisms import Mechanism, catalogue
from .results import Result

__all__ = ["EXTRA_GROUPS", "FULL", "GROUPS", "MEASUREMENTS", "QUICK", "main", "run"]

#: The default run: a few minutes at most on a 2-CPU machine.
FULL = runner.Config(
    repetitions=31,
    percall_repetitions=60,
    percall_seconds=0.005,
    rounds=1000,
    signals=100_000,
)
#: ``--quick``: a smoke run, seconds rather than minutes.
QUICK = runner.Config(
    repetitions=5,
    percall_repetitions=10,
    percall_seconds=0.002,
    rounds=200,
    signals=10_000,
)

#: A measurement: (config, mechanisms, the CPUs to pin to, progress) -> results.
Measurement = Callable[
    [runner.Config, list[Mechanism], Sequence[int], runner.Progress], list[Result]
]


def _first(cpus: Sequence[int]) -> int | None:
    return cpus[0] if cpus else None


def _last(cpus: Sequence[int]) -> int | None:
    return cpus[-1] if cpus else None


#: What --only chooses from, in the order a run measures them: a new
#: measurement is one entry here and its sections in report.SECTIONS.
MEASUREMENTS: dict[str, Measurement] = {
    "per-call": lambda config, mechs, cpus, progress: runner.percall(
        config, mechs, _first(cpus), progress
    ),
    "ping-pong": lambda config, mechs, cpus, progress: runner.pingpong(
        config, mechs, runner.placements(cpus), progress
    ),
    "throughput": lambda config, mechs, cpus, progress: runner.throughput(
        config, mechs, (_first(cpus), _last(cpus)), progress
    ),
}
GROUPS = tuple(MEASUREMENTS)
#: Groups run only when --only names them (the Channel's section forks
#: processes for every peer: minutes more).
EXTRA_GROUPS = ("channel",)


def _cpus(text: str) -> list[int]:
    if text == "none":
        return []
    try:
        cpus = [int(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of CPU numbers: {text!r}") from None
    allowed = os.sched_getaffinity(0)
    if not 1 <= len(cpus) <= 2 or not set(cpus) <= allowed:
        raise argparse.ArgumentTypeError(
            f"give one or two of the CPUs this process may use ({sorted(allowed)})"
        )
    return cpus


def _groups(text: str) -> list[str]:
    groups = text.split(",")
    unknown = set(groups) - set(GROUPS + EXTRA_GROUPS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown group {sorted(unknown)}; choose from {GROUPS + EXTRA_GROUPS}"
        )
    return groups


def parser(prog: str = "eventfd-ext-bench") -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark eventfd_ext against os.eventfd, pipes and "
        "socketpairs, and say which is fastest (--dev: with the same loops in C "
        "as the floor, and the project's goals).",
    )
    p.add_argument("--quick", action="store_true", help="a short smoke run (seconds)")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the results as JSON to FILE, or to stdout instead of the table",
    )
    p.add_argument("--plot", metavar="FILE.png", help="draw a chart (needs matplotlib)")
    p.add_argument(
        "--dev",
        action="store_true",
        help="for work on eventfd_ext: also show the C floors, the rows that split "
        "a cost into its layers, each row's ratio to its C floor, and the goals",
    )
    p.add_argument(
        "--cpus",
        type=_cpus,
        metavar="A[,B]",
        help="the CPUs to pin to: the same-CPU cases run on A, the across-CPU "
        "ones on A and B; 'none' pins nothing (default: the first two this "
        "process may use)",
    )
    p.add_argument(
        "--only",
        type=_groups,
        default=list(GROUPS),
        metavar="GROUP[,GROUP]",
        help=f"run only these groups of {', '.join(GROUPS + EXTRA_GROUPS)} "
        f"(default: {', '.join(GROUPS)})",
    )
    p.add_argument("--repetitions", type=int, metavar="N", help="repetitions of every case")
    return p


class _Progress:
    """Progress on stderr: one rewritten line on a terminal, else a line
    each time a new step starts and when it ends."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.what = ""
        self.width = 0
        self.start = time.monotonic()

    def __call__(self, what: str, done: int, total: int) -> None:
        line = f"[{time.monotonic() - self.start:5.1f}s] {what} {done}/{total}"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(self.width))
            self.width = len(line)
        elif what != self.what or done == total:
            sys.stderr.write(line + "\n")
        self.what = what
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def run(
    config: runner.Config,
    cpus: Sequence[int],
    groups: Sequence[str] = GROUPS,
    progress: runner.Progress = lambda what, done, total: None,
) -> list[Result]:
    """Measure *groups* and return every result (C floors included)."""
    mechanisms = catalogue()
    results: list[Result] = []
    for group, measure in MEASUREMENTS.items():
        if group in groups:
            results += measure(config, mechanisms, cpus, progress)
    return results


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                "",
            )
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("eventfd_ext")
    except PackageNotFoundError:
        ours = "not installed (source tree)"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "kernel": platform.release(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "eventfd_ext": ours,
    }


def main(argv: Sequence[str] | None = None, prog: str = "eventfd-ext-bench") -> int:
    """Run the benchmark (the ``eventfd-ext-bench`` console script);
    returns the exit status."""
    args = parser(prog).parse_args(argv)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        # Said before the minute of measuring, not after it.
        print("--plot needs matplotlib: pip install 'eventfd_ext[plot]'", file=sys.stderr)
        return 2
    config = QUICK if args.quick else FULL
    if args.repetitions:
        config = dataclasses.replace(
            config, repetitions=args.repetitions, percall_repetitions=args.repetitions
        )
    cpus = args.cpus if args.cpus is not None else sorted(os.sched_getaffinity(0))[:2]
    info = machine()
    info["pinned"] = cpus or "no"
    info["mode"] = "quick" if args.quick else "full"
    progress = _Progress()
    figures: list[channel.Figure] = []
    try:
        results = run(config, cpus, args.only, progress)
        if "channel" in args.only:
            figures = channel.measure(channel.QUICK if args.quick else channel.FULL, cpus, progress)
    finally:
        progress.done()
    heading = (
        f"eventfd_ext bench ({info['mode']}): {info['python']}, Linux {info['kernel']}, "
        f"{info['cpus']} CPUs ({info['cpu']}), pinned to {info['pinned']}, {info['date']}"
    )
    if args.json:
        doc = {
            "machine": info,
            "config": vars(config),
            "results": [
                r.to_json() | {"ratio_to_floor": report.ratio_to_floor(results, r)} for r in results
            ],
            "fastest": report.leaders(results),
            "goals": report.goal_rows(results),
        }
        if figures:
            doc["channel"] = {
                "figures": [dataclasses.asdict(f) | {"median": f.median} for f in figures],
                "goals": channel.goals(figures),
            }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    if args.json != "-":
        print(heading)
        if results:
            print(report.table(results, dev=args.dev))
        if figures:
            print(channel.table(figures, dev=args.dev))
    if args.plot:
        report.plot(results, args.plot, heading, dev=args.dev)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0
