"""What poll, select, epoll (level and edge) and selectors show on a MaskFD.

The never-miss rule: every bit of the last write is shown, by every API, after
every transition; IN and OUT exactly.  And the fidelity table of each backing
(docs/maskfd.md), row by row, against the running kernel.
"""

from __future__ import annotations

import errno
import itertools
import pathlib
import select
from collections.abc import Callable

import pytest

from eventfd_ext import MaskFD, fidelity
from eventfd_ext._backings import Backing
from eventfd_ext.fidelity import Row, measure, measure_combinations
from maskfd_helpers import (
    ALL,
    ERR,
    HUP,
    IN,
    OUT,
    PRI,
    assert_shows,
    by_poll,
    kernel_has_unix_oob,
)

HAS_OOB = kernel_has_unix_oob()
needs_oob = pytest.mark.skipif(
    not HAS_OOB, reason="AF_UNIX MSG_OOB needs Linux >= 5.15 with CONFIG_AF_UNIX_OOB"
)

# The reversible bits of each backing: every transition between every pair
# of their combinations is tested.
REVERSIBLE = {
    "stream": IN | OUT | (PRI if HAS_OOB else 0),
    "dgram": IN | OUT | ERR,
    "pipe": IN | HUP,
}


def combos(bits: int) -> list[int]:
    singles = [b for b in (IN, PRI, OUT, ERR, HUP) if bits & b]
    return [
        sum(chosen)
        for n in range(len(singles) + 1)
        for chosen in itertools.combinations(singles, n)
    ]


@pytest.mark.parametrize("backing", ["stream", "dgram"])
def test_in_out_all_four_combinations_and_every_transition(backing: Backing) -> None:
    """The heart of the feature, reversibly, in every order."""
    with MaskFD(backing=backing) as m:
        for first, second in itertools.product(combos(IN | OUT), repeat=2):
            m.write(first)
            assert_shows(m)
            m.write(second)
            assert_shows(m)
            m.write(first)  # and back again
            assert_shows(m)


@pytest.mark.parametrize("backing", ["stream", "dgram", "pipe"])
def test_every_transition_between_reversible_masks(backing: Backing) -> None:
    masks = combos(REVERSIBLE[backing])
    with MaskFD(backing=backing) as m:
        for first, second in itertools.product(masks, repeat=2):
            m.write(first, first)
            assert_shows(m)
            m.write(second, second)
            assert m.read() == (second, second)
            assert_shows(m)


@pytest.mark.parametrize("backing", ["stream", "dgram", "pipe"])
def test_every_mask_from_fresh_is_shown_or_refused_cleanly(backing: Backing) -> None:
    """All 32 masks, and from each accepted one all 32 writes: shown when
    accepted, refused with OSError and no change otherwise."""
    for first in range(ALL + 1):
        if first & PRI and not HAS_OOB:
            continue
        with MaskFD(backing=backing) as m:
            try:
                m.write(first, 1)
            except OSError as exc:
                assert exc.errno == errno.EOPNOTSUPP
                assert m.read() == (0, 0)
                continue
            assert_shows(m)
            for second in range(ALL + 1):
                before, shown = m.read(), by_poll(m.fileno())
                try:
                    m.write(second, 2)
                except OSError as exc:
                    assert exc.errno in (errno.EOPNOTSUPP, errno.ENOTRECOVERABLE)
                    assert str(exc)  # a reason, never silence
                    assert m.read() == before
                    assert by_poll(m.fileno()) == shown
                    continue
                assert m.read() == (second, 2)
                assert_shows(m)


@needs_oob
def test_pri_shows_with_in_and_clears_again() -> None:
    with MaskFD(OUT) as m:
        m.set(PRI)
        assert by_poll(m.fileno()) == IN | PRI | OUT  # IN: documented extra
        m.clear(PRI)
        assert by_poll(m.fileno()) == OUT
        m.write(IN | PRI)
        m.clear(PRI)
        assert by_poll(m.fileno()) == IN  # the asked IN survives PRI's clear


def test_pri_refused_clearly_without_kernel_support() -> None:
    if HAS_OOB:
        pytest.skip("the kernel supports AF_UNIX MSG_OOB; nothing to refuse")
    with MaskFD(IN) as m:
        with pytest.raises(OSError, match="POLLPRI") as info:
            m.set(PRI)
        assert info.value.errno == errno.EOPNOTSUPP
        assert m.read() == (IN, 0)


@pytest.mark.parametrize("backing", ["stream", "dgram"])
def test_hup_is_refused_to_clear_on_sockets(backing: Backing) -> None:
    with MaskFD(IN | OUT, 3, backing=backing) as m:
        m.set(HUP)
        assert_shows(m)
        calls: list[Callable[[], None]] = [
            lambda: m.clear(HUP),
            lambda: m.write(IN | OUT),
            lambda: m.write(0),
        ]
        for call in calls:
            with pytest.raises(OSError, match="POLLHUP") as info:
                call()
            assert info.value.errno == errno.ENOTRECOVERABLE
            assert m.read() == (IN | OUT | HUP, 3)
            assert by_poll(m.fileno()) & HUP
        m.write(IN | OUT | HUP, 4)  # keeping HUP is fine
        assert m.read() == (IN | OUT | HUP, 4)


def test_pipe_hup_and_in_are_reversible() -> None:
    with MaskFD(backing="pipe") as m:
        for events in (HUP, IN | HUP, IN, 0, HUP, 0, IN | HUP, HUP):
            m.write(events)
            assert by_poll(m.fileno()) == events  # exact


def test_pipe_never_shows_out() -> None:
    with MaskFD(IN, backing="pipe") as m:
        with pytest.raises(OSError, match="POLLOUT") as info:
            m.set(OUT)
        assert info.value.errno == errno.EOPNOTSUPP
        assert m.read() == (IN, 0)
        assert by_poll(m.fileno()) == IN


def test_dgram_err_is_reversible_without_hup() -> None:
    with MaskFD(IN, backing="dgram") as m:
        for _ in range(3):
            m.set(ERR)
            assert by_poll(m.fileno()) & (ERR | HUP | IN) == ERR | IN
            m.clear(ERR)
            assert by_poll(m.fileno()) == IN
        m.write(ERR)
        m.write(IN | ERR)  # IN set while ERR shows
        assert by_poll(m.fileno()) & (IN | ERR) == IN | ERR
        m.write(ERR)  # IN cleared while ERR shows: ERR must survive
        assert by_poll(m.fileno()) & (IN | ERR) == ERR


def test_stream_err_comes_once_with_hup() -> None:
    with MaskFD(IN) as m:
        m.set(ERR)
        assert by_poll(m.fileno()) & (ERR | HUP | IN) == ERR | HUP | IN
        m.clear(ERR)
        assert not by_poll(m.fileno()) & ERR
        with pytest.raises(OSError, match="POLLERR") as info:
            m.set(ERR)
        assert info.value.errno == errno.EOPNOTSUPP
        assert m.read().events == IN


# -- edge-triggered epoll ---------------------------------------------------


def edges(ep: select.epoll) -> int:
    ready = ep.poll(0)
    return ready[0][1] if ready else 0


@pytest.mark.parametrize("backing", ["stream", "dgram"])
def test_edge_triggered_epoll_edges(backing: Backing) -> None:
    """An edge is a bit going from clear to set; clearing, and writes that
    change no bit, make none (the patch woke waiters on every write)."""
    with MaskFD(backing=backing) as m, select.epoll() as ep:
        ep.register(m.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLET)
        assert edges(ep) == 0  # fresh: no events
        for _ in range(3):
            m.set(IN)
            assert edges(ep) & IN
            assert edges(ep) == 0  # consumed
            m.write(IN, 5)  # no bit changes: no edge
            assert edges(ep) == 0
            m.clear(IN)
            assert edges(ep) == 0  # clearing is never an edge
            m.set(OUT)
            assert edges(ep) & OUT
            m.set(IN)  # IN rises while OUT stays: an edge reporting both
            assert edges(ep) == IN | OUT
            m.write(0)
            assert edges(ep) == 0


def test_edge_triggered_epoll_pipe() -> None:
    with MaskFD(backing="pipe") as m, select.epoll() as ep:
        ep.register(m.fileno(), select.EPOLLIN | select.EPOLLET)
        for _ in range(3):
            m.set(IN)
            assert edges(ep) == IN
            m.set(IN)
            assert edges(ep) == 0
            m.clear(IN)
            assert edges(ep) == 0
            m.set(HUP)
            assert edges(ep) & HUP
            m.clear(HUP)
            assert edges(ep) == 0


# -- the fidelity table, row by row -----------------------------------------

# (shown, extra, reversible, set syscalls, clear syscalls, repeatable)
FIDELITY = {
    ("stream", IN): (True, 0, True, 1, 1, True),
    ("stream", PRI): (True, IN, True, 1, 2, True),
    ("stream", OUT): (True, 0, True, 1, 1, True),
    ("stream", ERR): (True, IN | OUT | HUP, True, 3, 1, False),
    ("stream", HUP): (True, IN, False, None, None, True),
    ("dgram", IN): (True, 0, True, 1, 1, True),
    ("dgram", PRI): (False, 0, False, None, None, True),
    ("dgram", OUT): (True, 0, True, 1, 1, True),
    ("dgram", ERR): (True, OUT, True, 2, 3, True),
    ("dgram", HUP): (True, IN, False, None, None, True),
    ("pipe", IN): (True, 0, True, 1, 1, True),
    ("pipe", PRI): (False, 0, False, None, None, True),
    ("pipe", OUT): (False, 0, False, None, None, True),
    ("pipe", ERR): (False, 0, False, None, None, True),
    ("pipe", HUP): (True, 0, True, 2, 1, True),
}


@pytest.mark.parametrize(("backing", "event"), sorted(FIDELITY))
def test_fidelity_row(backing: Backing, event: int) -> None:
    if (backing, event) == ("stream", PRI) and not HAS_OOB:
        pytest.skip("AF_UNIX MSG_OOB needs Linux >= 5.15 with CONFIG_AF_UNIX_OOB")
    row: Row = measure(backing, event)
    shown, extra, reversible, set_cost, clear_cost, repeatable = FIDELITY[backing, event]
    assert (row.shown, row.extra, row.reversible) == (shown, extra, reversible), row
    assert (row.set_syscalls, row.clear_syscalls) == (set_cost, clear_cost), row
    assert (not row.note.startswith("once")) == repeatable, row


@pytest.mark.parametrize(
    ("backing", "exact", "at_least"),
    [
        ("stream", 12, 32),
        ("dgram", 9, 16),
        ("pipe", 4, 4),
    ],
)
def test_fidelity_combinations(backing: Backing, exact: int, at_least: int) -> None:
    if backing == "stream" and not HAS_OOB:
        pytest.skip("the stream counts include PRI (AF_UNIX MSG_OOB)")
    assert measure_combinations(backing) == (exact, at_least)


def test_fidelity_script_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    from eventfd_ext.fidelity import main

    assert main() == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0] == "| event | `stream` | `dgram` | `pipe` |"
    assert [row.split(" | ")[0] for row in rows[1:6]] == [
        "| IN",
        "| PRI",
        "| OUT",
        "| ERR",
        "| HUP",
    ]
    assert all(row.count("|") == 5 for row in rows[:6])  # no stray | in a cell
    assert len(rows) == 10  # 1 + 5 event rows, 1 + 3 backing rows


# -- the tables in the docs are the measured ones --------------------------------

DOCS = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("doc", ["docs/maskfd.md"])
def test_fidelity_tables_in_the_docs_are_what_fidelity_measures(doc: str) -> None:
    """Every data row `python -m eventfd_ext.fidelity` prints stands, word
    for word, in the document (headers may differ: the README's says which
    backing is the default)."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    rows = [
        line
        for line in fidelity.markdown().splitlines()
        if line.startswith("| ") and not line.startswith(("| event", "| backing"))
    ]
    assert len(rows) == 8
    missing = [row for row in rows if row not in text.splitlines()]
    assert not missing, f"{doc} does not show these measured rows: {missing}"
