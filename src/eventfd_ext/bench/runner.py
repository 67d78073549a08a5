"""Running the measurements: calibrated loops, peers, pinning, repetitions.

The loops are ``timeit.Timer`` loops over a mechanism's statements.  The
repetitions of the cases of one measurement are interleaved (repetition 1
of every case, then repetition 2, ...), with every peer thread and process
already started and blocked, so that the machine's drift (it is shared)
falls on all cases alike and the ratios between them stay honest.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import threading
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ._floor import lib
from .mechanisms import Channel, Mechanism
from .results import Result

__all__ = [
    "Config",
    "Placement",
    "Progress",
    "percall",
    "pingpong",
    "placements",
    "throughput",
]

#: Called with (what is running, repetition done, repetitions).
Progress = Callable[[str, int, int], None]
#: A loop: runs n operations and returns the seconds they took.
Timed = Callable[[int], float]

_FLOORS = {
    "eventfd": lib.EFX_FLOOR_EVENTFD,
    "pipe": lib.EFX_FLOOR_PIPE,
    "socketpair": lib.EFX_FLOOR_SOCKETPAIR,
    "doorbell": lib.EFX_FLOOR_DOORBELL,
    "eventfd spin=50us": lib.EFX_FLOOR_EVENTFD_SPIN,
}
# Untimed round trips before the first timed repetition of a ping-pong.
_WARMUP = 100
# How long a peer may take to finish once the timed side is done.
_JOIN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Config:
    """How much to measure."""

    #: Repetitions of every ping-pong and throughput case.
    repetitions: int
    #: Repetitions of every per-call case: many short ones, so that a burst
    #: from elsewhere on the machine spoils few samples and not the median.
    percall_repetitions: int
    #: Seconds each per-call repetition runs (its loop count is calibrated).
    percall_seconds: float
    #: Round trips in each ping-pong repetition.
    rounds: int
    #: Signals sent in each throughput repetition.
    signals: int


@dataclass(frozen=True)
class Placement:
    """Where the two sides of a ping-pong run."""

    processes: bool
    #: The CPU of the side that starts each round trip and of its peer
    #: (None: not pinned).
    cpu_ping: int | None
    cpu_pong: int | None

    @property
    def label(self) -> str:
        kind = "processes" if self.processes else "threads"
        if self.cpu_ping is None or self.cpu_pong is None:
            return f"{kind}, unpinned"
        where = "same CPU" if self.cpu_ping == self.cpu_pong else "across CPUs"
        return f"{kind}, {where}"


def placements(cpus: Sequence[int] | None) -> list[Placement]:
    """Threads then processes, on one CPU and, given two, across them."""
    if not cpus:
        pairs: list[tuple[int | None, int | None]] = [(None, None)]
    else:
        pairs = [(cpus[0], cpus[0])]
        if len(cpus) > 1:
            pairs.append((cpus[0], cpus[1]))
    return [Placement(p, a, b) for p in (False, True) for a, b in pairs]


@contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the calling thread on *cpu* (None: leave it alone), then restore."""
    if cpu is None:
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


@contextmanager
def _no_gc() -> Iterator[None]:
    # timeit switches the collector off only around its own loop, and peers'
    # loops in other threads would switch it back on under the timed side.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _floor(ns: int) -> float:
    """Seconds from a floor function's result (elapsed ns, or -errno)."""
    if ns < 0:
        raise OSError(-ns, os.strerror(-ns))
    return ns / 1e9


def _loop(stmt: str, channel: Channel) -> Timed:
    return timeit.Timer(stmt, globals=channel.names).timeit


def _calibrate(timed: Timed, seconds: float) -> int:
    """A loop count for which *timed* runs about *seconds*."""
    n = 1
    while True:
        took = timed(n)
        if took >= seconds / 10 or n >= 1 << 30:
            return max(1, round(n * seconds / max(took, 1e-9)))
        n *= 8


@dataclass
class _Case:
    result: Result
    timed: Timed
    n: int = 1
    cpu: int | None = None
    #: Called with True when the run failed: peers are then not waited for.
    close: Callable[[bool], None] = field(default=lambda abandon: None)


def _interleave(cases: Sequence[_Case], reps: int, label: str, progress: Progress) -> None:
    for rep in range(reps):
        progress(label, rep, reps)
        for case in cases:
            with pinned(case.cpu):
                case.result.samples.append(case.timed(case.n) / case.n)
    progress(label, reps, reps)


def _closer(channel: Channel) -> Callable[[bool], None]:
    def close(abandon: bool) -> None:
        channel.close()

    return close


def _close_all(cases: Sequence[_Case], abandon: bool = False) -> None:
    errors = []
    for case in cases:
        try:
            case.close(abandon)
        except Exception as exc:  # close the rest, then report the first
            errors.append(exc)
    if errors:
        raise errors[0]


def percall(
    config: Config, mechanisms: Sequence[Mechanism], cpu: int | None, progress: Progress
) -> list[Result]:
    """Write+read on one channel, per pair, with the C floors for comparison."""
    cases: list[_Case] = []
    efd = os.eventfd(0)
    pipe_r, pipe_w = os.pipe()
    sock_a, sock_b = socket.socketpair()
    floors = {
        "eventfd": lambda n: _floor(lib.efx_floor_call_eventfd(efd, n)),
        "pipe": lambda n: _floor(lib.efx_floor_call_pipe(pipe_r, pipe_w, n)),
        "socketpair": lambda n: _floor(
            lib.efx_floor_call_socketpair(sock_a.fileno(), sock_b.fileno(), n)
        ),
        "doorbell": lambda n: _floor(lib.efx_floor_call_doorbell(n)),
    }
    try:
        for family, timed in floors.items():
            result = Result.time("per-call", f"C {family} (floor)", "", floor=None, kind="floor")
            cases.append(_Case(result, timed, cpu=cpu))
        for mech in mechanisms:
            if mech.call is None:
                continue
            channel = mech.open()
            result = Result.time(
                "per-call",
                mech.name,
                "",
                floor=f"C {mech.floor} (floor)",
                kind=mech.kind,
                ranked=mech.ranked,
            )
            cases.append(
                _Case(
                    result,
                    _loop(mech.call, channel),
                    cpu=cpu,
                    close=_closer(channel),
                )
            )
        with _no_gc():
            for i, case in enumerate(cases):
                progress("per-call: calibrating", i, len(cases))
                with pinned(cpu):
                    case.n = _calibrate(case.timed, config.percall_seconds)
            _interleave(cases, config.percall_repetitions, "per-call", progress)
    finally:
        _close_all(cases)
        for fd in (efd, pipe_r, pipe_w):
            os.close(fd)
        sock_a.close()
        sock_b.close()
    return [case.result for case in cases]


def _exit_with_parent(lifeline: tuple[int, int]) -> None:
    """In a forked peer: exit once the parent is gone, rather than wait for
    its signals forever.  The parent holds the lifeline's write end."""
    r, w = lifeline
    os.close(w)

    def watch() -> None:
        os.read(r, 1)  # end of file: every holder of the write end has exited
        os._exit(1)

    threading.Thread(target=watch, name="bench-lifeline", daemon=True).start()


def _start_process_peer(
    stmt: str, channel: Channel, rounds: int, cpu: int | None, lifeline: tuple[int, int]
) -> Callable[[bool], None]:
    pid = os.fork()
    if pid == 0:  # the child runs only its echo loop
        code = 1
        try:
            _exit_with_parent(lifeline)
            with pinned(cpu):
                _loop(stmt, channel)(rounds)
            code = 0
        finally:
            os._exit(code)

    def join(abandon: bool) -> None:
        if abandon:  # it would wait for the rest of its round trips forever
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        deadline = time.monotonic() + _JOIN_TIMEOUT
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if os.waitstatus_to_exitcode(status) != 0:
                    raise RuntimeError(f"ping-pong peer process failed ({status})")
                return
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise RuntimeError("ping-pong peer process did not finish")
            time.sleep(0.01)

    return join


def _start_thread_peer(
    stmt: str, channel: Channel, rounds: int, cpu: int | None, lifeline: tuple[int, int]
) -> Callable[[bool], None]:
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with pinned(cpu):
                _loop(stmt, channel)(rounds)
        except BaseException as exc:  # reported by join()
            failure.append(exc)

    thread = threading.Thread(target=run, name="bench-pong", daemon=True)
    thread.start()

    def join(abandon: bool) -> None:
        if abandon:  # a daemon, blocked for good: leave it to the exit
            return
        thread.join(_JOIN_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("ping-pong peer thread did not finish")
        if failure:
            raise failure[0]

    return join


def pingpong(
    config: Config,
    mechanisms: Sequence[Mechanism],
    where: Sequence[Placement],
    progress: Progress,
) -> list[Result]:
    """Round-trip latency between two threads and between two processes."""
    cases: list[_Case] = []
    rounds = _WARMUP + config.repetitions * config.rounds
    completed = False
    lifeline = os.pipe()
    try:
        # Fork every process peer before any thread peer starts: a fork()
        # with other threads running can copy a lock another thread holds.
        for place in sorted(where, key=lambda p: not p.processes):
            for family, kind in _FLOORS.items():
                cases.append(_floor_pingpong_case(family, kind, place))
            for mech in mechanisms:
                if mech.ping is None or mech.pong is None:
                    continue
                if place.processes and not mech.processes:
                    continue
                cases.append(_pingpong_case(mech, place, rounds, lifeline))
        for case in cases:
            case.n = config.rounds
        with _no_gc():
            for i, case in enumerate(cases):
                progress("ping-pong: warming up", i, len(cases))
                if not case.result.is_floor:
                    with pinned(case.cpu):
                        case.timed(_WARMUP)
            _interleave(cases, config.repetitions, "ping-pong", progress)
        completed = True
    finally:
        try:
            _close_all(cases, abandon=not completed)
        finally:
            os.close(lifeline[0])
            os.close(lifeline[1])
    order = {place.label: i for i, place in enumerate(where)}
    return sorted((c.result for c in cases), key=lambda r: order[r.placement])


def _floor_pingpong_case(family: str, kind: int, place: Placement) -> _Case:
    ping = -1 if place.cpu_ping is None else place.cpu_ping
    pong = -1 if place.cpu_pong is None else place.cpu_pong

    def timed(n: int) -> float:
        return _floor(lib.efx_floor_pingpong(kind, int(place.processes), n, ping, pong))

    result = Result.time("ping-pong", f"C {family} (floor)", place.label, floor=None, kind="floor")
    return _Case(result, timed)


def _pingpong_case(
    mech: Mechanism, place: Placement, rounds: int, lifeline: tuple[int, int]
) -> _Case:
    assert mech.ping is not None
    assert mech.pong is not None
    channel = mech.open()
    start = _start_process_peer if place.processes else _start_thread_peer
    try:
        join = start(mech.pong, channel, rounds, place.cpu_pong, lifeline)
    except BaseException:
        channel.close()
        raise

    def close(abandon: bool) -> None:
        try:
            join(abandon)
        finally:
            channel.close()

    result = Result.time(
        "ping-pong",
        mech.name,
        place.label,
        floor=f"C {mech.floor} (floor)",
        kind=mech.kind,
        ranked=mech.ranked,
    )
    return _Case(result, _loop(mech.ping, channel), cpu=place.cpu_ping, close=close)


def throughput(
    config: Config,
    mechanisms: Sequence[Mechanism],
    cpus: tuple[int | None, int | None],
    progress: Progress,
) -> list[Result]:
    """Signals per second from one producer thread to one consumer, and how
    many signals each of the consumer's reads takes at once."""
    label = Placement(False, *cpus).label
    runs = []
    for mech in mechanisms:
        if mech.give is None or mech.take is None:
            continue
        rate, batch = (
            Result(group, mech.name, label, unit, True, kind=mech.kind, ranked=mech.ranked)
            for group, unit in (("throughput", "signals/s"), ("coalescing", "signals/read"))
        )
        runs.append((mech, rate, batch))
    with _no_gc():
        for rep in range(config.repetitions):
            progress("throughput", rep, config.repetitions)
            for mech, rate, batch in runs:
                seconds, reads = _produce_consume(mech, config.signals, cpus)
                rate.samples.append(config.signals / seconds)
                batch.samples.append(config.signals / reads)
    progress("throughput", config.repetitions, config.repetitions)
    return [r for _, rate, batch in runs for r in (rate, batch)]


_CONSUMER = """
def consume(n):
    got = reads = 0
    while got < n:
        got += {take}
        reads += 1
    return reads
"""


def _produce_consume(
    mech: Mechanism, n: int, cpus: tuple[int | None, int | None]
) -> tuple[float, int]:
    assert mech.give is not None
    assert mech.take is not None
    channel = mech.open()
    try:
        names = dict(channel.names)
        exec(_CONSUMER.format(take=mech.take), names)  # a loop like timeit's
        consume: Callable[[int], int] = names["consume"]
        produce = _loop(mech.give, channel)
        go = threading.Event()

        def producer() -> None:
            with pinned(cpus[0]):
                go.wait()
                produce(n)

        thread = threading.Thread(target=producer, name="bench-producer", daemon=True)
        with pinned(cpus[1]):
            thread.start()
            start = time.perf_counter()
            go.set()
            reads = consume(n)
            seconds = time.perf_counter() - start
        thread.join(_JOIN_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("throughput producer did not finish")
        return seconds, reads
    finally:
        channel.close()
