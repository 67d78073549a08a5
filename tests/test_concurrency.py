"""Blocking calls and other threads, signals and processes.

- A blocking call releases the GIL: another thread runs Python meanwhile.
- EINTR: a signal whose handler returns normally does not end the call; it
  is retried and completes (PEP 475).
- A handler's exception (KeyboardInterrupt from Ctrl-C, or any other) leaves
  a blocking read, write or wait promptly, with the counter untouched.

Every blocking call of the public API is covered: EventFD.read() with and
without a timeout, EventFD.wait() with and without one, EventFD.write() at
the maximum count, and the drop-ins eventfd_read / eventfd_write.  The test
knows that the call is blocked from the kernel (/proc/self/task/TID/syscall),
not from a sleep.  No lost counts with several writer threads and forked
writer processes: tests/reliability/test_lost_counts.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pytest

import eventfd_ext
from _kernel import TIMEOUT, blocked_in, in_thread, join_thread, record
from eventfd_ext import Doorbell, EventFD, eventfd_read, eventfd_write

MAX = 2**64 - 2
POLL = ("poll", "ppoll")


@dataclass(frozen=True)
class Blocking:
    """A blocking call: how to set it up, make it, and let it finish."""

    initial: int  # the count before the call (MAX: a write blocks)
    call: Callable[[EventFD], object]
    syscalls: tuple[str, ...]  # what the blocked thread sleeps in
    result: object  # what the call returns once released
    after: int  # the count once released
    kind: type[EventFD | Doorbell] = EventFD


def _spinning(ev: EventFD) -> EventFD:
    ev.spin = 100e-6  # spins (non-blocking reads, yields), then sleeps
    return ev


# Released by writing 7 (reads, waits) or by reading the count (writes).
CALLS = {
    # EventFD sleeps in poll(2) beside its thread's wake-up fd (close()
    # wakes it); the drop-ins block in read(2)/write(2) as os's do, and so
    # does an EventFD write at the maximum (eventfd has no other way).
    "read": Blocking(0, lambda ev: ev.read(), POLL, 7, 0),
    "read_timeout": Blocking(0, lambda ev: ev.read(timeout=3 * TIMEOUT), POLL, 7, 0),
    "wait": Blocking(0, lambda ev: ev.wait(), POLL, True, 7),
    "wait_timeout": Blocking(0, lambda ev: ev.wait(3 * TIMEOUT), POLL, True, 7),
    "write_at_max": Blocking(MAX, lambda ev: ev.write(1), ("write",), None, 1),
    "eventfd_read": Blocking(0, lambda ev: eventfd_read(ev.fileno()), ("read",), 7, 0),
    "eventfd_write_at_max": Blocking(
        MAX, lambda ev: eventfd_write(ev.fileno(), 1), ("write",), None, 1
    ),
    # Given the object, not its number: the call is os's own (its converter
    # calls fileno()), and the drop-in retries it after EINTR.
    "eventfd_read_obj": Blocking(0, lambda ev: eventfd_read(ev), ("read",), 7, 0),
    "eventfd_write_obj_at_max": Blocking(MAX, lambda ev: eventfd_write(ev, 1), ("write",), None, 1),
    "read_spinning": Blocking(0, lambda ev: _spinning(ev).read(), POLL, 7, 0),
    "read_timeout_spinning": Blocking(
        0, lambda ev: _spinning(ev).read(timeout=3 * TIMEOUT), POLL, 7, 0
    ),
    # The Doorbell sleeps on its eventfd in poll(2), and a writer at the
    # maximum on a futex in the shared page.
    "Doorbell.read": Blocking(0, lambda b: b.read(), POLL, 7, 0, Doorbell),
    "Doorbell.read_timeout": Blocking(0, lambda b: b.read(3 * TIMEOUT), POLL, 7, 0, Doorbell),
    "Doorbell.wait": Blocking(0, lambda b: b.wait(), POLL, True, 7, Doorbell),
    "Doorbell.write_at_max": Blocking(MAX, lambda b: b.write(1), ("futex",), None, 1, Doorbell),
}


def _make(spec: Blocking) -> Any:
    ev = spec.kind()
    ev.write(spec.initial)
    return ev


def _release(ev: Any, spec: Blocking) -> None:
    """Let a blocked call finish: make the counter readable or writable."""
    if spec.initial == MAX and isinstance(ev, Doorbell):
        assert ev.try_read() == MAX
    elif spec.initial == MAX:
        with EventFD.from_fd(os.dup(ev.fileno())) as other:
            other.nonblocking = False
            assert other.read() == MAX
    else:
        ev.write(7)


@pytest.fixture
def main_thread_only() -> int:
    """The native id of the thread running the test, which must be the main
    thread (Python runs signal handlers only there)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal tests need the main thread")
    return threading.get_native_id()


class Boom(Exception):
    """Raised by the test's signal handler."""


def _raise_boom(signum: int, frame: FrameType | None) -> None:
    raise Boom


# How the exception arises: Ctrl-C, or any handler that raises.
Handler = Callable[[int, FrameType | None], object]
SIGNAL_KINDS: dict[str, tuple[int, Handler, type[BaseException]]] = {
    "SIGINT": (signal.SIGINT, signal.default_int_handler, KeyboardInterrupt),
    "handler_raises": (signal.SIGUSR1, _raise_boom, Boom),
}


# -- the GIL -------------------------------------------------------------

_GIL_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, time
    from eventfd_ext import Doorbell, EventFD, eventfd_read, eventfd_write
    NR = {nr}
    MAX = 2**64 - 2
    call = {call!r}
    ev = Doorbell() if call.startswith("Doorbell.") else EventFD()
    ev.write(MAX if call.endswith("at_max") else 0)
    if call.endswith("spinning"):
        ev.spin = 100e-6
    calls = {{
        "read": lambda: ev.read(),
        "read_timeout": lambda: ev.read(timeout=600),
        "wait": lambda: ev.wait(),
        "wait_timeout": lambda: ev.wait(600),
        "write_at_max": lambda: ev.write(1),
        "eventfd_read": lambda: eventfd_read(ev.fileno()),
        "eventfd_write_at_max": lambda: eventfd_write(ev.fileno(), 1),
        "eventfd_read_obj": lambda: eventfd_read(ev),
        "eventfd_write_obj_at_max": lambda: eventfd_write(ev, 1),
        "read_spinning": lambda: ev.read(),
        "read_timeout_spinning": lambda: ev.read(timeout=600),
        "Doorbell.read": lambda: ev.read(),
        "Doorbell.read_timeout": lambda: ev.read(600),
        "Doorbell.wait": lambda: ev.wait(),
        "Doorbell.write_at_max": lambda: ev.write(1),
    }}
    t = threading.Thread(target=calls[call])
    t.start()
    # This loop needs the GIL: it only runs if the blocked thread let go.
    while True:
        with open(f"/proc/self/task/{{t.native_id}}/syscall") as f:
            fields = f.read().split()
        if fields[0] != "running" and int(fields[0]) in NR:
            break
        time.sleep(0.0005)
    spins = sum(range(100_000))  # Python work while the other thread blocks
    if call.endswith("at_max") and isinstance(ev, Doorbell):
        ev.try_read()
    elif call.endswith("at_max"):
        os.set_blocking(ev.fileno(), False)
        ev.read()
    else:
        ev.write(7)
    t.join()
    ev.close()
    print("ok", spins)
    """
)


@pytest.mark.parametrize("name", list(CALLS))
def test_blocking_call_releases_the_gil(name: str) -> None:
    from _kernel import syscall_numbers

    script = _GIL_SCRIPT.format(nr=syscall_numbers(*CALLS[name].syscalls), call=name)
    root = os.path.dirname(os.path.dirname(eventfd_ext.__file__))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: the other thread never ran (GIL held while blocked?)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok "), out.stdout


# -- signals -------------------------------------------------------------


def _install(signum: int, handler: object) -> Iterator[None]:
    old = signal.signal(signum, handler)  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.signal(signum, old)


def _take_a_count() -> None:
    with EventFD(3) as other:
        assert other.read() == 3  # a successful read: errno 0 after it


def _find_none() -> None:
    # errno is EAGAIN after it
    with EventFD(nonblocking=True) as other, pytest.raises(BlockingIOError):
        eventfd_read(other)


def _time_out() -> None:
    with EventFD() as other, pytest.raises(TimeoutError):
        other.read(timeout=0)


# What the signal handler does besides returning.  A handler that calls the
# package runs between the interrupted call's return from C and its next
# line: the call must decide from its own result, not from errno (which the
# handler's calls overwrite).
HANDLER_USES: dict[str, Callable[[], None]] = {
    "nothing": lambda: None,
    "a read that takes a count": _take_a_count,
    "a read that finds none": _find_none,
    "a read that times out": _time_out,
}


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("uses", list(HANDLER_USES))
def test_eintr_is_retried(name: str, uses: str, main_thread_only: int) -> None:
    spec = CALLS[name]
    handled = threading.Event()
    done = threading.Event()  # the call returned or raised: stop waiting on it

    def handler(signum: int, frame: object) -> None:
        HANDLER_USES[uses]()
        handled.set()  # returns normally: PEP 475 says retry

    def signaller() -> None:
        if not blocked_in(main_thread_only, spec.syscalls, stop=done):
            return
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]
        assert handled.wait(TIMEOUT), "signal handler never ran"
        if blocked_in(main_thread_only, spec.syscalls, stop=done):  # the retried call
            _release(ev, spec)

    gen = _install(signal.SIGUSR1, handler)
    next(gen)
    try:
        with _make(spec) as ev:
            t, out = in_thread(signaller)
            try:
                result = spec.call(ev)
            finally:
                done.set()
                join_thread(t)
            assert "error" not in out, out
            assert handled.is_set()
            assert result == spec.result
            assert ev.peek() == spec.after
    finally:
        next(gen, None)


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("kind", list(SIGNAL_KINDS))
def test_handler_exception_interrupts_promptly(name: str, kind: str, main_thread_only: int) -> None:
    """Ctrl-C (SIGINT -> KeyboardInterrupt), or a handler raising, ends the
    blocking call with that exception, and the counter is left as it was."""
    signum, handler, expected = SIGNAL_KINDS[kind]
    latency = _interrupted(CALLS[name], signum, handler, expected, main_thread_only)
    record(f"signals.{kind}.{name}.latency_us", latency)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise InterruptedError("from the handler")


@pytest.mark.parametrize("name", [n for n in CALLS if n.startswith("eventfd_")])
def test_a_handlers_interruptederror_leaves_the_dropin(name: str, main_thread_only: int) -> None:
    """The drop-ins retry the InterruptedError of an interrupted read or
    write (PEP 475), never one a handler raises: that one leaves the call,
    as any handler's exception does."""
    _interrupted(
        CALLS[name], signal.SIGUSR1, _raise_interrupted, InterruptedError, main_thread_only
    )


def _interrupted(
    spec: Blocking,
    signum: int,
    handler: Handler,
    expected: type[BaseException],
    main_thread_only: int,
) -> float:
    """Signal the blocked call: it must raise *expected*, the counter as it
    was.  Returns the microseconds from the signal to the exception."""
    done = threading.Event()
    sent: list[float] = []

    def signaller() -> None:
        if not blocked_in(main_thread_only, spec.syscalls, stop=done):
            return
        sent.append(time.perf_counter())
        signal.pthread_kill(threading.main_thread().ident, signum)  # type: ignore[arg-type]
        if not done.wait(TIMEOUT):
            _release(ev, spec)  # the signal did not end the call: free it to fail

    gen = _install(signum, handler)
    next(gen)
    try:
        with _make(spec) as ev:
            t, out = in_thread(signaller)
            try:
                with pytest.raises(expected):
                    try:
                        spec.call(ev)
                    finally:
                        caught = time.perf_counter()
                        done.set()
            finally:
                join_thread(t)
            assert "error" not in out, out
            assert ev.peek() == spec.initial  # nothing taken, nothing added
    finally:
        next(gen, None)
    return round((caught - sent[0]) * 1e6, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda ev: ev.read(),
        lambda ev: eventfd_read(ev.fileno()),
        lambda ev: eventfd_read(ev),
    ],
    ids=["EventFD.read", "eventfd_read(fd)", "eventfd_read(obj)"],
)
def test_empty_nonblocking_read_under_a_signal_storm(
    call: Callable[[EventFD], object], main_thread_only: int
) -> None:
    """A timer's handler reads another EventFD 100 us after the last one
    ended: each read of an empty non-blocking EventFD must still raise
    BlockingIOError, never return a value made up from the handler's errno.
    (The handler re-arms the timer itself: a periodic timer faster than a
    handler on a loaded machine nests handlers until RecursionError.)"""
    handled = 0
    storming = True

    def handler(signum: int, frame: object) -> None:
        nonlocal handled
        _take_a_count()
        handled += 1
        if storming:
            signal.setitimer(signal.ITIMER_REAL, 1e-4)

    gen = _install(signal.SIGALRM, handler)
    next(gen)
    deadline = time.monotonic() + TIMEOUT
    try:
        with EventFD(nonblocking=True) as ev:
            signal.setitimer(signal.ITIMER_REAL, 1e-4)
            try:
                while handled < 2_000:
                    with pytest.raises(BlockingIOError):
                        call(ev)
                    assert time.monotonic() < deadline, f"only {handled} signals came"
            finally:
                storming = False
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert ev.peek() == 0
    finally:
        next(gen, None)


@pytest.mark.parametrize(
    ("name", "initial", "call"),
    [
        ("eventfd_read(obj)", 0, lambda ev: eventfd_read(ev)),
        ("eventfd_write(obj, 2)", MAX, lambda ev: eventfd_write(ev, 2)),
        ("EventFD.read()", 0, lambda ev: ev.read()),
        ("EventFD.write(2)", MAX, lambda ev: ev.write(2)),
    ],
)
def test_a_handler_that_closes_and_reuses_the_number_stops_the_retry(
    name: str, initial: int, call: Callable[[EventFD], object], main_thread_only: int
) -> None:
    """The handler closes the object the call was given and opens a new
    eventfd on the same number: the retry must raise ValueError, never
    read from or write to the new file (the outside test's drop-in case)."""
    ev = EventFD()
    ev.write(initial)
    number = ev.fileno()
    successor: list[EventFD] = []
    done = threading.Event()

    def handler(signum: int, frame: object) -> None:
        ev.close()
        successor.append(EventFD.from_fd(os.dup2(os.eventfd(5), number)))

    def signaller() -> None:
        # EventFD.read sleeps in poll(2); the drop-ins and writes at the
        # maximum block in read(2)/write(2).
        syscall = ("write",) if initial else POLL if name == "EventFD.read()" else ("read",)
        if blocked_in(main_thread_only, syscall, stop=done):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]

    gen = _install(signal.SIGUSR1, handler)
    next(gen)
    try:
        t, out = in_thread(signaller)
        try:
            with pytest.raises(ValueError, match="closed"):
                call(ev)
        finally:
            done.set()
            join_thread(t)
        assert "error" not in out, out
        (new,) = successor
        assert new.fileno() == number
        assert new.peek() == 5, "the retry reached the file that took the number"
        new.close()
    finally:
        next(gen, None)


# -- a signal while C spins ------------------------------------------------------

SPINNING_READS: dict[str, Callable[[Any], object]] = {
    "read": lambda ev: ev.read(),
    "read_timeout": lambda ev: ev.read(timeout=3 * TIMEOUT),
}


@pytest.mark.parametrize("kind", [EventFD, Doorbell], ids=["EventFD", "Doorbell"])
@pytest.mark.parametrize("call", list(SPINNING_READS))
@pytest.mark.parametrize("how", ["handler_writes", "handler_raises"])
def test_a_signal_during_the_spin_runs_its_handler_before_the_sleep(
    kind: type[EventFD | Doorbell], call: str, how: str, main_thread_only: int
) -> None:
    """A signal that lands while C spins (its Python handler waits for the
    call to return) must be handled before the read goes to sleep: a handler
    that writes is read back, a raising handler ends the read and takes
    nothing.  Spinning and sleeping in one C call slept with the handler
    pending: a hang, or a Ctrl-C noticed only at the next write, whose
    count it then threw away."""
    ev = kind(spin=0.2)  # the timer's 10 ms lands inside the spin
    finished = threading.Event()
    rescued: list[bool] = []

    def handler(signum: int, frame: object) -> None:
        if how == "handler_raises":
            raise Boom
        ev.write(42)

    def watchdog() -> None:  # frees a read asleep with its handler pending
        if not finished.wait(TIMEOUT):
            rescued.append(True)
            ev.write(1)

    gen = _install(signal.SIGALRM, handler)
    next(gen)
    thread, _ = in_thread(watchdog)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        if how == "handler_raises":
            with pytest.raises(Boom):
                SPINNING_READS[call](ev)
            assert ev.peek() == 0  # nothing made up, nothing taken
        else:
            assert SPINNING_READS[call](ev) == 42
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        finished.set()
        join_thread(thread)
        next(gen, None)
        ev.close()
    assert not rescued, "the read slept with its signal handler pending"
