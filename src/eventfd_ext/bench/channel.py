"""The Channel section of the benchmark: messages between two processes,
against the Python IPC queues (multiprocessing.Pipe and Queue, and
faster-fifo and pyzmq over ipc:// when installed: ``pip install
'eventfd_ext[bench-peers]'``), and the CPU a receiver burns, against a ring
that spins the way vLLM's MessageQueue readers do.

Each figure is the median of interleaved repetitions, each in freshly
forked processes pinned to the CPUs asked for.  Run it alone with
``python -m eventfd_ext.bench.channel [--quick]``, or as the ``channel``
group of ``eventfd-ext-bench --only channel``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .._channel import Channel
from .._shim import ffi
from .._shim import lib as shim
from ._floor import lib as floor

__all__ = [
    "FULL",
    "GOALS",
    "QUICK",
    "Config",
    "Figure",
    "Goal",
    "goals",
    "main",
    "measure",
    "table",
]

MESSAGE = bytes(64)
BIG = bytes(1 << 20)
#: The same loops in C (csrc/floor.c): the Channel's own calls
#: (<eventfd_ext/channel.h>) and an AF_UNIX socketpair, the kernel path
#: under multiprocessing.Pipe.  Shown with --dev, and used for the goals'
#: bounds.
FLOOR_CHANNEL = "C floor: Channel"
FLOOR_SOCKETPAIR = "C floor: socketpair"
#: The C floor one layer under a case, for a goal's bound; a peer with none
#: measured here (its own C library) is compared as it is.
FLOOR_UNDER = {"Channel": FLOOR_CHANNEL, "multiprocessing.Pipe": FLOOR_SOCKETPAIR}
#: The Channel's round trip made of its bare cffi calls in Python functions
#: that do nothing else (send; receive, spinning in the shim between tries):
#: the least any Python API over these calls can cost.  Shown with --dev; a
#: round-trip goal's bound from Python.
SHIM = "shim calls in do-nothing defs"
#: Rows for the project's own work, not mechanisms a user picks from.
DEV_ONLY = (FLOOR_CHANNEL, FLOOR_SOCKETPAIR, SHIM)
#: Units whose higher figures are the better ones.
HIGHER_IS_BETTER = ("k msgs/s", "MB/s")


@dataclass(frozen=True)
class Config:
    repetitions: int
    round_trips: int
    messages: int
    big_messages: int
    idle_seconds: float
    paced_messages: int


FULL = Config(repetitions=7, round_trips=3000, messages=200_000, big_messages=300,
              idle_seconds=1.0, paced_messages=1000)  # fmt: skip
QUICK = Config(repetitions=3, round_trips=300, messages=20_000, big_messages=30,
               idle_seconds=0.3, paced_messages=200)  # fmt: skip


# -- the peers: each a pair of ends, (send, recv) on each side ------------------------

Ends = tuple[Callable[[bytes], None], Callable[[], Any]]


@dataclass
class Peer:
    """One mechanism: ``open()`` makes both directions before the fork and
    returns the two sides' ends and a closer."""

    name: str
    open: Callable[[int], tuple[Ends, Ends, Callable[[], None]]]


def _closing(*things: Any) -> Callable[[], None]:
    def close() -> None:
        for thing in things:
            thing.close()

    return close


def _channel(capacity: int) -> tuple[Ends, Ends, Callable[[], None]]:
    there, back = Channel(capacity), Channel(capacity)
    a = (there.send, back.recv)
    b = (back.send, there.recv)
    return a, b, _closing(there, back)


def _spinning(capacity: int) -> tuple[Ends, Ends, Callable[[], None]]:
    # The anchor: a receiver that never sleeps (try_recv in a loop), as
    # vLLM's readers spin on their ring.
    there, back = Channel(capacity), Channel(capacity)

    def spin_recv(ch: Channel) -> Callable[[], bytes]:
        def recv() -> bytes:
            while True:
                m = ch.try_recv()
                if m is not None:
                    return m

        return recv

    a = (there.send, spin_recv(back))
    b = (back.send, spin_recv(there))
    return a, b, _closing(there, back)


def _shim_calls(capacity: int) -> tuple[Ends, Ends, Callable[[], None]]:
    # For round trips of small messages only: no waiting for room, and a
    # receive buffer of 512 bytes.
    there, back = Channel(capacity), Channel(capacity)
    buf = ffi.new("char[]", 512)
    send, recv, spin = shim.efx_ch_send, shim.efx_ch_recv, shim.efx_db_spin

    def ends(out: Channel, into: Channel) -> Ends:
        h_out, h_in = out._h, into._h

        def send_bare(m: bytes) -> None:
            send(h_out, m, len(m))

        def recv_bare() -> bytes:
            while (n := recv(h_in, buf, 512)) < 0:
                spin(h_in, -1, 1_000_000)
            return ffi.unpack(buf, n)

        return send_bare, recv_bare

    return ends(there, back), ends(back, there), _closing(there, back)


def _pipe(capacity: int) -> tuple[Ends, Ends, Callable[[], None]]:
    x, y = multiprocessing.Pipe()
    return (x.send_bytes, x.recv_bytes), (y.send_bytes, y.recv_bytes), _closing(x, y)


def _queue(capacity: int) -> tuple[Ends, Ends, Callable[[], None]]:
    ctx = multiprocessing.get_context("fork")
    there, back = ctx.Queue(), ctx.Queue()

    def close() -> None:
        for q in (there, back):
            q.close()
            q.join_thread()  # its feeder thread sends what is still buffered

    return (there.put, back.get), (back.put, there.get), close


def _faster_fifo(capacity: int) -> tuple[Ends, Ends, Callable[[], None]]:
    from faster_fifo import Queue  # type: ignore[import-not-found,import-untyped,unused-ignore]

    there, back = Queue(max_size_bytes=capacity), Queue(max_size_bytes=capacity)
    return (
        (there.put, lambda: back.get(timeout=60)),
        (back.put, lambda: there.get(timeout=60)),
        lambda: None,
    )


def _zmq(capacity: int) -> tuple[Ends, Ends, Callable[[], None]]:
    # Sockets must be made in the process that uses them: each side
    # connects lazily, after the fork.
    import zmq  # type: ignore[import-not-found,import-untyped,unused-ignore]

    where = tempfile.mkdtemp(prefix="efx-zmq-")
    addr = f"ipc://{where}/s"
    made: dict[str, Any] = {}

    def side(bind: bool) -> Ends:
        def sock() -> Any:
            if "s" not in made:
                made["context"] = zmq.Context()
                s = made["context"].socket(zmq.PAIR)
                (s.bind if bind else s.connect)(addr)
                made["s"] = s
            return made["s"]

        return (
            lambda m: sock().send(m, copy=len(m) > 65536),
            lambda: sock().recv(copy=False).bytes,
        )

    def close() -> None:
        if "s" in made:
            made.pop("s").close(linger=5000)  # sends what its I/O thread still holds
            made.pop("context").term()
        shutil.rmtree(where, ignore_errors=True)

    return side(True), side(False), close


def peers() -> list[Peer]:
    """The Channel and every peer this machine has."""
    found = [Peer("Channel", _channel), Peer("multiprocessing.Pipe", _pipe),
             Peer("multiprocessing.Queue", _queue)]  # fmt: skip
    for module, peer in (("faster_fifo", Peer("faster_fifo.Queue", _faster_fifo)),
                         ("zmq", Peer("pyzmq PAIR ipc://", _zmq))):  # fmt: skip
        with contextlib.suppress(ImportError):
            __import__(module)
            found.append(peer)
    return found


# -- running two sides ------------------------------------------------------------


@contextlib.contextmanager
def _pinned(cpu: int | None) -> Iterator[None]:
    if cpu is None:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def _two_sides(
    peer: Peer,
    capacity: int,
    cpus: tuple[int | None, int | None],
    first: Callable[[Ends], float],
    second: Callable[[Ends], float],
) -> tuple[float, float]:
    """Run *first* here (on cpus[0]) and *second* in a forked child (on
    cpus[1]) over one fresh pair of *peer*: what each returned."""
    a, b, close = peer.open(capacity)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            if cpus[1] is not None:
                os.sched_setaffinity(0, {cpus[1]})
            value = second(b)
            close()  # flushes what a peer buffers (Queue's feeder thread)
            os.write(w, repr(value).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        with _pinned(cpus[0]):
            mine = first(a)
        with os.fdopen(r, "rb") as f:
            theirs = float(f.read() or "nan")
    finally:
        os.waitpid(pid, 0)
        close()
    return mine, theirs


# -- the measurements ----------------------------------------------------------------


def _round_trip(n: int) -> tuple[Callable[[Ends], float], Callable[[Ends], float]]:
    def ping(ends: Ends) -> float:
        send, recv = ends
        for _ in range(50):
            send(MESSAGE)
            recv()
        start = time.perf_counter()
        for _ in range(n):
            send(MESSAGE)
            recv()
        return (time.perf_counter() - start) / n

    def pong(ends: Ends) -> float:
        send, recv = ends
        for _ in range(50 + n):
            send(recv())
        return 0.0

    return ping, pong


def _one_way(n: int, message: bytes) -> tuple[Callable[[Ends], float], Callable[[Ends], float]]:
    """Messages per second, from the receiver's first message to its last."""

    def produce(ends: Ends) -> float:
        send, recv = ends
        recv()  # the consumer is there
        for _ in range(n + 1):
            send(message)
        recv()  # done
        return 0.0

    def consume(ends: Ends) -> float:
        send, recv = ends
        send(b"go")
        recv()
        start = time.perf_counter()
        for _ in range(n):
            recv()
        rate = n / (time.perf_counter() - start)
        send(b"done")
        return rate

    return produce, consume


def _cpu_share(n: int, pace: float) -> tuple[Callable[[Ends], float], Callable[[Ends], float]]:
    """The receiver's CPU time over wall time while messages come every
    *pace* seconds (n of them; none at all when n is 0, for *pace* s)."""

    def produce(ends: Ends) -> float:
        send, recv = ends
        recv()
        if n == 0:
            time.sleep(pace)  # the idle stretch being measured
        next_at = time.monotonic()
        for _ in range(n):
            next_at += pace
            while (left := next_at - time.monotonic()) > 0:
                time.sleep(left)
            send(MESSAGE)
        send(b"end")
        return 0.0

    def consume(ends: Ends) -> float:
        send, recv = ends
        send(b"go")
        wall, cpu = time.monotonic(), time.process_time()
        while len(recv()) == len(MESSAGE):
            pass
        return (time.process_time() - cpu) / (time.monotonic() - wall)

    return produce, consume


@dataclass
class Figure:
    case: str
    what: str
    unit: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def _c(ns: int) -> float:
    if ns < 0:
        raise OSError(-ns, f"the C floor failed: {os.strerror(-ns)}")
    return ns / 1e9


def _c_cpus(place: tuple[Any, Any]) -> list[int]:
    """A placement's CPUs as the C floor takes them (-1: not pinned)."""
    return [-1 if c is None else c for c in place]


def _floor_round_trip(mechanism: int, n: int) -> Callable[[tuple[Any, Any]], float]:
    """Seconds per round trip of the C floor, between processes."""

    def run(place: tuple[Any, Any]) -> float:
        return _c(floor.efx_floor_pingpong(mechanism, 1, n, *_c_cpus(place))) / n

    return run


def _floor_one_way(mechanism: int, n: int, size: int) -> Callable[[tuple[Any, Any]], float]:
    """Messages per second of the C floor, one way between processes."""

    def run(place: tuple[Any, Any]) -> float:
        return n / _c(floor.efx_floor_stream(mechanism, n, size, *_c_cpus(place)))

    return run


Floors = dict[str, Callable[[tuple[Any, Any]], float]]


def _floors(make: Callable[..., Callable[[tuple[Any, Any]], float]], *args: int) -> Floors:
    """The same C loop over a Channel and over a socketpair."""
    return {FLOOR_CHANNEL: make(floor.EFX_FLOOR_CHANNEL, *args),
            FLOOR_SOCKETPAIR: make(floor.EFX_FLOOR_SOCKETPAIR, *args)}  # fmt: skip


def measure(
    config: Config, cpus: Sequence[int], progress: Callable[[str, int, int], None]
) -> list[Figure]:
    """Every figure of the section, each over *config.repetitions*."""
    a = cpus[0] if cpus else None
    b = cpus[-1] if cpus else None
    across, same = (a, b), (a, a)
    figures: list[Figure] = []
    everyone = peers()
    with_shim = [*everyone, Peer(SHIM, _shim_calls)]
    rt, rt1, msgs, bigs = (config.round_trips, config.round_trips // 3, config.messages,
                           config.big_messages)  # fmt: skip
    plans: list[tuple[str, str, Sequence[Peer], Floors, int, tuple[Any, Any], Any, int]] = [
        ("round trip, 64 B, 2 CPUs", "us", with_shim, _floors(_floor_round_trip, rt * 10),
         1 << 16, across, _round_trip(rt), 0),
        ("round trip, 64 B, 1 CPU", "us", with_shim, _floors(_floor_round_trip, rt1 * 10),
         1 << 16, same, _round_trip(rt1), 0),
        ("one way, 64 B, 2 CPUs", "k msgs/s", everyone,
         _floors(_floor_one_way, msgs * 5, len(MESSAGE)),
         1 << 20, across, _one_way(msgs, MESSAGE), 1),
        ("one way, 1 MiB, 2 CPUs", "MB/s", everyone, _floors(_floor_one_way, bigs, len(BIG)),
         8 << 20, across, _one_way(bigs, BIG), 1),
        ("receiver CPU, nothing for 1 s", "% CPU", [everyone[0]], {}, 1 << 16, across,
         _cpu_share(0, config.idle_seconds), 1),
        ("receiver CPU, a message every 1 ms", "% CPU",
         [everyone[0], Peer("spinning ring (the vLLM way)", _spinning)], {}, 1 << 16, across,
         _cpu_share(config.paced_messages, 0.001), 1),
    ]  # fmt: skip
    scale = {"us": 1e6, "k msgs/s": 1e-3, "MB/s": len(BIG) / 1e6, "% CPU": 100.0}
    for what, unit, who, floors, capacity, place, (first, second), side in plans:
        found = {p.name: Figure(p.name, what, unit, []) for p in who}
        found |= {name: Figure(name, what, unit, []) for name in floors}
        for rep in range(config.repetitions):
            progress(f"channel: {what}", rep, config.repetitions)
            for p in who:  # interleaved, so that drift hits every case alike
                values = _two_sides(p, capacity, place, first, second)
                found[p.name].samples.append(values[side] * scale[unit])
            for name, run in floors.items():
                found[name].samples.append(run(place) * scale[unit])
        progress(f"channel: {what}", config.repetitions, config.repetitions)
        figures += found.values()
    return figures


# -- goals ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    text: str
    what: str
    #: "peers": against the best peer; a case name: against that case; None:
    #: the Channel's own figure against the limit.
    against: str | None
    limit: float
    higher_is_better: bool


GOALS = [
    Goal("round trip between processes on 2 CPUs <= 1/30 of the fastest peer",
         "round trip, 64 B, 2 CPUs", "peers", 1 / 30, False),
    Goal("round trip on 1 CPU <= 0.6x the fastest peer",
         "round trip, 64 B, 1 CPU", "peers", 0.6, False),
    Goal("one-way 64 B messages/s across CPUs >= 3x the fastest peer",
         "one way, 64 B, 2 CPUs", "peers", 3.0, True),
    Goal("1 MiB messages one way >= 1.5x multiprocessing.Pipe's bytes/s",
         "one way, 1 MiB, 2 CPUs", "multiprocessing.Pipe", 1.5, True),
    Goal("a receiver blocked 1 s with nothing coming: < 1% CPU",
         "receiver CPU, nothing for 1 s", None, 1.0, False),
    Goal("a message every 1 ms: receiver CPU <= 10% of wall time",
         "receiver CPU, a message every 1 ms", None, 10.0, False),
]  # fmt: skip


def _is_peer(f: Figure) -> bool:
    """Whether *f* is a peer the Channel is compared with (not the
    Channel, a C floor or the spinning anchor)."""
    return f.case != "Channel" and f.case not in DEV_ONLY and not f.case.startswith("spinning")


def goals(figures: Sequence[Figure]) -> list[dict[str, Any]]:
    """Each goal with the Channel's figure, what it is compared to, whether
    it is met, and its bound: the same ratio one layer down (the C floors;
    a peer with no C floor measured here is taken as it is), which says
    whether the goal is within reach of the Channel's C core at all."""
    rows = []
    for goal in GOALS:
        here = [f for f in figures if f.what == goal.what]
        ours = next((f for f in here if f.case == "Channel"), None)
        if ours is None:
            continue
        others = [f for f in here if _is_peer(f)]
        if goal.against == "peers":
            pick = max if goal.higher_is_better else min
            base: Figure | None = pick(others, key=lambda f: f.median) if others else None
        elif goal.against is not None:
            base = next((f for f in others if f.case == goal.against), None)
        else:
            base = None

        def ok(value: float, goal: Goal = goal) -> bool:
            return value >= goal.limit if goal.higher_is_better else value <= goal.limit

        value = ours.median / base.median if base else ours.median
        bound: dict[str, Any] | None = None
        floors = {f.case: f for f in here}
        if base is not None and FLOOR_CHANNEL in floors:
            under = floors.get(FLOOR_UNDER.get(base.case, ""), base)
            ratio = floors[FLOOR_CHANNEL].median / under.median
            bound = {"ratio": ratio, "against": under.case, "reachable": ok(ratio)}
            if SHIM in floors:  # and from Python: the bare calls against the peer
                ratio = floors[SHIM].median / base.median
                bound |= {"python_ratio": ratio, "python_reachable": ok(ratio)}
        rows.append({"goal": goal.text, "value": value, "limit": goal.limit, "met": ok(value),
                     "against": base.case if base else None,
                     "compare": ">=" if goal.higher_is_better else "<=",
                     "bound": bound})  # fmt: skip
    return rows


def table(figures: Sequence[Figure], dev: bool = False) -> str:
    """The figures as text: the mechanisms and, per measurement, the
    fastest; with *dev*, the C floors too and the goals with their bounds."""
    lines = []
    shown = [f for f in figures if dev or f.case not in DEV_ONLY]
    width = max(len(f.case) for f in shown) + 2
    for what in dict.fromkeys(f.what for f in shown):
        rows = [f for f in shown if f.what == what]
        lines += ["", f"Channel: {what} ({rows[0].unit}; median, min - max of "
                      f"{len(rows[0].samples)} repetitions)"]  # fmt: skip
        for f in rows:
            lo, hi = min(f.samples), max(f.samples)
            lines.append(f"  {f.case:{width}}{f.median:>10.3g}  {lo:>9.3g} - {hi:<9.3g}")
        if lead := _fastest(rows):
            lines.append(lead)
    if not dev:
        return "\n".join(lines)
    lines += ["", "Channel goals (measured side by side in this run; bound: the same ratio "
                  "with the C floors)"]  # fmt: skip
    for row in goals(figures):
        vs = f" of {row['against']}" if row["against"] else ""
        line = (f"  [{'met' if row['met'] else 'MISSED'}] {row['goal']}: "
                f"{row['value']:.3g}{'x' if vs else ''}{vs} "
                f"(goal {row['compare']} {row['limit']:.3g})")  # fmt: skip
        if row["bound"] is not None:
            fl = row["bound"]
            reach = "within reach" if fl["reachable"] else "out of reach even in C"
            line += f"; bound {fl['ratio']:.3g}x of {fl['against']}: {reach}"
            if "python_ratio" in fl:
                reach = "within reach" if fl["python_reachable"] else "out of reach"
                line += f"; from Python's bare calls {fl['python_ratio']:.3g}x: {reach}"
        lines.append(line)
    return "\n".join(lines)


def _fastest(rows: Sequence[Figure]) -> str:
    """One line naming the best mechanism of a measurement and its lead
    over the next (C floors and the spinning anchor aside)."""
    ranked = [f for f in rows if f.case == "Channel" or _is_peer(f)]
    if len(ranked) < 2:
        return ""
    higher = rows[0].unit in HIGHER_IS_BETTER
    best, second = sorted(ranked, key=lambda f: f.median, reverse=higher)[:2]
    lead = best.median / second.median if higher else second.median / best.median
    word = "least CPU" if rows[0].unit == "% CPU" else "fastest"
    return f"  {word.capitalize()}: {best.case}, {lead:.2f}x ahead of {second.case}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eventfd_ext.bench.channel")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--dev", action="store_true", help="the C floors and the goals with bounds")
    args = p.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))[:2]

    def progress(what: str, done: int, total: int) -> None:
        print(f"{what} {done}/{total}", file=sys.stderr)

    figures = measure(QUICK if args.quick else FULL, cpus, progress)
    print(table(figures, dev=args.dev))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
