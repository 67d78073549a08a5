"""MaskFD against an adversary: signal handlers that use the package, forks
between calls, holders SIGKILLed or SIGSTOPped inside a change, edge-triggered
waiters, subclasses and int subclasses.

No sleep stands in for synchronisation: a stopped or dying child is waited
for with waitpid, the lock holder is read from the lock word itself, and
every time bound is only a generous failure limit.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import mmap
import multiprocessing
import os
import resource
import select
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from multiprocessing import resource_sharer
from typing import Any

import pytest

from eventfd_ext import MaskFD, choose_backing, pack_mask
from eventfd_ext._backings import Backing
from eventfd_ext._maskabi import event_names
from eventfd_ext._shim import ffi, lib
from maskfd_helpers import ERR, HUP, IN, OUT, PRI, assert_shows, by_poll, kernel_has_unix_oob

LIMIT = 10.0  # generous failure bound on any wait (seconds)
BACKINGS: list[Backing] = ["stream", "dgram", "pipe"]


# -- helpers ------------------------------------------------------------------


def lock_holder(m: MaskFD) -> int:
    """The thread id holding the MaskFD's lock, 0 if free: the robust
    mutex's futex word (the first field of the shared state) holds it."""
    word: int
    with mmap.mmap(lib.mfx_memfd(m._m), 4096) as page:
        (word,) = struct.unpack_from("i", page, 0)
    return word & 0x3FFFFFFF  # FUTEX_TID_MASK


def fork_looping(body: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            while True:
                body()
        finally:
            os._exit(1)
    return pid


def stop_while_holding(m: MaskFD, pid: int) -> bool:
    """SIGSTOP child *pid* (looping over changes of *m*) at a moment it
    holds the lock; False if that never happened within LIMIT."""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        _, status = os.waitpid(pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), status
        if lock_holder(m) == pid:
            return True
        os.kill(pid, signal.SIGCONT)
    return False


def fork_stopped_holder(m: MaskFD) -> int:
    """Fork a child that holds *m*'s lock and is stopped there, every time:
    it writes its thread id into the lock word (the lock's whole state, so
    this is a holder to every waiter) and stops itself.  Once continued it
    exits, a holder that died holding the lock.  (A stop timed from outside,
    as stop_while_holding does, can miss for seconds on a loaded machine.)"""
    memfd = lib.mfx_memfd(m._m)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            with mmap.mmap(memfd, 4096) as page:
                struct.pack_into("i", page, 0, os.getpid())
            os.kill(os.getpid(), signal.SIGSTOP)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), status
    assert lock_holder(m) == pid
    return pid


def kill_and_reap(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def shown(m: MaskFD) -> int:
    return by_poll(m.fileno())


# -- failure is never read from errno after the call ---------------------------


def test_creation_failure_survives_a_handler_that_touches_errno() -> None:
    """A signal handler may run between a cffi call's return and the next
    line and overwrite ffi.errno.  Simulated deterministically: a profile
    hook runs right after every C call returns and sets ffi.errno."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds = {int(n) for n in os.listdir("/proc/self/fd")}
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(fds) + 1, hard))
    fillers = []
    try:
        while True:
            try:
                fillers.append(os.dup(0))
            except OSError:
                break

        def hook(frame: Any, event: str, arg: Any) -> None:
            if event == "c_return":
                ffi.errno = errno.EXDEV  # type: ignore[attr-defined]

        sys.setprofile(hook)
        try:
            with pytest.raises(OSError) as info:
                MaskFD()
        finally:
            sys.setprofile(None)
        assert info.value.errno == errno.EMFILE, info.value
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- fork: the parent knows at the moment of the write -------------------------


def _hold_fork_os(release: int) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.read(release, 1)
        os._exit(0)
    return pid


def _hold_fork_c(release: int) -> int:
    """A fork from C: no Python at-fork hook runs in parent or child."""
    pid = ctypes.CDLL(None, use_errno=True).fork()
    assert pid >= 0
    if pid == 0:  # pragma: no cover - the child
        os.read(release, 1)
        os._exit(0)
    return int(pid)


def _child_reads(release: int) -> None:  # pragma: no cover - the child
    os.read(release, 1)


class _MPFork:
    def __call__(self, release: int) -> Any:
        proc = multiprocessing.get_context("fork").Process(target=_child_reads, args=(release,))
        proc.start()
        return proc


FORKERS: dict[str, Callable[[int], Any]] = {
    "os.fork": _hold_fork_os,
    "C fork": _hold_fork_c,
    "mp fork": _MPFork(),
}


@pytest.mark.parametrize("forker", list(FORKERS))
@pytest.mark.parametrize(
    ("backing", "bit", "before"),
    [
        ("stream", ERR, IN),
        ("pipe", HUP, IN),
        ("pipe", HUP, 0),
        ("dgram", ERR, IN),
    ],
)
def test_write_right_after_fork_shows_or_fails_changing_nothing(
    forker: str, backing: Backing, bit: int, before: int
) -> None:
    """Right after a fork, while the child still holds copies of every fd: a
    write that returns shows what it stored; one that raises changed
    nothing.  Repeated: the child's own after-fork hook races the write."""
    for _ in range(10):
        release_r, release_w = os.pipe()
        with MaskFD(before, 5, backing=backing) as m:
            child = FORKERS[forker](release_r)
            try:
                old = (m.read(), shown(m))
                try:
                    m.set(bit)
                except OSError as exc:
                    assert exc.errno in (errno.EOPNOTSUPP, errno.EBUSY), exc
                    assert f"cannot show {event_names(bit)}" in str(exc), exc  # that bit only
                    assert (m.read(), shown(m)) == old
                else:
                    assert m.read() == (before | bit, 5)
                    assert shown(m) & (before | bit) == before | bit, hex(shown(m))
            finally:
                os.write(release_w, b"x")
                if isinstance(child, int):
                    os.waitpid(child, 0)
                else:
                    child.join(LIMIT)
                os.close(release_r)
                os.close(release_w)
            # and the MaskFD still works in the parent
            m.write(IN, 6)
            assert m.read() == (IN, 6)
            assert shown(m) & IN


@pytest.mark.parametrize(("backing", "bit"), [("stream", ERR), ("pipe", HUP)])
def test_a_refused_last_close_bit_takes_back_the_bits_shown_before_it(
    backing: Backing, bit: int
) -> None:
    """set(IN | bit) from nothing while a child forked from C (no at-fork
    hook told the state it is shared) holds a copy of the peer: IN shows
    first, then the bit cannot (the copy keeps the peer alive), and the
    refusal takes IN back: nothing stored, nothing shown."""
    release_r, release_w = os.pipe()
    try:
        with MaskFD(0, 5, backing=backing) as m:
            child = _hold_fork_c(release_r)
            try:
                old = (m.read(), shown(m))
                with pytest.raises(OSError) as info:
                    m.set(IN | bit)
                assert info.value.errno == errno.EBUSY, info.value
                assert f"cannot show {event_names(bit)}" in str(info.value)
                assert (m.read(), shown(m)) == old
            finally:
                os.write(release_w, b"x")
                os.waitpid(child, 0)
    finally:
        os.close(release_r)
        os.close(release_w)


# -- a holder SIGKILLed inside a change ----------------------------------------

WRITERS: dict[Backing, list[tuple[int, int]]] = {
    "stream": [(IN, 1), (0, 2), (PRI | OUT, 3)]
    if kernel_has_unix_oob()
    else [(IN, 1), (0, 2), (OUT, 3)],
    "dgram": [(IN, 1), (0, 2), (ERR | IN, 3), (OUT, 4), (ERR, 5)],
    "pipe": [(IN, 1), (0, 2)],
}
ROUNDS = [pytest.param(4, id="ci"), pytest.param(300, id="full", marks=pytest.mark.slow)]


@pytest.mark.parametrize("rounds", ROUNDS)
@pytest.mark.parametrize("backing", BACKINGS)
def test_holder_killed_while_holding_the_lock(backing: Backing, rounds: int) -> None:
    """Stop a forked writer at a moment it holds the lock (so the kill lands
    inside a change, at whatever step), SIGKILL it.  The survivor reads one
    of the pairs written, whole; the fd shows it; every later write shows."""
    pairs = WRITERS[backing]
    with MaskFD(backing=backing) as m:
        recoveries0 = lib.mfx_recoveries(m._m)
        landed = 0
        for r in range(rounds):
            start = pairs[r % len(pairs)]
            m.write(*start)
            cycle = itertools.cycle(pairs[r % len(pairs) :] + pairs[: r % len(pairs)])

            def write_next(cycle: Iterator[tuple[int, int]] = cycle) -> None:
                m.write(*next(cycle))

            pid = fork_looping(write_next)
            held = stop_while_holding(m, pid)
            kill_and_reap(pid)
            landed += held
            stored = m.read()  # recovers
            assert tuple(stored) in pairs, (r, stored)  # never torn
            assert shown(m) & stored.events == stored.events, (r, stored, hex(shown(m)))
            for pair in pairs:
                m.write(*pair)
                assert m.read() == pair
                assert_shows(m)
        assert landed >= rounds // 2, landed
        assert lib.mfx_recoveries(m._m) - recoveries0 >= landed


# -- edge-triggered epoll sees every bit the stored mask gains -----------------


def _reachable(backing: Backing) -> Iterator[int]:
    for old in range(32):
        try:
            with MaskFD(old, backing=backing):
                pass
        except OSError:
            continue
        yield old


@pytest.mark.parametrize("backing", BACKINGS)
def test_every_gained_bit_is_an_edge(backing: Backing) -> None:
    """For every mask a backing shows and every bit it lacks: an EPOLLET
    waiter interested in that bit (only, or in all) gets an edge carrying
    it when the stored mask gains it, even if the fd already showed it as
    an extra."""
    checked = 0
    for old in _reachable(backing):
        for bit in (IN, PRI, OUT, ERR, HUP):
            if old & bit:
                continue
            for interest in (bit & (IN | PRI | OUT), IN | PRI | OUT):
                with MaskFD(old, backing=backing) as m, select.epoll() as ep:
                    ep.register(m.fileno(), interest | select.EPOLLET)
                    ep.poll(0)  # consume the edge of registering
                    assert ep.poll(0) == []
                    try:
                        m.set(bit)
                    except OSError:
                        continue
                    ready = ep.poll(0)
                    got = ready[0][1] if ready else 0
                    assert got & bit, (
                        f"{backing}: {old:#x} + {bit:#x} (interest {interest:#x}): "
                        f"no edge, epoll {got:#x}, poll {shown(m):#x}"
                    )
                    checked += 1
    assert checked >= 8


# -- a stopped holder does not freeze the others past a signal -----------------


class Alarm(Exception):
    pass


def _entry_points(m: MaskFD) -> dict[str, Callable[[], object]]:
    return {
        "write": lambda: m.write(IN, 1),
        "set": lambda: m.set(IN),
        "clear": lambda: m.clear(IN),
        "update": lambda: m.update(set=IN, data=3),
        "read": m.read,
        "events": lambda: m.events,
        "data": lambda: m.data,
        "read_bytes": m.read_bytes,
        "write_bytes": lambda: m.write_bytes(pack_mask(IN, 2)),
        "limits": m.limits,
        "repr": lambda: repr(m),
        "close": m.close,
    }


@pytest.mark.parametrize("entry", list(_entry_points(MaskFD.__new__(MaskFD))))
def test_raising_handler_gets_out_of_a_wait_for_a_stopped_holder(entry: str) -> None:
    with MaskFD(backing="stream") as m:
        pid = fork_stopped_holder(m)
        resume = None
        try:

            def raise_alarm(signum: int, frame: Any) -> None:
                raise Alarm

            old = signal.signal(signal.SIGALRM, raise_alarm)
            # failsafe: after LIMIT s let the holder go, so a broken build
            # fails this test instead of hanging the suite
            resume = threading.Timer(LIMIT, os.kill, (pid, signal.SIGCONT))
            resume.start()
            started = time.monotonic()
            try:
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                with pytest.raises(Alarm):
                    _entry_points(m)[entry]()
                    time.sleep(LIMIT)  # the call returned: wait for the alarm
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
            elapsed = time.monotonic() - started
            assert elapsed < LIMIT / 2, f"the handler's exception took {elapsed:.1f} s"
        finally:
            if resume is not None:
                resume.cancel()
                resume.join()
            kill_and_reap(pid)
        # the holder died holding the lock: the next call recovers
        if not m.closed:
            m.write(OUT, 9)
            assert m.read() == (OUT, 9)
            assert_shows(m)


@pytest.mark.parametrize("backing", BACKINGS)
def test_close_does_not_wait_for_a_stopped_holder_in_another_process(backing: Backing) -> None:
    """close() needs the lock only against this process's own threads: a
    holder in another process, stopped for good (or a lie written into the
    lock word), uses none of this process's fds.  It waited for it forever
    (ValueError-free, but a close() that never returns)."""
    with MaskFD(backing=backing) as m:
        fds = [m.fileno(), lib.mfx_memfd(m._m)]
        pid = fork_stopped_holder(m)
        try:
            closer = threading.Thread(target=m.close, daemon=True)
            started = time.monotonic()
            closer.start()
            closer.join(LIMIT / 2)
            elapsed = time.monotonic() - started
            assert not closer.is_alive(), "close() waited for the stopped holder"
            assert elapsed < 1.0, f"close() took {elapsed:.2f} s"
            assert m.closed
            for fd in fds:
                with pytest.raises(OSError):
                    os.fstat(fd)
        finally:
            kill_and_reap(pid)  # lets a close() still waiting go, on a red run


# -- subclasses travel to multiprocessing children -----------------------------


class Sub(MaskFD):
    """A subclass with a __dict__."""

    def describe(self) -> str:
        return f"sub {self.events}"


def _subclass_child(mask: Any, conn: Any) -> None:  # pragma: no cover - the child
    conn.send((type(mask).__name__, getattr(mask, "tag", None), tuple(mask.read())))
    mask.write(OUT, 77)
    got = conn.recv()
    conn.send((type(got).__name__, tuple(got.read())))
    got.set(IN)
    got.close()
    mask.close()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_subclass_travels_as_itself(method: str) -> None:
    ctx: Any = multiprocessing.get_context(method)
    parent, child_end = ctx.Pipe()
    with Sub(IN, 5) as m, Sub(backing="dgram") as other:
        m.tag = "hello"  # type: ignore[attr-defined]
        proc = ctx.Process(target=_subclass_child, args=(m, child_end))
        proc.start()
        try:
            assert parent.poll(30)
            assert parent.recv() == ("Sub", "hello", (IN, 5))
            parent.send(other)
            assert parent.poll(30)
            assert parent.recv() == ("Sub", (0, 0))
            proc.join(30)
            assert proc.exitcode == 0
            assert m.read() == (OUT, 77)
            assert other.read() == (IN, 0)
        finally:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
            resource_sharer.stop(timeout=10)


def test_subclass_still_refuses_plain_pickle() -> None:
    import pickle

    with Sub() as m, pytest.raises(TypeError):
        pickle.dumps(m)


# -- int subclasses and other objects, as CPython's int converters -------------


class W(int):
    def __int__(self) -> int:  # a lie CPython's converters never ask
        return 999

    def __index__(self) -> int:
        return 998


class Idx:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def test_int_subclass_is_taken_at_its_value_everywhere() -> None:
    with MaskFD(W(IN), W(7), uses=W(IN | OUT)) as m:
        assert m.read() == (IN, 7)
        assert m.backing == "stream"
        m.write(W(OUT), W(2))
        assert m.read() == (OUT, 2)
        m.set(W(IN))
        assert m.read() == (IN | OUT, 2)
        m.clear(W(OUT))
        assert m.read() == (IN, 2)
        m.update(set=W(OUT), clear=W(IN), data=W(4))
        assert m.read() == (OUT, 4)
        assert m.read_bytes(W(12)) == pack_mask(OUT, 4)
        assert_shows(m)
    assert pack_mask(W(IN), W(3)) == struct.pack("=IQ", IN, 3)
    assert choose_backing(W(IN)) == "pipe"
    with MaskFD(True, backing=choose_backing(W(IN | HUP))) as p:
        assert p.read() == (IN, 0)


def test_index_objects_are_accepted() -> None:
    with MaskFD(Idx(IN), Idx(3), uses=Idx(IN | OUT)) as m:  # type: ignore[arg-type]
        assert m.read() == (IN, 3)
        m.write(Idx(0), Idx(4))  # type: ignore[arg-type]
        m.set(Idx(OUT))  # type: ignore[arg-type]
        m.clear(Idx(0))  # type: ignore[arg-type]
        m.update(set=Idx(IN), clear=Idx(OUT), data=Idx(5))  # type: ignore[arg-type]
        assert m.read() == (IN, 5)
        assert len(m.read_bytes(Idx(20))) == 12  # type: ignore[arg-type]
    assert pack_mask(Idx(1), Idx(2)) == struct.pack("=IQ", 1, 2)  # type: ignore[arg-type]


BAD = [1.0, Decimal(1), Decimal("1.5"), "1", None, b"1", 1j]


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_non_integers_are_type_errors_changing_nothing(bad: object) -> None:
    calls: list[Callable[[MaskFD], object]] = [
        lambda m: MaskFD(bad),  # type: ignore[arg-type]
        lambda m: MaskFD(0, bad),  # type: ignore[arg-type]
        *([] if bad is None else [lambda m: MaskFD(uses=bad)]),  # type: ignore[arg-type]  # None: the default
        lambda m: m.write(bad),  # type: ignore[arg-type]
        lambda m: m.write(IN, bad),  # type: ignore[arg-type]
        lambda m: m.set(bad),  # type: ignore[arg-type]
        lambda m: m.clear(bad),  # type: ignore[arg-type]
        lambda m: m.update(set=bad),  # type: ignore[arg-type]
        lambda m: m.update(clear=bad),  # type: ignore[arg-type]
        *([] if bad is None else [lambda m: m.update(data=bad)]),  # None: keep the data
        lambda m: m.read_bytes(bad),  # type: ignore[arg-type]
        lambda m: pack_mask(bad),  # type: ignore[arg-type]
        lambda m: pack_mask(0, bad),  # type: ignore[arg-type]
        lambda m: choose_backing(bad),  # type: ignore[arg-type]
    ]
    with MaskFD(IN | OUT, 7) as m:
        before = (m.read(), shown(m), m.syscalls)
        for call in calls:
            with pytest.raises(TypeError):
                call(m)
            assert (m.read(), shown(m), m.syscalls) == before


# -- a holder SIGKILLed at every step of a change, deterministically -----------

# Masks each backing moves between; every ordered pair is a change, killed
# at each of its steps in turn.  (pipe: HUP only changes in its creator, so
# the forked writers keep it as it is.)
STEP_MASKS: dict[Backing, list[int]] = {
    "stream": [0, IN, OUT, IN | OUT, HUP, ERR]
    + ([PRI, PRI | OUT] if kernel_has_unix_oob() else []),
    "dgram": [0, IN, OUT, IN | OUT, ERR, ERR | IN, HUP, HUP | ERR],
    "pipe": [0, IN, HUP, HUP | IN],
}


def _killed_at(m: MaskFD, steps: int, pair: tuple[int, int]) -> bool:
    """Fork a child that dies at the *steps*-th step of ``m.write(*pair)``;
    False if the change had fewer steps (the child finished it)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            lib.mfx_test_die_after(steps)
            m.write(*pair)
            lib.mfx_test_die_after(0)
        finally:
            os._exit(7)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.waitstatus_to_exitcode(status) == 7
    return False


@pytest.mark.parametrize("backing", BACKINGS)
def test_killed_at_every_step_of_every_change(backing: Backing) -> None:
    """A holder SIGKILLed after any syscall of a change, or between storing
    the new pair, staging it and committing it: the survivor reads the old
    pair or the new one (recovery rolls a staged change forward where it
    can), whole, and the fd shows it; recovery counts the death; the
    MaskFD then takes and shows every mask (the datagram peer reconnected,
    the queues consistent)."""
    masks = STEP_MASKS[backing]
    kills = 0
    for old, new in itertools.permutations(masks, 2):
        if backing == "pipe" and (old ^ new) & HUP:
            continue
        for steps in itertools.count(1):
            try:
                m = MaskFD(old, 1, backing=backing)
            except OSError:
                break
            with m:
                try:
                    with MaskFD(new, backing=backing):
                        pass
                    if backing != "pipe" and old & HUP and not new & HUP:
                        raise OSError  # HUP is final on sockets
                except OSError:
                    break
                recoveries = lib.mfx_recoveries(m._m)
                died = _killed_at(m, steps, (new, 2))
                stored = m.read()
                where = f"{backing} {old:#x} -> {new:#x}, killed at step {steps}: {stored}"
                if died:
                    kills += 1
                    assert lib.mfx_recoveries(m._m) == recoveries + 1, where
                assert tuple(stored) in ((old, 1), (new, 2)), where
                assert_shows(m)
                for mask in masks:
                    if backing == "pipe" and (mask ^ old) & HUP:
                        continue
                    try:
                        m.write(mask, 3)
                    except OSError as exc:
                        assert exc.errno in (errno.ENOTRECOVERABLE, errno.EOPNOTSUPP), (where, exc)
                        continue
                    assert m.read() == (mask, 3), where
                    assert_shows(m)
            if not died:
                break
    assert kills >= 8, kills
