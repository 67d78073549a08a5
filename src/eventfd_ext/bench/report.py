"""Showing the results: the table, the goals, the JSON document and the plot."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .results import Result

__all__ = ["GOALS", "Goal", "goal_rows", "plot", "ratio_to_floor", "table", "which_one"]


@dataclass(frozen=True)
class Goal:
    """A ratio of two medians of one run, and the most it may be."""

    text: str
    group: str
    case: str
    baseline: str
    limit: float
    #: Placement prefix the goal is checked on (every one that matches).
    placement: str = ""
    #: The same comparison one layer down, measured in the same run:
    #: (case, baseline, what it shows).  A goal whose bound is above its
    #: limit is out of reach at this layer.
    bound: tuple[str, str, str] | None = None


# The layer below the wrappers: the bare cffi calls against os's C functions.
_BARE_SHIM = (
    "shim lib.efx_signal/take",
    "os.eventfd_write/read",
    "the bare cffi calls against os's C functions",
)

# EventFD's own cffi calls (through its lifecycle handle) against os's.
_OWNER_SHIM = (
    "owner shim efx_efd_signal/take",
    "os.eventfd_write/read",
    "EventFD's cffi calls (lifecycle handle, RWF_NOWAIT read) against os's C functions",
)

# The Doorbell's loops in C against the eventfd's.
_BELL_IN_C = ("C doorbell (floor)", "C eventfd (floor)", "the same loops in C")
# EventFD's spinning read (efx_spin_take) in C against the plain blocking read.
_SPIN_IN_C = ("C eventfd spin=50us (floor)", "C eventfd (floor)", "the same loops in C")

#: The project's performance goals.  The per-call goals compare each wrapper
#: with the least any Python function around the same cffi calls costs (a
#: do-nothing def): what the wrapper's own work adds.  None compares with
#: os's C functions: the do-nothing def alone costs more than such a goal
#: could allow (docs/bench.md).
GOALS = [
    Goal(
        "drop-in pair vs do-nothing defs around the shim",
        "per-call",
        "eventfd_ext drop-in",
        "shim in do-nothing defs",
        1.10,
        bound=_BARE_SHIM,
    ),
    Goal(
        "EventFD pair vs do-nothing defs around its shim calls",
        "per-call",
        "EventFD.write/read",
        "owner shim in do-nothing defs",
        1.10,
        bound=_OWNER_SHIM,
    ),
    Goal(
        "EventFD vs pipe, ping-pong",
        "ping-pong",
        "EventFD.write/read",
        "pipe os.write/read",
        0.90,
        "threads",
        bound=("C eventfd (floor)", "C pipe (floor)", "the same loops in C"),
    ),
    Goal(
        "EventFD vs C eventfd, ping-pong",
        "ping-pong",
        "EventFD.write/read",
        "C eventfd (floor)",
        1.15,
        "threads",
        bound=(
            "shim in do-nothing defs",
            "C eventfd (floor)",
            "a do-nothing Python def around the shim",
        ),
    ),
    # The Doorbell: below the syscall floor where nobody sleeps
    # and across CPUs, and no dearer than EventFD where it cannot help.
    Goal(
        "Doorbell pair (nobody asleep) vs os pair",
        "per-call",
        "Doorbell.write/read",
        "os.eventfd_write/read",
        0.75,
        bound=_BELL_IN_C,
    ),
    Goal(
        "Doorbell vs EventFD, ping-pong",
        "ping-pong",
        "Doorbell.write/read",
        "EventFD.write/read",
        1 / 20,
        "processes, across CPUs",
        bound=_BELL_IN_C,
    ),
    Goal(
        "Doorbell vs EventFD, ping-pong",
        "ping-pong",
        "Doorbell.write/read",
        "EventFD.write/read",
        1.10,
        "processes, same CPU",
        bound=_BELL_IN_C,
    ),
    Goal(
        "Doorbell vs EventFD, ping-pong",
        "ping-pong",
        "Doorbell.write/read",
        "EventFD.write/read",
        1.10,
        "threads",
        bound=_BELL_IN_C,
    ),
    Goal(
        "EventFD spin=50us vs EventFD, ping-pong",
        "ping-pong",
        "EventFD spin=50us",
        "EventFD.write/read",
        1 / 10,
        "processes, across CPUs",
        bound=_SPIN_IN_C,
    ),
    Goal(
        "EventFD spin=50us vs EventFD, ping-pong",
        "ping-pong",
        "EventFD spin=50us",
        "EventFD.write/read",
        1.25,
        "processes, same CPU",
        bound=_SPIN_IN_C,
    ),
    Goal(
        "MaskFD IN set+clear vs socketpair send+recv",
        "per-call",
        "MaskFD IN set/clear",
        "socketpair send/recv",
        1.10,
    ),
]


def _find(results: Iterable[Result], group: str, case: str, placement: str) -> Result | None:
    for r in results:
        if r.group == group and r.case == case and r.placement == placement:
            return r
    return None


def ratio_to_floor(results: Sequence[Result], r: Result) -> float | None:
    """The median of *r* over the median of its C floor, if measured."""
    if r.floor is None:
        return None
    floor = _find(results, r.group, r.floor, r.placement)
    return None if floor is None else r.median / floor.median


def goal_rows(results: Sequence[Result]) -> list[dict[str, Any]]:
    """Each goal, on each placement it applies to, with its measured ratio."""
    rows = []
    for goal in GOALS:
        for r in results:
            if r.group != goal.group or r.case != goal.case:
                continue
            if not r.placement.startswith(goal.placement):
                continue
            base = _find(results, goal.group, goal.baseline, r.placement)
            if base is None:
                continue
            ratio = r.median / base.median
            bound: dict[str, Any] | None = None
            if goal.bound is not None:
                case, baseline, shows = goal.bound
                lo = _find(results, goal.group, case, r.placement)
                lo_base = _find(results, goal.group, baseline, r.placement)
                if lo is not None and lo_base is not None:
                    bound = {
                        "case": case,
                        "baseline": baseline,
                        "shows": shows,
                        "ratio": lo.median / lo_base.median,
                    }
            rows.append(
                {
                    "goal": goal.text,
                    "placement": r.placement,
                    "case": goal.case,
                    "baseline": goal.baseline,
                    "ratio": ratio,
                    "limit": goal.limit,
                    "met": ratio <= goal.limit,
                    "bound": bound,
                }
            )
    return rows


def _scale(r: Result) -> tuple[float, str]:
    if r.unit == "s":
        return (1e9, "ns") if r.group == "per-call" else (1e6, "us")
    if r.unit == "signals/s":
        return 1e-3, "k/s"
    return 1.0, ""


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}" if x < 10 else f"{x:.1f}"


def _title(r: Result, reps: int) -> str:
    _, unit = _scale(r)
    what = {
        "per-call": "Per-call cost: write then read on one fd",
        "ping-pong": f"Ping-pong round trip, {r.placement}",
        "throughput": f"Throughput, one producer to one consumer, {r.placement}",
        "coalescing": f"Signals taken per consumer read, {r.placement}",
    }[r.group]
    unit_text = {
        "ns": "ns per pair",
        "us": "us per round trip",
        "k/s": "thousand signals/s",
    }.get(unit, "signals per read")
    return f"{what} ({unit_text}; median and quartiles of {reps} repetitions)"


def table(results: Sequence[Result]) -> str:
    """The results as readable text tables, one per group and placement."""
    lines: list[str] = []
    sections: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        sections.setdefault((r.group, r.placement), []).append(r)
    width = max(len(r.case) for r in results) + 2
    for rows in sections.values():
        first = rows[0]
        lines.append("")
        lines.append(_title(first, len(first.samples)))
        has_floor = any(r.floor for r in rows)
        head = f"  {'':{width}}{'median':>9}  {'quartiles':>17}"
        if has_floor:
            head += f"  {'x C floor':>9}"
        lines.append(head)
        for r in rows:
            scale, _ = _scale(r)
            q1, q3 = r.quartiles
            spread = f"{_num(q1 * scale)} - {_num(q3 * scale)}"
            line = f"  {r.case:{width}}{_num(r.median * scale):>9}  {spread:>17}"
            ratio = ratio_to_floor(results, r)
            if ratio is not None:
                line += f"  {ratio:>8.2f}x"
            elif r.is_floor:
                line += f"  {'(floor)':>9}"
            lines.append(line.rstrip())
    goals = goal_rows(results)
    if goals:
        lines.append("")
        lines.append("Goals (ratios of medians measured side by side in this run)")
        gw = max(
            len(f"{g['goal']} ({g['placement']})" if g["placement"] else g["goal"]) for g in goals
        )
        for g in goals:
            name = f"{g['goal']} ({g['placement']})" if g["placement"] else g["goal"]
            verdict = "met" if g["met"] else "NOT met"
            line = f"  {name:{gw}}  {g['ratio']:.3f}x  (goal <= {g['limit']:.2f}x)  {verdict:7}"
            if g["bound"] is not None:
                line += f"  bound {g['bound']['ratio']:.3f}x: {g['bound']['shows']}"
            lines.append(line.rstrip())
        lines.append("  (bound: the same ratio one layer down, measured in this run)")
    chooser = which_one(results)
    if chooser:
        lines += ["", chooser]
    return "\n".join(lines).lstrip("\n")


#: The mechanisms of the README's "which one to use" table, and its columns:
#: (group, placement, heading, scale to the unit in the heading).
WHICH_ONE_CASES = (
    "EventFD.write/read",
    "Doorbell.write/read",
    "MaskFD IN set/clear",
    "os.eventfd_write/read",
    "pipe os.write/read",
)
WHICH_ONE_COLUMNS = (
    ("per-call", "", "pair ns", 1e9),
    ("ping-pong", "processes, across CPUs", "procs 2 CPUs us", 1e6),
    ("ping-pong", "processes, same CPU", "procs 1 CPU us", 1e6),
    ("ping-pong", "threads, across CPUs", "threads 2 CPUs us", 1e6),
)


def which_one(results: Sequence[Result]) -> str:
    """The figures of the README's "which one to use" table, from this run:
    the per-call pair and the round trips, medians ("-": not measured)."""
    columns = [
        c
        for c in WHICH_ONE_COLUMNS
        if any(r.group == c[0] and r.placement == c[1] for r in results)
    ]
    if not columns:
        return ""
    width = max(map(len, WHICH_ONE_CASES)) + 2
    lines = ["Which one to use (medians of this run; the README's table)"]
    lines.append(f"  {'':{width}}" + "".join(f"{c[2]:>19}" for c in columns))
    for case in WHICH_ONE_CASES:
        cells = []
        for group, placement, _, scale in columns:
            r = _find(results, group, case, placement)
            cells.append(f"{_num(r.median * scale):>19}" if r else f"{'-':>19}")
        lines.append(f"  {case:{width}}" + "".join(cells))
    return "\n".join(lines)


def plot(results: Sequence[Result], path: str, title: str) -> None:
    """Horizontal bar charts of the medians with quartile whiskers."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'eventfd_ext[plot]'") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    sections: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        if r.group != "coalescing":
            sections.setdefault((r.group, r.placement), []).append(r)
    n = len(sections)
    cols = 2 if n > 1 else 1
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(7 * cols, 0.45 * 9 * rows_n + 1), squeeze=False)
    # The grid may have one cell more than there are sections.
    for ax, rows in zip(axes.flat, sections.values(), strict=False):
        scale, unit = _scale(rows[0])
        medians = [r.median * scale for r in rows]
        lows = [m - r.quartiles[0] * scale for m, r in zip(medians, rows, strict=True)]
        highs = [r.quartiles[1] * scale - m for m, r in zip(medians, rows, strict=True)]
        colours = [
            "0.55"
            if r.is_floor
            else "0.8"
            if r.reference
            else "tab:orange"
            if "pipe" in r.case or "socket" in r.case
            else "tab:blue"
            for r in rows
        ]
        y = range(len(rows))
        ax.barh(y, medians, xerr=[lows, highs], color=colours, capsize=3)
        ax.set_yticks(list(y), [r.case for r in rows], fontsize=8)
        ax.invert_yaxis()
        first = rows[0]
        name = first.group + (f", {first.placement}" if first.placement else "")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(
            unit + (" (higher is better)" if first.higher_is_better else " (lower is better)")
        )
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
