"""MaskFD under threads and processes: no lost wakeup, one object everywhere."""

from __future__ import annotations

import array
import errno
import fcntl
import multiprocessing
import os
import random
import select
import signal
import termios
import threading
import time
from collections.abc import Callable
from multiprocessing import resource_sharer
from typing import Any

import pytest

from eventfd_ext import MaskFD
from eventfd_ext._backings import Backing
from maskfd_helpers import (
    ERR,
    HUP,
    IN,
    OUT,
    PRI,
    assert_shows,
    by_poll,
    kernel_has_unix_oob,
)

WAIT_MS = 10_000  # a wakeup that takes longer than this is a lost one


def wait_for(fd: int, bit: int) -> int:
    """Block in poll(2) until *bit* shows; 0 after WAIT_MS.  (poll always
    reports HUP and ERR, so it may return early: wait again.)"""
    poller = select.poll()
    poller.register(fd, bit)
    deadline = time.monotonic() + WAIT_MS / 1000
    while (left := deadline - time.monotonic()) > 0:
        ready = poller.poll(left * 1000)
        if ready and ready[0][1] & bit:
            return ready[0][1]
    return 0


def handshakes(mask: MaskFD, rounds: int, wait: Callable[[int, int], int]) -> None:
    """The main thread sets IN and waits for the peer thread's OUT; the peer
    thread, blocked in *wait* on fileno(), wakes for IN, clears it, sets OUT.
    A lost wakeup turns into a timeout, which fails the test."""
    failures: list[str] = []

    def peer() -> None:
        for i in range(rounds):
            if not wait(mask.fileno(), IN) & IN:
                failures.append(f"peer missed IN in round {i}")
                return
            mask.update(set=OUT, clear=IN)

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    for i in range(rounds):
        mask.update(set=IN, clear=OUT)
        if not wait(mask.fileno(), OUT) & OUT or failures:
            failures.append(f"main missed OUT in round {i}")
            break
        assert not by_poll(mask.fileno()) & IN  # the peer's clear is seen
    thread.join(WAIT_MS / 1000)
    assert not thread.is_alive(), "peer thread hung"
    assert not failures, failures


def epoll_wait(fd: int, bit: int) -> int:
    with select.epoll() as ep:
        ep.register(fd, bit)
        ready = ep.poll(WAIT_MS / 1000)
    return ready[0][1] if ready else 0


@pytest.mark.parametrize("wait", [wait_for, epoll_wait], ids=["poll", "epoll"])
@pytest.mark.parametrize("backing", ["stream", "dgram"])
def test_no_lost_wakeup_between_threads(backing: Backing, wait: Callable[[int, int], int]) -> None:
    with MaskFD(backing=backing) as m:
        handshakes(m, 2000, wait)


class EdgeWaiter:
    """One persistent edge-triggered epoll registration: each wait returns
    only for a new edge (a clear-to-set transition of the bit)."""

    def __init__(self, fd: int, bit: int) -> None:
        self.ep = select.epoll()
        self.ep.register(fd, bit | select.EPOLLET)

    def __call__(self, fd: int, bit: int) -> int:
        ready = self.ep.poll(WAIT_MS / 1000)
        return ready[0][1] if ready else 0


@pytest.mark.parametrize("backing", ["stream", "dgram"])
def test_no_lost_wakeup_edge_triggered(backing: Backing) -> None:
    """Every set is an edge: a waiter that only ever sees edges never hangs."""
    with MaskFD(backing=backing) as m:
        waiters = {IN: EdgeWaiter(m.fileno(), IN), OUT: EdgeWaiter(m.fileno(), OUT)}
        try:
            handshakes(m, 2000, lambda fd, bit: waiters[bit](fd, bit))
        finally:
            for waiter in waiters.values():
                waiter.ep.close()


@pytest.mark.slow
@pytest.mark.parametrize("backing", ["stream", "dgram"])
def test_no_lost_wakeup_between_threads_large(backing: Backing) -> None:
    with MaskFD(backing=backing) as m:
        handshakes(m, 100_000, wait_for)


def test_pipe_no_lost_wakeup() -> None:
    """Only IN and HUP on a pipe: the peer answers by raising HUP."""
    with MaskFD(backing="pipe") as m:
        done = threading.Event()
        missed: list[int] = []

        def peer() -> None:
            for i in range(2000):
                if not wait_for(m.fileno(), IN) & IN:
                    missed.append(i)
                    return
                m.update(set=HUP, clear=IN)
            done.set()

        thread = threading.Thread(target=peer, daemon=True)
        thread.start()
        for _ in range(2000):
            m.update(set=IN, clear=HUP)
            if not wait_for(m.fileno(), HUP) & HUP or missed:
                break
        thread.join(WAIT_MS / 1000)
        assert done.is_set(), missed
        assert not missed, missed


def test_writer_threads_leave_read_and_readiness_in_agreement() -> None:
    with MaskFD() as m:

        def writer(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(2000):
                events = rng.choice([0, IN, OUT, IN | OUT])
                how = rng.randrange(3)
                if how == 0:
                    m.write(events, seed)
                elif how == 1:
                    m.set(events)
                else:
                    m.clear(events)

        threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        assert_shows(m)
        # one more write from here: still exact
        m.write(IN, 99)
        assert by_poll(m.fileno()) == IN


def queued_bytes(fd: int) -> int:
    """Bytes queued to the handed-out fd (FIONREAD)."""
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


needs_oob = pytest.mark.skipif(not kernel_has_unix_oob(), reason="needs AF_UNIX MSG_OOB")


@needs_oob
def test_stored_changes_never_fail_under_concurrent_changes() -> None:
    """12 threads change IN, OUT and PRI of one stream MaskFD at once.
    Every change is stored, so none may raise (a BlockingIOError would say
    that each IN gained while PRI shows queued one more byte for its edge,
    until the peer's send buffer filled), and afterwards
    what the fd shows is the stored bits (PRI's documented IN aside), with
    no pile of bytes behind them."""
    rounds = 400
    with MaskFD(PRI) as m:
        errors: list[BaseException] = []
        start = threading.Barrier(12)

        def changer(seed: int) -> None:
            rng = random.Random(seed)
            start.wait(10)
            try:
                for i in range(rounds):
                    if seed == 0 and i % 100 == 99:
                        m.clear(PRI)  # drains the queue; PRI comes back at once
                        m.set(PRI)
                    bit = rng.choice([IN, IN, IN, OUT])
                    m.set(bit)
                    m.clear(bit)
                    if seed % 4 == 1:
                        m.update(set=IN | OUT, data=i)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=changer, args=(s,)) for s in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        assert not errors, errors[:3]
        assert_shows(m)
        events = m.read().events
        assert by_poll(m.fileno()) == events | IN  # PRI brings IN, nothing else
        assert queued_bytes(m.fileno()) <= 2
        m.write(0)
        assert by_poll(m.fileno()) == 0
        assert queued_bytes(m.fileno()) == 0


@needs_oob
def test_every_in_gained_beside_pri_is_an_edge_without_growing_the_queue() -> None:
    """While PRI shows (and with it IN), each set(IN) must still be an edge
    for an EPOLLET waiter on IN, and its cost must not pile up: 2,000 cycles
    (far past the ~280 that filled the peer's send buffer) keep at most 2
    bytes queued, and every one is stored without error."""
    with MaskFD(PRI) as m, select.epoll() as ep:
        ep.register(m.fileno(), select.EPOLLIN | select.EPOLLET)
        ep.poll(0)
        for i in range(2000):
            m.set(IN)
            ready = ep.poll(0)
            assert ready, f"cycle {i}: no edge"
            assert ready[0][1] & IN, f"cycle {i}: no edge"
            assert queued_bytes(m.fileno()) <= 2, f"cycle {i}"
            m.clear(IN)
            assert by_poll(m.fileno()) == IN | PRI  # IN: PRI's documented extra
        assert m.read().events == PRI
        m.clear(PRI)
        assert by_poll(m.fileno()) == 0
        assert queued_bytes(m.fileno()) == 0


def test_close_racing_with_writers_is_safe() -> None:
    for _ in range(20):
        m = MaskFD()
        errors: list[BaseException] = []
        start = threading.Barrier(3)

        def writer(
            m: MaskFD = m, start: threading.Barrier = start, errors: list[BaseException] = errors
        ) -> None:
            start.wait(5)
            try:
                for _ in range(500):
                    m.set(IN)
                    m.clear(IN)
            except ValueError as exc:  # "closed": the only allowed outcome
                if "closed" not in str(exc):
                    errors.append(exc)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer) for _ in range(2)]
        for t in threads:
            t.start()
        start.wait(5)
        m.close()
        for t in threads:
            t.join(10)
            assert not t.is_alive()
        assert not errors, errors


# -- processes ----------------------------------------------------------------


def fork_child(body: Callable[[], int]) -> int:
    """Fork and run *body* in the child; returns the child's pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            code = body()
        finally:
            os._exit(code)
    return pid


def reap(pid: int) -> int:
    """The child's exit status; kills it and fails if it hangs."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)  # polling a child's exit: no fd to wait on
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("forked child hung")


def run_child(body: Callable[[], int]) -> int:
    """Fork, run *body* in the child, return its exit status (bounded)."""
    return reap(fork_child(body))


@pytest.mark.parametrize("backing", ["stream", "dgram", "pipe"])
def test_fork_shares_one_object(backing: Backing) -> None:
    with MaskFD(0, 1, backing=backing) as m:

        def child() -> int:
            if m.read() != (0, 1):
                return 2
            m.write(IN, 2)
            return 0 if by_poll(m.fileno()) == IN else 3

        assert run_child(child) == 0
        assert m.read() == (IN, 2)  # the child's write, seen here
        assert by_poll(m.fileno()) == IN
        m.write(0, 3)

        def child2() -> int:
            return 0 if m.read() == (0, 3) and by_poll(m.fileno()) == 0 else 4

        assert run_child(child2) == 0


def test_fork_handshakes_between_processes() -> None:
    """Parent and child ping-pong IN and OUT on the same MaskFD."""
    rounds = 300
    with MaskFD() as m:

        def child() -> int:
            for _ in range(rounds):
                if not wait_for(m.fileno(), IN) & IN:
                    return 5
                m.update(set=OUT, clear=IN)
            return 0

        pid = fork_child(child)
        try:
            for i in range(rounds):
                m.update(set=IN, clear=OUT)
                assert wait_for(m.fileno(), OUT) & OUT, f"missed OUT in round {i}"
        finally:
            status = reap(pid)
        assert status == 0


def test_pipe_backing_across_fork() -> None:
    """The creator holds the writer; a child sets IN through a writer of its
    own, sees the creator's HUP, and is refused changing HUP."""
    with MaskFD(backing="pipe") as m:
        m.set(HUP)

        def child() -> int:
            if by_poll(m.fileno()) != HUP:
                return 2
            try:
                m.clear(HUP)
            except OSError as exc:
                if exc.errno != errno.EPERM:
                    return 3
            else:
                return 4
            m.set(IN)
            return 0 if by_poll(m.fileno()) == IN | HUP else 5

        assert run_child(child) == 0
        assert m.read().events == IN | HUP
        m.clear(HUP)  # the creator may
        assert by_poll(m.fileno()) == IN

        def child2() -> int:  # the child's copy of the writer was closed:
            return 0  # so the creator's close below still makes HUP

        assert run_child(child2) == 0
        m.set(HUP)
        assert by_poll(m.fileno()) == IN | HUP


def test_stream_err_refused_once_shared() -> None:
    with MaskFD(IN) as m:
        assert run_child(lambda: 0) == 0
        with pytest.raises(OSError, match="POLLERR") as info:
            m.set(ERR)
        assert info.value.errno == errno.EOPNOTSUPP
        assert m.read() == (IN, 0)


def spawned_child(mask: MaskFD, conn) -> None:  # type: ignore[no-untyped-def]
    conn.send(tuple(mask.read()))
    conn.send(by_poll(mask.fileno()))
    mask.write(IN | OUT, 0xC0FFEE)
    conn.send("written")
    received = conn.recv()  # a MaskFD sent through the pipe
    received.set(IN)
    conn.send(tuple(received.read()))
    received.close()
    mask.close()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_child_gets_the_same_object(method: str) -> None:
    ctx: Any = multiprocessing.get_context(method)
    parent, child_end = ctx.Pipe()
    with MaskFD(OUT, 7) as m, MaskFD(backing="dgram") as other:
        proc = ctx.Process(target=spawned_child, args=(m, child_end))
        proc.start()
        try:
            assert parent.poll(30), "child did not start"
            assert parent.recv() == (OUT, 7)
            assert parent.recv() == OUT
            assert parent.poll(30)
            assert parent.recv() == "written"
            assert m.read() == (IN | OUT, 0xC0FFEE)
            assert by_poll(m.fileno()) == IN | OUT
            parent.send(other)  # through a connection: resource_sharer
            assert parent.poll(30)
            assert parent.recv() == (IN, 0)
            assert other.read() == (IN, 0)
            assert by_poll(other.fileno()) == IN
        finally:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
            # the connection used the resource sharer's thread: stop it, so
            # that later tests fork a single-threaded process
            resource_sharer.stop(timeout=10)
        assert proc.exitcode == 0


@pytest.mark.parametrize("backing", ["stream", "dgram", "pipe"])
def test_holder_killed_inside_a_change_wedges_no_one(backing: Backing) -> None:
    """SIGKILL a forked writer while it hammers the state: the robust lock
    lets the next caller in, which reads back what the kernel shows and
    makes it show the stored events again."""
    from eventfd_ext._shim import lib

    masks = [IN, 0] if backing == "pipe" else [IN, OUT, IN | OUT, 0]
    with MaskFD(backing=backing) as m:
        for attempt in range(30):

            def child() -> int:
                while True:
                    for events in masks:
                        m.write(events)

            start = m.syscalls
            pid = fork_child(child)
            deadline = time.monotonic() + WAIT_MS / 1000
            while m.syscalls - start < 200 and time.monotonic() < deadline:
                time.sleep(0.001)  # let the child get going; no signal to wait on
            os.kill(pid, signal.SIGKILL)
            assert reap(pid) == -signal.SIGKILL

            def check(attempt: int = attempt) -> int:  # in a child too: a wedged lock is a hang
                for events in masks:
                    m.write(events, attempt)
                    assert_shows(m)
                return 0

            assert run_child(check) == 0, "the next writer failed after the kill"
            if lib.mfx_recoveries(m._m) >= 3:
                break
        # the kill landed inside a change at least once, and was recovered
        assert lib.mfx_recoveries(m._m) >= 1
        for events in masks:
            m.write(events)
            assert_shows(m)
