"""Measure, on the running kernel, what each MaskFD backing can show.

``python -m eventfd_ext.fidelity`` prints the fidelity table as markdown:
for each backing and event bit, whether a write of that bit alone shows it,
the extra bits the fd shows beside it, whether writing 0 afterwards takes it
away again (reversible), and the syscalls a set and a clear cost (counted by
the shim, after a warm-up cycle).  A second table counts, of the 32 possible
masks, how many a fresh MaskFD shows exactly and how many it shows with
only extra bits.  Every number comes from poll(2) on a real fd.
"""

from __future__ import annotations

import select
import sys
from typing import NamedTuple

from ._backings import BACKINGS, Backing
from ._constants import EFD_MASK_EVENTS
from ._maskabi import event_names
from ._maskfd import MaskFD

__all__ = ["Row", "measure", "measure_combinations", "markdown", "main"]

EVENTS = (select.POLLIN, select.POLLPRI, select.POLLOUT, select.POLLERR, select.POLLHUP)


class Row(NamedTuple):
    """What one backing does with one event bit."""

    backing: Backing
    event: int
    shown: bool
    extra: int  # bits shown beside the event when it alone is written
    reversible: bool  # writing 0 afterwards takes the event away
    set_syscalls: int | None  # None: cannot be shown
    clear_syscalls: int | None  # None: cannot be cleared
    note: str  # why not, when the backing refuses; "once: ..." if not repeatable


def revents(mask: MaskFD) -> int:
    """What poll(2) reports on *mask* now (asking for every bit)."""
    poller = select.poll()
    poller.register(mask.fileno(), EFD_MASK_EVENTS)
    ready = poller.poll(0)
    return ready[0][1] & EFD_MASK_EVENTS if ready else 0


def _counted(mask: MaskFD, events: int) -> int:
    before = mask.syscalls
    mask.write(events)
    return mask.syscalls - before


def measure(backing: Backing, event: int) -> Row:
    """Measure one row on fresh MaskFDs.

    OUT is special: a fresh fd shows it, so "set" means a write that
    leaves it shown after a write that cleared it.
    """
    # The reference state: every other bit off (OUT on for the OUT row, as
    # "showing OUT" is its set direction).
    with MaskFD(backing=backing) as mask:
        try:
            mask.write(0)
            mask.write(event)
        except OSError as exc:
            return Row(backing, event, False, 0, False, None, None, exc.strerror or "")
        shown_bits = revents(mask)
        shown = shown_bits & event == event
        extra = shown_bits & ~event
        try:
            mask.write(0)
        except OSError as exc:
            return Row(backing, event, shown, extra, False, None, None, exc.strerror or "")
        reversible = not revents(mask) & event
    if not reversible:
        return Row(backing, event, shown, extra, False, None, None, "")
    with MaskFD(backing=backing) as mask:
        mask.write(0)
        set_cost = _counted(mask, event)
        clear_cost = _counted(mask, 0)
        try:  # steady state: a second cycle (the first fill may cost more)
            set_cost = _counted(mask, event)
            clear_cost = _counted(mask, 0)
        except OSError as exc:
            note = f"once: {exc.strerror}"
            return Row(backing, event, shown, extra, True, set_cost, clear_cost, note)
    return Row(backing, event, shown, extra, reversible, set_cost, clear_cost, "")


def measure_combinations(backing: Backing) -> tuple[int, int]:
    """Of the 32 masks, how many a fresh MaskFD shows (exactly, at least)."""
    exact = at_least = 0
    for events in range(EFD_MASK_EVENTS + 1):
        with MaskFD(backing=backing) as mask:
            try:
                mask.write(events)
            except OSError:
                continue
            shown = revents(mask)
        at_least += shown & events == events
        exact += shown == events
    return exact, at_least


def _short(events: int) -> str:
    """``"IN, OUT"``: no ``|``, which would split a markdown table cell."""
    return ", ".join(name[4:] for name in event_names(events).split("|"))


def _cell(row: Row) -> str:
    if not row.shown:
        return "no"
    extra = f" + {_short(row.extra)}" if row.extra else ""
    if row.reversible:
        costs = f"{row.set_syscalls}/{row.clear_syscalls}"
        once = " once" if row.note else ""
        return f"yes{extra}, reversible{once} ({costs})"
    return f"yes{extra}, irreversible"


def markdown() -> str:
    """The fidelity tables for every backing, measured now, as markdown."""
    lines = [
        "| event | " + " | ".join(f"`{b}`" for b in BACKINGS) + " |",
        "|---|" + "---|" * len(BACKINGS),
    ]
    for event in EVENTS:
        label = _short(event)
        cells = [_cell(measure(b, event)) for b in BACKINGS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| backing | masks shown exactly (of 32) | masks shown, extra bits allowed |")
    lines.append("|---|---|---|")
    for b in BACKINGS:
        exact, at_least = measure_combinations(b)
        lines.append(f"| `{b}` | {exact} | {at_least} |")
    return "\n".join(lines)


def main() -> int:
    """Print the tables, with the kernel they were measured on."""
    import platform

    print(
        f"Measured on Linux {platform.release()} ({platform.machine()}), "
        f"Python {platform.python_version()}."
    )
    print(
        "Cells: is the bit shown when written alone (for OUT: shown again "
        "after a write that cleared it); + the extra bits shown beside it; "
        "does writing 0 take it away again (reversible), with the syscalls "
        "a set / a clear costs, counted by the shim.\n"
    )
    print(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
