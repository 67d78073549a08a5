"""Faults: fd exhaustion, closing an object another thread is blocked on, a
child killed in the middle of writing, and objects used on both sides of a
fork.  (Ctrl-C during every blocking call: tests/test_concurrency.py.)
"""

from __future__ import annotations

import errno
import mmap
import os
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

import eventfd_ext
from _kernel import (
    TIMEOUT,
    Child,
    blocked_in,
    fd_limit,
    in_thread,
    join_thread,
    open_fds,
    record,
)
from eventfd_ext import EventFD, eventfd

MAX = 2**64 - 2

# -- fd exhaustion -----------------------------------------------------------


@pytest.fixture
def few_fds() -> Iterator[int]:
    """RLIMIT_NOFILE 16 above the highest open fd; restored after."""
    with fd_limit(16) as limit:
        yield limit


def test_fd_exhaustion_is_a_clean_oserror_and_leaks_nothing(few_fds: int) -> None:
    before = open_fds()
    made: list[EventFD] = []
    try:
        with pytest.raises(OSError) as info:
            for _ in range(few_fds):
                made.append(EventFD())  # noqa: PERF401  (kept: those made before EMFILE)
        assert info.value.errno == errno.EMFILE
        assert made, "not even one EventFD before EMFILE"
        with pytest.raises(OSError) as info:
            eventfd(0)
        assert info.value.errno == errno.EMFILE
        # What needs no new fd still works; what does (fdinfo) fails cleanly.
        ev = made[0]
        ev.write(3)
        assert ev.read() == 3
        assert ev.wait(0) is False
        with pytest.raises(OSError) as info:
            ev.peek()
        assert info.value.errno == errno.EMFILE
        assert "unreadable" in repr(ev)
        # from_fd must read fdinfo: refused, and the fd stays the caller's.
        fd = made.pop().detach()
        with pytest.raises(OSError) as info:
            EventFD.from_fd(fd)
        assert info.value.errno == errno.EMFILE
        os.fstat(fd)  # still open
        os.close(fd)
        exhausted_at = len(made) + 1
    finally:
        for ev in made:
            ev.close()
    assert open_fds() == before
    record(
        "faults.fd_exhaustion",
        {
            "eventfds_before_EMFILE": exhausted_at,
            "fds_before": len(before),
            "fds_after": len(open_fds()),
        },
    )


# -- closing an object another thread is blocked on ---------------------------


@pytest.fixture
def sigusr1_noop() -> Iterator[None]:
    """A SIGUSR1 handler that returns normally (its only effect: EINTR)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal tests need the main thread")
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, old)


def _reuse(fd: int, count: int) -> EventFD:
    """A new eventfd (count *count*) on exactly the freed number *fd*, as
    the next open() would usually get it (dup2 makes it certain)."""
    spare = os.eventfd(count)
    if spare != fd:
        os.dup2(spare, fd)
        os.close(spare)
    return EventFD.from_fd(fd)


@pytest.mark.parametrize(
    "call",
    [
        lambda ev: ev.read(),
        lambda ev: ev.read(timeout=60),
        lambda ev: ev.wait(60),
        lambda ev: ev.wait(),
    ],
    ids=["read", "read_timeout", "wait_timeout", "wait"],
)
def test_close_wakes_a_sleeper_then_the_number_is_reused(call: Callable[[EventFD], object]) -> None:
    """close() wakes a call asleep in poll(2) with ValueError; the new file
    that takes the number afterwards is left alone."""
    ev = EventFD()
    fd = ev.fileno()
    t, out = in_thread(lambda: call(ev))
    assert t.native_id is not None
    blocked_in(t.native_id, ("poll", "ppoll"))
    ev.close()
    join_thread(t)
    assert isinstance(out.get("error"), ValueError), out
    assert "closed" in str(out["error"])
    successor = _reuse(fd, 7)
    try:
        assert successor.peek() == 7
    finally:
        successor.close()


def test_close_during_a_write_blocked_at_the_maximum_keeps_the_number(
    sigusr1_noop: None,
) -> None:
    """The documented exception: eventfd has no non-blocking write, so a
    write waiting for room at the maximum sits in write(2), which close()
    cannot wake.  The number stays the object's until it returns: a signal
    gets it out with ValueError, and only then is the fd closed."""
    ev = EventFD()
    ev.write(MAX)
    fd = ev.fileno()
    t, out = in_thread(lambda: ev.write(1))
    assert t.native_id is not None
    blocked_in(t.native_id, ("write",))
    ev.close()
    assert ev.closed
    assert _kernel_count(fd) == MAX  # still open, still ours: no reuse possible
    signal.pthread_kill(t.ident, signal.SIGUSR1)  # type: ignore[arg-type]
    join_thread(t)
    assert isinstance(out.get("error"), ValueError), out
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by the write as it left


def _kernel_count(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return int(f.read().split("eventfd-count:")[1].split()[0], 16)


# -- a child killed while writing ------------------------------------------


def _value(i: int) -> int:
    return 1 + i % 5


KILLS = [pytest.param(5, id="ci"), pytest.param(200, id="full", marks=pytest.mark.slow)]


@pytest.mark.parametrize("kills", KILLS)
def test_child_killed_mid_write_loses_nothing_written(kills: int) -> None:
    """Each write is all or nothing: after SIGKILL the count is the sum of the
    writes the child finished, plus at most the one it was inside."""
    shared = mmap.mmap(-1, 16)  # (writes done, sum done), updated after each write
    worst = 0
    try:
        for k in range(kills):
            with EventFD() as ev, EventFD() as started:

                def writer(k: int = k) -> None:
                    done = total = 0
                    while True:
                        v = _value(done)
                        ev.write(v)
                        done += 1
                        total += v
                        shared[:16] = struct.pack("QQ", done, total)
                        if done == 100 + 37 * k:
                            started.write(1)

                child = Child(writer)
                try:
                    assert started.read(timeout=TIMEOUT) == 1
                finally:
                    child.close()  # SIGKILL, at whatever point the loop is
                done, total = struct.unpack("QQ", shared[:16])
                count = ev.peek()
                assert count in (total, total + _value(done)), (k, done, total, count)
                worst = max(worst, done)
    finally:
        shared.close()
    record(
        f"faults.killed_writer.{kills}",
        {"kills": kills, "counts_lost": 0, "max_writes_before_kill": worst},
    )


def test_child_killed_blocked_in_write_or_read_changes_nothing() -> None:
    with EventFD() as full, EventFD() as empty:
        full.write(MAX)
        children = [Child(lambda: full.write(1)), Child(lambda: empty.read())]
        try:
            blocked_in(children[0].pid, ("write",), pid=children[0].pid)
            blocked_in(children[1].pid, ("poll", "ppoll"), pid=children[1].pid)
        finally:
            for child in children:
                child.close()
        assert full.peek() == MAX
        assert empty.peek() == 0


# -- fork ------------------------------------------------------------------


def test_after_fork_both_sides_share_one_counter() -> None:
    """Documented: parent and child hold the same eventfd (one kernel
    counter); each closes its own copy without affecting the other."""
    with EventFD() as ev, EventFD() as back:

        def child() -> None:
            assert not ev.closed
            ev.write(5)  # seen by the parent
            assert back.read(timeout=TIMEOUT) == 11  # the parent's write
            ev.close()  # the child's copy only
            assert ev.closed

        c = Child(child)
        try:
            assert ev.read(timeout=TIMEOUT) == 5
            back.write(11)
            c.check()
        finally:
            c.close()
        assert not ev.closed
        ev.write(2)  # the parent's copy is still open
        assert ev.read() == 2


def test_after_fork_a_blocked_child_reader_is_woken_by_the_parent() -> None:
    with EventFD(semaphore=True) as ev:
        children = [Child(lambda: _expect(ev.read(), 1)) for _ in range(2)]
        try:
            for c in children:
                blocked_in(c.pid, ("poll", "ppoll"), pid=c.pid)
            ev.write(2)  # one unit each, in semaphore mode
            for c in children:
                c.check()
        finally:
            for c in children:
                c.close()
        assert ev.peek() == 0


def _expect(got: object, want: object) -> None:
    assert got == want, (got, want)


@pytest.mark.parametrize("cloexec", [True, False])
def test_exec_inherits_only_without_cloexec(cloexec: bool) -> None:
    with EventFD(cloexec=cloexec) as ev:
        root = os.path.dirname(os.path.dirname(eventfd_ext.__file__))
        script = (
            "import sys; from eventfd_ext import EventFD\n"
            f"try:\n    ev = EventFD.from_fd({ev.fileno()})\n"
            "except OSError:\n    sys.exit(3)\n"
            "ev.write(9); ev.close()\n"
        )
        env = dict(os.environ, PYTHONPATH=root)
        out = subprocess.run(
            [sys.executable, "-c", script],
            close_fds=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        if cloexec:
            assert out.returncode == 3, out.stderr
            assert ev.peek() == 0
        else:
            assert out.returncode == 0, out.stderr
            assert ev.read() == 9
