"""Per-call cost of every mechanism under pyperf, for a second opinion.

``python -m eventfd_ext.bench`` measures everything side by side in one
process; this runs the same per-call statements (from
``eventfd_ext.bench.mechanisms``) the pyperf way: calibrated loops, warmups
and values from several fresh worker processes, with pyperf's own checks of
the system (``python -m pyperf system tune`` first, for a quiet machine).

    pip install 'eventfd_ext[dev-bench]'
    python benchmarks/pyperf_percall.py -o percall.json
    python -m pyperf compare_to --table percall.json other.json

Workers re-run this script, so every mechanism's channel is opened in the
worker that times it.
"""

from __future__ import annotations

import timeit

import pyperf

from eventfd_ext.bench.mechanisms import Mechanism, catalogue


def time_calls(mech: Mechanism) -> object:
    """A pyperf time function: *loops* rounds of the mechanism's statement."""
    assert mech.call is not None
    call: str = mech.call

    def run(loops: int) -> float:
        channel = mech.open()
        try:
            return timeit.Timer(call, globals=channel.names).timeit(loops)
        finally:
            channel.close()

    return run


def main() -> None:
    runner = pyperf.Runner()
    runner.metadata["description"] = "write then read on one channel, per pair"
    for mech in catalogue():
        if mech.call is not None:
            runner.bench_time_func(mech.name, time_calls(mech))


if __name__ == "__main__":
    main()
