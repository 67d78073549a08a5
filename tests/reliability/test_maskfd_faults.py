"""MaskFD under bad input, fd exhaustion and many create/use/close cycles.

A MaskFD needs several fds (a memfd for the shared state, a socket pair or
a pipe); one that runs out half-way must close what it opened.
"""

from __future__ import annotations

import copy
import errno
import gc
import mmap
import os
import pickle
import select
import struct
import sys
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from _kernel import c_heap_in_use, fd_limit, open_fds, record, rss_bytes
from eventfd_ext import MaskFD, pack_mask, unpack_mask
from maskfd_helpers import ERR, HUP, IN, OUT, PRI

# -- bad input ---------------------------------------------------------------


class World:
    def __init__(self) -> None:
        self.m = MaskFD(IN | OUT, 7)  # stream
        self.pipe = MaskFD(IN, 9, backing="pipe")
        self.dgram = MaskFD(OUT, 11, backing="dgram")
        self.closed = MaskFD()
        self.closed.close()

    def close(self) -> None:
        for m in (self.m, self.pipe, self.dgram):
            m.close()


def _shown(m: MaskFD) -> int:
    p = select.poll()
    p.register(m, 0x1F)
    ready = p.poll(0)
    return ready[0][1] if ready else 0


def snapshot(w: World) -> tuple[object, ...]:
    return (
        w.m.read(),
        _shown(w.m),
        w.pipe.read(),
        _shown(w.pipe),
        w.dgram.read(),
        _shown(w.dgram),
        w.closed.closed,
        open_fds(),
    )


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
    finally:
        w.close()


Case = Callable[[World], object]
CASES: list[tuple[str, Case, type[BaseException], int | None]] = [
    ("MaskFD(-1)", lambda w: MaskFD(-1), ValueError, None),
    ("MaskFD(0x20)", lambda w: MaskFD(0x20), ValueError, None),
    ("MaskFD('1')", lambda w: MaskFD("1"), TypeError, None),  # type: ignore[arg-type]
    ("MaskFD(1.0)", lambda w: MaskFD(1.0), TypeError, None),  # type: ignore[arg-type]
    ("MaskFD(Decimal(1))", lambda w: MaskFD(Decimal(1)), TypeError, None),  # type: ignore[arg-type]
    ("MaskFD(0, -1)", lambda w: MaskFD(0, -1), ValueError, None),
    ("MaskFD(0, 2**64)", lambda w: MaskFD(0, 2**64), OverflowError, None),
    ("MaskFD(backing='tcp')", lambda w: MaskFD(backing="tcp"), ValueError, None),  # type: ignore[arg-type]
    ("MaskFD(backing=1)", lambda w: MaskFD(backing=1), TypeError, None),  # type: ignore[arg-type]
    ("MaskFD(uses=0x40)", lambda w: MaskFD(uses=0x40), ValueError, None),
    (
        "MaskFD(uses=0x40, backing='stream')",
        lambda w: MaskFD(uses=0x40, backing="stream"),
        ValueError,
        None,
    ),
    (
        "MaskFD(uses=1.5, backing='pipe')",
        lambda w: MaskFD(uses=1.5, backing="pipe"),  # type: ignore[arg-type]
        TypeError,
        None,
    ),
    (
        "MaskFD(uses=PRI, backing='pipe')",
        lambda w: MaskFD(uses=PRI, backing="pipe"),
        ValueError,
        None,
    ),
    (
        "MaskFD(uses=IN|OUT, backing='pipe')",
        lambda w: MaskFD(uses=IN | OUT, backing="pipe"),
        ValueError,
        None,
    ),
    (
        "MaskFD(uses=ERR, backing='pipe')",
        lambda w: MaskFD(uses=ERR, backing="pipe"),
        ValueError,
        None,
    ),
    (
        "MaskFD(uses=PRI, backing='dgram')",
        lambda w: MaskFD(uses=PRI, backing="dgram"),
        ValueError,
        None,
    ),
    (
        "MaskFD(PRI, backing='pipe')",
        lambda w: MaskFD(PRI, backing="pipe"),
        OSError,
        errno.EOPNOTSUPP,
    ),
    ("write(-1)", lambda w: w.m.write(-1), ValueError, None),
    ("write(0x20)", lambda w: w.m.write(0x20), ValueError, None),
    ("write(2**32)", lambda w: w.m.write(2**32), ValueError, None),
    ("write(1.0)", lambda w: w.m.write(1.0), TypeError, None),  # type: ignore[arg-type]
    ("write(None)", lambda w: w.m.write(None), TypeError, None),  # type: ignore[arg-type]
    ("write(Decimal('1.5'))", lambda w: w.m.write(Decimal("1.5")), TypeError, None),  # type: ignore[arg-type]
    ("write(IN, -1)", lambda w: w.m.write(IN, -1), ValueError, None),
    ("write(IN, 2**64)", lambda w: w.m.write(IN, 2**64), OverflowError, None),
    ("write(IN, 'x')", lambda w: w.m.write(IN, "x"), TypeError, None),  # type: ignore[arg-type]
    ("write(IN, Decimal(3))", lambda w: w.m.write(IN, Decimal(3)), TypeError, None),  # type: ignore[arg-type]
    ("set(-1)", lambda w: w.m.set(-1), ValueError, None),
    ("set(0x40)", lambda w: w.m.set(0x40), ValueError, None),
    ("set(None)", lambda w: w.m.set(None), TypeError, None),  # type: ignore[arg-type]
    ("set(Decimal(4))", lambda w: w.m.set(Decimal(4)), TypeError, None),  # type: ignore[arg-type]
    ("clear(-1)", lambda w: w.m.clear(-1), ValueError, None),
    ("clear('x')", lambda w: w.m.clear("x"), TypeError, None),  # type: ignore[arg-type]
    ("update(set=0x20)", lambda w: w.m.update(set=0x20), ValueError, None),
    ("update(clear=-1)", lambda w: w.m.update(clear=-1), ValueError, None),
    ("update(data=-1)", lambda w: w.m.update(data=-1), ValueError, None),
    ("update(set=Decimal(1))", lambda w: w.m.update(set=Decimal(1)), TypeError, None),  # type: ignore[arg-type]
    ("write_bytes(11 bytes)", lambda w: w.m.write_bytes(bytes(11)), OSError, errno.EINVAL),
    ("write_bytes(b'')", lambda w: w.m.write_bytes(b""), OSError, errno.EINVAL),
    ("write_bytes(bad events)", lambda w: w.m.write_bytes(b"\xff" * 12), OSError, errno.EINVAL),
    ("write_bytes(str)", lambda w: w.m.write_bytes("x" * 12), TypeError, None),  # type: ignore[arg-type]
    ("write_bytes(None)", lambda w: w.m.write_bytes(None), TypeError, None),  # type: ignore[arg-type]
    ("read_bytes(11)", lambda w: w.m.read_bytes(11), OSError, errno.EINVAL),
    ("read_bytes('x')", lambda w: w.m.read_bytes("x"), TypeError, None),  # type: ignore[arg-type]
    ("pipe: write(OUT)", lambda w: w.pipe.write(OUT), OSError, errno.EOPNOTSUPP),
    ("pipe: set(ERR)", lambda w: w.pipe.set(ERR), OSError, errno.EOPNOTSUPP),
    ("dgram: set(PRI)", lambda w: w.dgram.set(PRI), OSError, errno.EOPNOTSUPP),
    ("closed write", lambda w: w.closed.write(IN), ValueError, None),
    ("closed write(bad)", lambda w: w.closed.write(-1), ValueError, None),
    ("closed set", lambda w: w.closed.set(IN), ValueError, None),
    ("closed clear", lambda w: w.closed.clear(IN), ValueError, None),
    ("closed update", lambda w: w.closed.update(set=IN), ValueError, None),
    ("closed read", lambda w: w.closed.read(), ValueError, None),
    ("closed events", lambda w: w.closed.events, ValueError, None),
    ("closed data", lambda w: w.closed.data, ValueError, None),
    ("closed fileno", lambda w: w.closed.fileno(), ValueError, None),
    ("closed backing", lambda w: w.closed.backing, ValueError, None),
    ("closed write_bytes", lambda w: w.closed.write_bytes(pack_mask(IN)), ValueError, None),
    ("closed read_bytes", lambda w: w.closed.read_bytes(), ValueError, None),
    ("closed limits", lambda w: w.closed.limits(), ValueError, None),
    ("closed as context manager", lambda w: w.closed.__enter__(), ValueError, None),
    ("pickle.dumps", lambda w: pickle.dumps(w.m), TypeError, None),
    ("copy.copy", lambda w: copy.copy(w.m), TypeError, None),
    ("pack_mask(0x20)", lambda w: pack_mask(0x20), ValueError, None),
    ("pack_mask(IN, -1)", lambda w: pack_mask(IN, -1), ValueError, None),
    ("unpack_mask(11 bytes)", lambda w: unpack_mask(bytes(11)), ValueError, None),
    ("unpack_mask(None)", lambda w: unpack_mask(None), TypeError, None),  # type: ignore[arg-type]
]


def test_enough_distinct_maskfd_cases() -> None:
    assert len({name for name, *_ in CASES}) == len(CASES) >= 40
    record("bad_input.maskfd_cases", len(CASES))


@pytest.mark.parametrize(("case", "exc", "err"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_maskfd_bad_input(
    world: World, case: Case, exc: type[BaseException], err: int | None
) -> None:
    before = snapshot(world)
    with pytest.raises(exc) as info:
        case(world)
    if err is not None:
        assert isinstance(info.value, OSError)
        assert info.value.errno == err
    assert snapshot(world) == before
    world.m.write(IN, 1)  # still usable
    assert world.m.read() == (IN, 1)


_EVENTS = "invalid {} {:#x}: only POLLIN|POLLPRI|POLLOUT|POLLERR|POLLHUP (0x1f) may be set"
_DATA = "data must be between 0 and 2**64 - 1, not {}"
MESSAGES: list[tuple[str, Case, type[BaseException], str]] = [
    ("MaskFD(0x20)", lambda w: MaskFD(0x20), ValueError, _EVENTS.format("events", 0x20)),
    ("MaskFD(1.0)", lambda w: MaskFD(1.0), TypeError, "events must be an integer, not 'float'"),  # type: ignore[arg-type]
    ("MaskFD(0, -1)", lambda w: MaskFD(0, -1), ValueError, _DATA.format(-1)),
    ("write(IN, 2**64)", lambda w: w.m.write(IN, 2**64), OverflowError, _DATA.format(2**64)),
    ("set(-1)", lambda w: w.m.set(-1), ValueError, _EVENTS.format("events", -1)),
    (
        "update(clear=0x40)",
        lambda w: w.m.update(clear=0x40),
        ValueError,
        _EVENTS.format("events", 0x40),
    ),
    ("MaskFD(uses=0x40)", lambda w: MaskFD(uses=0x40), ValueError, _EVENTS.format("uses", 0x40)),
    (
        "MaskFD(uses='x')",
        lambda w: MaskFD(uses="x"),  # type: ignore[arg-type]
        TypeError,
        "uses must be an integer, not 'str'",
    ),
    (
        "MaskFD(backing='tcp')",
        lambda w: MaskFD(backing="tcp"),  # type: ignore[arg-type]
        ValueError,
        "backing must be one of ('stream', 'dgram', 'pipe'), not 'tcp'",
    ),
]


@pytest.mark.parametrize(
    ("case", "exc", "message"), [c[1:] for c in MESSAGES], ids=[c[0] for c in MESSAGES]
)
def test_maskfd_bad_input_says_what_was_wrong(
    world: World, case: Case, exc: type[BaseException], message: str
) -> None:
    before = snapshot(world)
    with pytest.raises(exc) as info:
        case(world)
    assert str(info.value) == message
    assert snapshot(world) == before


def test_uses_a_backing_never_shows_is_refused_by_name() -> None:
    with pytest.raises(ValueError) as info:
        MaskFD(uses=IN | PRI, backing="pipe")
    assert str(info.value) == (
        "uses=POLLIN|POLLPRI: the 'pipe' backing never shows POLLPRI (a pipe never "
        "shows PRI; use backing='stream'); leave out backing= to have one chosen"
    )


@pytest.mark.parametrize(
    ("uses", "backing"),
    [(IN | HUP, "pipe"), (IN | OUT | ERR | HUP, "dgram"), (IN | PRI | OUT | ERR | HUP, "stream")],
)
def test_uses_a_backing_shows_is_taken(uses: int, backing: str) -> None:
    with MaskFD(uses=uses, backing=backing) as m:  # type: ignore[arg-type]
        assert m.backing == backing


# -- fd exhaustion: half-built objects -----------------------------------------


@pytest.fixture
def few_fds() -> Iterator[int]:
    """RLIMIT_NOFILE just above the fds open now; restored after."""
    with fd_limit(8) as limit:
        yield limit


@pytest.mark.parametrize("backing", ["stream", "dgram", "pipe"])
def test_maskfd_half_built_under_fd_exhaustion(backing: str, few_fds: int) -> None:
    """With 0, 1, 2, ... fds free, MaskFD() either works or raises EMFILE
    having closed every fd it had opened."""
    baseline = open_fds()
    fillers: list[int] = []
    needed = None
    try:
        while True:  # take every free fd under the limit
            try:
                fillers.append(os.dup(0))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        for free in range(0, 8):
            for fd in fillers[:free]:
                os.close(fd)
            before = open_fds()
            try:
                m = MaskFD(IN, 5, backing=backing)  # type: ignore[arg-type]
            except OSError as exc:
                assert exc.errno == errno.EMFILE, exc
                assert open_fds() == before, f"{free} free: leaked {open_fds() - before}"
            else:
                assert m.read() == (IN, 5)
                m.close()
                assert open_fds() == before
                needed = free
            fillers[:free] = [os.dup(0) for _ in range(free)]
            if needed is not None:
                break
    finally:
        for fd in fillers:
            os.close(fd)
    assert needed is not None, "no MaskFD even with 7 free fds"
    assert open_fds() == baseline
    record(f"faults.maskfd_exhaustion.{backing}", {"fds_needed": needed, "leaked": 0})


# -- leaks ---------------------------------------------------------------------

SIZES = [
    pytest.param(2_000, id="ci"),
    pytest.param(100_000, id="full", marks=pytest.mark.slow),
]


def _cycle(backing: str) -> Callable[[], None]:
    def cycle() -> None:
        with MaskFD(backing=backing) as m:  # type: ignore[arg-type]
            m.write(IN, 3)
            m.update(set=0, clear=IN, data=4)
            assert m.read_bytes() == pack_mask(0, 4)
            with pytest.raises(ValueError):
                m.write(-1)
            repr(m)
        leaked = MaskFD(backing=backing)  # type: ignore[arg-type]
        del leaked  # collected unclosed: closed, with a ResourceWarning

    return cycle


@pytest.mark.parametrize("cycles", SIZES)
@pytest.mark.parametrize("backing", ["stream", "dgram", "pipe"])
def test_maskfd_fds_and_memory_flat(backing: str, cycles: int) -> None:
    cycle = _cycle(backing)
    warned = 0

    def count(*args: object, **kwargs: object) -> None:
        nonlocal warned
        warned += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always", ResourceWarning)
        warnings.showwarning = count
        for _ in range(max(cycles // 10, 300)):
            cycle()
        gc.collect()
        warned = 0
        fds0, rss0, blocks0, heap0 = (
            open_fds(),
            rss_bytes(),
            sys.getallocatedblocks(),
            c_heap_in_use(),
        )
        for _ in range(cycles):
            cycle()
        gc.collect()
        fds1, rss1, blocks1, heap1 = (
            open_fds(),
            rss_bytes(),
            sys.getallocatedblocks(),
            c_heap_in_use(),
        )
    assert fds1 == fds0
    assert warned == cycles
    assert blocks1 - blocks0 < max(cycles // 20, 200), (blocks0, blocks1)
    if not os.environ.get("EFX_SANITIZER"):  # ASan's quarantine holds freed memory
        assert rss1 - rss0 < 2 * 1024 * 1024, (rss0, rss1)
        if heap0 is not None and heap1 is not None:
            assert heap1 - heap0 < 64 * 1024, (heap0, heap1)
    record(
        f"leaks.MaskFD-{backing}.{cycles}",
        {
            "cycles": cycles,
            "fds_before": len(fds0),
            "fds_after": len(fds1),
            "rss_before_kib": rss0 // 1024,
            "rss_after_kib": rss1 // 1024,
            "blocks_before": blocks0,
            "blocks_after": blocks1,
            "heap_before": heap0,
            "heap_after": heap1,
        },
    )


# -- a process killed in the middle of changing a shared MaskFD -----------------

KILLS = [pytest.param(5, id="ci"), pytest.param(200, id="full", marks=pytest.mark.slow)]


@pytest.mark.parametrize("kills", KILLS)
@pytest.mark.parametrize("backing", ["stream", "dgram", "pipe"])
def test_maskfd_writer_killed_mid_change(backing: str, kills: int) -> None:
    """A forked writer flips the bits as fast as it can and is SIGKILLed at
    an arbitrary point, often inside a change.  The survivor reads the last
    finished write or the one in flight, never a mix; poll shows every bit of
    what it reads; and the MaskFD still takes writes."""
    from _kernel import TIMEOUT, Child

    other = OUT if backing != "pipe" else 0
    shared = mmap.mmap(-1, 8)  # writes finished by the child
    worst = 0
    try:
        for k in range(kills):
            with MaskFD(backing=backing) as m, MaskFD(backing="pipe") as started:  # type: ignore[arg-type]

                def writer(k: int = k) -> None:
                    done = 0
                    while True:
                        m.write(IN if done % 2 else other, done)
                        done += 1
                        shared[:8] = struct.pack("Q", done)
                        if done == 50 + 13 * k:
                            started.write(IN)

                child = Child(writer)
                try:
                    ready = select.select([started], [], [], TIMEOUT)[0]
                    assert ready, "the writer never got going"
                finally:
                    child.close()  # SIGKILL
                (done,) = struct.unpack("Q", shared[:8])
                events, data = m.read()
                assert data in (done - 1, done), (k, done, data)  # last finished, or in flight
                assert events == (IN if data % 2 else other), (k, events, data)
                assert _shown(m) & events == events, (k, hex(events), hex(_shown(m)))
                m.write(IN, 12345)
                assert m.read() == (IN, 12345)
                assert _shown(m) & IN
                worst = max(worst, done)
    finally:
        shared.close()
    record(
        f"faults.maskfd_killed_writer.{backing}.{kills}",
        {"kills": kills, "max_writes_before_kill": worst},
    )
