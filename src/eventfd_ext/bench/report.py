"""Showing the results: the tables, the goals, the JSON document and the plot.

What a user reads by default is the mechanisms' rows, each section's fastest
and the "which one to use" block; ``dev=True`` adds the C floors, the rows
that split a cost into its layers, the ratios to the floors and the goals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .results import NOISY, Kind, Result

__all__ = [
    "GOALS",
    "KIND_STYLE",
    "SECTIONS",
    "WHICH_ONE_CASES",
    "WHICH_ONE_COLUMNS",
    "WINNER",
    "Goal",
    "Section",
    "goal_rows",
    "leader",
    "leaders",
    "plot",
    "ratio_to_floor",
    "table",
    "which_one",
    "which_one_cells",
]


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


@dataclass(frozen=True)
class Section:
    """How the results of one group are shown."""

    #: The table's title; "{placement}" is replaced by the results' placement.
    title: str
    #: The factor to the unit shown, the unit's short name (cells, the plot's
    #: axis) and what it measures (the title).
    scale: float
    unit: str
    per: str
    #: The summary line's words: who leads ("fastest") and by how much
    #: ("2.00x faster than").
    best: str
    ahead: str
    #: Whether the plot draws it.
    plotted: bool = True


#: Every group a run can give, in the order the tables show them: a new
#: measurement needs one entry here (and its runner in cli.MEASUREMENTS).
SECTIONS = {
    "per-call": Section(
        "Per-call cost: write then read on one fd", 1e9, "ns", "ns per pair", "fastest", "faster"
    ),
    "ping-pong": Section(
        "Ping-pong round trip, {placement}", 1e6, "us", "us per round trip", "fastest", "faster"
    ),
    "throughput": Section(
        "Throughput, one producer to one consumer, {placement}",
        1e-3,
        "k/s",
        "thousand signals/s",
        "fastest",
        "faster",
    ),
    "coalescing": Section(
        "Signals taken per consumer read, {placement}",
        1.0,
        "",
        "signals per read",
        "most signals per read",
        "more per read",
        plotted=False,
    ),
}


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}" if x < 10 else f"{x:.1f}"


def _figure(r: Result) -> str:
    """The median in the section's unit, with the unit."""
    section = SECTIONS[r.group]
    return f"{_num(r.median * section.scale)} {section.unit}".rstrip()


def _sections(results: Iterable[Result], dev: bool) -> list[list[Result]]:
    """The results shown (every one with *dev*, else no dev-only row), by
    group and placement, in the order of SECTIONS then of the run."""
    sections: dict[tuple[str, str], list[Result]] = {}
    for r in sorted(results, key=lambda r: list(SECTIONS).index(r.group)):
        if dev or not r.dev_only:
            sections.setdefault((r.group, r.placement), []).append(r)
    return list(sections.values())


def leader(rows: Sequence[Result]) -> dict[str, Any] | None:
    """The best of the ranked mechanisms of one section and the next best:
    the ratio of their medians (>= 1) and whether their quartiles overlap
    (the lead is then within the noise).  None under two ranked rows."""
    ranked = [r for r in rows if r.ranked and not r.dev_only]
    if len(ranked) < 2:
        return None
    higher = ranked[0].higher_is_better
    best, second = sorted(ranked, key=lambda r: r.median, reverse=higher)[:2]
    (b1, b3), (s1, s3) = best.quartiles, second.quartiles
    return {
        "group": best.group,
        "placement": best.placement,
        "case": best.case,
        "next": second.case,
        "ratio": best.median / second.median if higher else second.median / best.median,
        "within_noise": b1 <= s3 if higher else b3 >= s1,
    }


def leaders(results: Sequence[Result]) -> list[dict[str, Any]]:
    """leader() of every section of a run."""
    found = (leader(rows) for rows in _sections(results, dev=False))
    return [lead for lead in found if lead is not None]


def _leader_line(rows: Sequence[Result]) -> str:
    lead = leader(rows)
    if lead is None:
        return ""
    section = SECTIONS[lead["group"]]
    best, second = (next(r for r in rows if r.case == lead[key]) for key in ("case", "next"))
    note = "; no fd, a reference point" if best.reference else ""
    line = (
        f"  {section.best.capitalize()}: {best.case} ({_figure(best)}{note}), "
        f"{lead['ratio']:.2f}x {section.ahead} than the next, {second.case} ({_figure(second)})"
    )
    if lead["within_noise"]:
        line += "; within the noise (their quartiles overlap)"
    return line


def table(results: Sequence[Result], dev: bool = False) -> str:
    """The results as readable text tables, one per group and placement,
    each with its fastest mechanism, then the "which one to use" block.
    *dev* adds the C floors, the diagnostic rows, each row's ratio to its C
    floor and the goals."""
    lines: list[str] = []
    sections = _sections(results, dev)
    if not sections:
        return ""
    width = max(len(r.case) for rows in sections for r in rows) + 2
    for rows in sections:
        first = rows[0]
        section = SECTIONS[first.group]
        lines.append("")
        title = section.title.format(placement=first.placement)
        reps = len(first.samples)
        lines.append(f"{title} ({section.per}; median and quartiles of {reps} repetitions)")
        show_floor = dev and any(r.floor for r in rows)
        head = f"  {'':{width}}{'median':>9}  {'quartiles':>17}"
        if show_floor:
            head += f"  {'x C floor':>9}"
        lines.append(head)
        for r in rows:
            q1, q3 = r.quartiles
            spread = f"{_num(q1 * section.scale)} - {_num(q3 * section.scale)}"
            line = f"  {r.case:{width}}{_num(r.median * section.scale):>9}  {spread:>17}"
            if show_floor:
                ratio = ratio_to_floor(results, r)
                if ratio is not None:
                    line += f"  {ratio:>8.2f}x"
                elif r.is_floor:
                    line += f"  {'(floor)':>9}"
            lines.append(line.rstrip())
        lead = _leader_line(rows)
        if lead:
            lines.append(lead)
    if dev:
        lines += _goals_block(results)
    chooser = which_one(results)
    if chooser:
        lines += ["", chooser]
    return "\n".join(lines).lstrip("\n")


def _goals_block(results: Sequence[Result]) -> list[str]:
    goals = goal_rows(results)
    if not goals:
        return []
    lines = ["", "Goals (ratios of medians measured side by side in this run)"]
    names = [f"{g['goal']} ({g['placement']})" if g["placement"] else g["goal"] for g in goals]
    gw = max(map(len, names))
    for name, g in zip(names, goals, strict=True):
        verdict = "met" if g["met"] else "NOT met"
        line = f"  {name:{gw}}  {g['ratio']:.3f}x  (goal <= {g['limit']:.2f}x)  {verdict:7}"
        if g["bound"] is not None:
            line += f"  bound {g['bound']['ratio']:.3f}x: {g['bound']['shows']}"
        lines.append(line.rstrip())
    lines.append("  (bound: the same ratio one layer down, measured in this run)")
    return lines


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
#: Marks the fastest figure of each column of the "which one to use" block.
WINNER = "*"


#: One column of the "which one to use" block: its heading, and a cell per
#: case of WHICH_ONE_CASES: (the median with its mark, the spread or "").
Column = tuple[str, list[tuple[str, str]]]


def which_one_cells(results: Sequence[Result]) -> list[Column]:
    """The columns of the "which one to use" block that this run measured.
    A cell is the median ("-": not measured) marked WINNER on the fastest
    of its column (" " otherwise), and the quartiles of a noisy figure."""
    columns = []
    for group, placement, heading, scale in WHICH_ONE_COLUMNS:
        found = [_find(results, group, case, placement) for case in WHICH_ONE_CASES]
        measured = [r for r in found if r is not None]
        if not measured:
            continue
        fastest = min(measured, key=lambda r: r.median)
        cells = []
        for r in found:
            if r is None:
                cells.append(("- ", ""))
                continue
            q1, q3 = r.quartiles
            mark = WINNER if r is fastest else " "
            spread = f"({_num(q1 * scale)}-{_num(q3 * scale)})" if r.noisy else ""
            cells.append((_num(r.median * scale) + mark, spread))
        columns.append((heading, cells))
    return columns


def which_one(results: Sequence[Result]) -> str:
    """The "which one to use" block from this run: the per-call pair and
    the round trips of the README's mechanisms (medians)."""
    columns = which_one_cells(results)
    if not columns:
        return ""
    width = max(map(len, WHICH_ONE_CASES)) + 2
    heads, rows = [], [f"  {case:{width}}" for case in WHICH_ONE_CASES]
    for heading, cells in columns:
        # A heading ends above the figures' last digit (a mark or a space
        # follows it); the spreads, if any, hang to the right of the figures.
        figure_w = max(len(heading) + 1, *(len(figure) for figure, _ in cells))
        spread_w = max(len(spread) for _, spread in cells)
        tail = " " * (spread_w + 1) if spread_w else ""
        heads.append(f"  {heading + ' ':>{figure_w}}{tail}")
        for i, (figure, spread) in enumerate(cells):
            rows[i] += f"  {figure:>{figure_w}}" + (f" {spread:{spread_w}}" if tail else "")
    lines = ["Which one to use (medians of this run; the README's table)"]
    lines.append((f"  {'':{width}}" + "".join(heads)).rstrip())
    lines += [row.rstrip() for row in rows]
    legend = f"  {WINNER} the fastest of its column"
    if any(spread for _, cells in columns for _, spread in cells):
        legend += f"; (q1-q3): the quartiles of a noisy figure (q3 > {NOISY}x q1)"
    lines.append(legend)
    return "\n".join(lines)


#: The plot's colour and legend entry for each kind of row.
KIND_STYLE: dict[Kind, tuple[str, str]] = {
    "eventfd_ext": ("tab:blue", "eventfd_ext"),
    "os.eventfd": ("tab:green", "os.eventfd (CPython)"),
    "alternative": ("tab:orange", "pipe, socketpair"),
    "reference": ("0.75", "no fd (reference)"),
    "diagnostic": ("tab:purple", "layers below the API (--dev)"),
    "floor": ("0.4", "the same loop in C (--dev)"),
}


def plot(results: Sequence[Result], path: str, title: str, dev: bool = False) -> None:
    """Horizontal bar charts of the medians with quartile whiskers, the rows
    the table shows, coloured by kind, with a legend."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'eventfd_ext[plot]'") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    sections = [rows for rows in _sections(results, dev) if SECTIONS[rows[0].group].plotted]
    n = len(sections)
    cols = 2 if n > 1 else 1
    rows_n = (n + cols - 1) // cols
    tallest = max((len(rows) for rows in sections), default=1)
    fig, axes = plt.subplots(
        rows_n, cols, figsize=(7 * cols, 0.28 * tallest * rows_n + 2), squeeze=False
    )
    # The grid may have one cell more than there are sections.
    for ax, rows in zip(axes.flat, sections, strict=False):
        section = SECTIONS[rows[0].group]
        medians = [r.median * section.scale for r in rows]
        lows = [m - r.quartiles[0] * section.scale for m, r in zip(medians, rows, strict=True)]
        highs = [r.quartiles[1] * section.scale - m for m, r in zip(medians, rows, strict=True)]
        colours = [KIND_STYLE[r.kind][0] for r in rows]
        y = range(len(rows))
        ax.barh(y, medians, xerr=[lows, highs], color=colours, capsize=3)
        ax.set_yticks(list(y), [r.case for r in rows], fontsize=8)
        ax.invert_yaxis()
        first = rows[0]
        name = first.group + (f", {first.placement}" if first.placement else "")
        ax.set_title(name, fontsize=10)
        better = "higher" if first.higher_is_better else "lower"
        ax.set_xlabel(f"{section.unit} (median and quartiles; {better} is better)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    kinds = [k for k in KIND_STYLE if any(r.kind == k for rows in sections for r in rows)]
    handles = [Patch(color=KIND_STYLE[k][0], label=KIND_STYLE[k][1]) for k in kinds]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
