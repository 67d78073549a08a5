"""Model-based test (hypothesis stateful): one machine drives EventFD and
Doorbell against a reference model of the kernel counter, in normal and
semaphore mode, blocking and not, through the overflow boundary (2**64 - 2
is the most it holds; beyond that a write is refused with EAGAIN, or waits
until reads make room).

The model is a few lines of arithmetic taken from eventfd(2); every step
compares the object with it, through peek(), wait(0), poll() and the results
of the calls themselves, bad input included: the exception type and its
exact message are the same for both classes.  A rule or check that only one
class has says so, with its reason.
"""

from __future__ import annotations

import errno
import os
import re
import select
import signal
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Any, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from _kernel import MAX, TIMEOUT, in_thread, join_thread, record, wait_in_syscall
from conftest import size
from eventfd_ext import Doorbell, EventFD, eventfd_read, eventfd_write

Counter = EventFD | Doorbell

# Values that matter for the counter: small ones, ones near the boundary.
values = st.one_of(
    st.integers(0, 3),
    st.integers(0, 2**64 - 2),
    st.integers(MAX - 3, MAX),
)

RESERVED = "2**64 - 1 cannot be written to an eventfd (the kernel reserves it to mark an overflow)"
EAGAIN = f"[Errno {errno.EAGAIN}] {os.strerror(errno.EAGAIN)}"
EINVAL = f"[Errno {errno.EINVAL}] {os.strerror(errno.EINVAL)}"


def exactly(message: str) -> str:
    """A pytest.raises match for the whole message."""
    return f"^{re.escape(message)}$"


class Lying(int):
    """An int subclass whose own conversions lie: taken by its value, as
    CPython's converters take it (operator.index)."""

    def __index__(self) -> int:
        return 7

    def __int__(self) -> int:
        return 7


class Model:
    """The eventfd counter as eventfd(2) describes it."""

    def __init__(self, count: int, semaphore: bool) -> None:
        self.count = count
        self.semaphore = semaphore

    def fits(self, value: int) -> bool:
        return self.count + value <= MAX

    def write(self, value: int) -> None:
        assert self.fits(value)
        self.count += value

    def read(self) -> int:
        assert self.count > 0
        taken = 1 if self.semaphore else self.count
        self.count -= taken
        return taken


def _stalled(signum: int, frame: object) -> None:
    raise AssertionError(f"a call blocked for {TIMEOUT} s that the model says returns")


def _eventfd_only(machine: CounterMachine) -> bool:
    return machine.cls is EventFD


def _doorbell_only(machine: CounterMachine) -> bool:
    return machine.cls is Doorbell


class CounterMachine(RuleBasedStateMachine):
    """The machine; each test runs a subclass that sets ``cls``."""

    cls: ClassVar[type[EventFD | Doorbell]]
    steps: ClassVar[int] = 0
    ev: Counter
    model: Model

    def __init__(self) -> None:
        super().__init__()
        self.watches: list[Any] = []  # open watch() contexts (Doorbell)

    @initialize(
        initval=st.one_of(st.integers(0, 3), st.integers(0, 2**32 - 1)),
        semaphore=st.booleans(),
        nonblocking=st.booleans(),
    )
    def create(self, initval: int, semaphore: bool, nonblocking: bool) -> None:
        # A call that blocks where the model says it returns fails the
        # example, with its steps, instead of hanging the suite.
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
        self.ev = self.cls(initval, semaphore=semaphore, nonblocking=nonblocking)
        self.model = Model(initval, semaphore)
        self.nonblocking = nonblocking

    def teardown(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        while self.watches:
            self.watches.pop().__exit__(None, None, None)
        if hasattr(self, "ev"):
            self.ev.close()
        type(self).steps += 1

    # -- writes ------------------------------------------------------------

    def _write(self, value: int, dropin: bool = False) -> None:
        """Write *value* and check the outcome against the model."""
        write = partial(eventfd_write, self.ev) if dropin else self.ev.write
        if not 0 <= value < 2**64 and dropin:
            # The drop-in refuses it as the running interpreter's os does
            # (whose converter refuses it before any write).
            with pytest.raises(Exception) as theirs:
                os.eventfd_write(self.ev.fileno(), value)
            with pytest.raises(type(theirs.value), match=exactly(str(theirs.value))):
                write(value)
        elif not 0 <= value < 2**64:
            exc = ValueError if value < 0 else OverflowError
            message = f"value must be between 0 and 2**64 - 2, not {value}"
            with pytest.raises(exc, match=exactly(message)):
                write(value)
        elif value == 2**64 - 1:
            if dropin:  # the kernel's refusal, as os.eventfd_write's
                with pytest.raises(OSError, match=exactly(EINVAL)):
                    write(value)
            else:
                with pytest.raises(ValueError, match=exactly(RESERVED)):
                    write(value)
        elif self.model.fits(value):
            write(value)
            self.model.write(value)
        else:  # refused with EAGAIN; in blocking mode it would wait, so
            # look through a non-blocking switch (write_waits_for_room waits).
            self.ev.nonblocking = True
            try:
                with pytest.raises(BlockingIOError, match=exactly(EAGAIN)):
                    write(value)
            finally:
                self.ev.nonblocking = self.nonblocking

    @rule(value=values)
    def write(self, value: int) -> None:
        self._write(value)

    @rule(value=values)
    def write_int_subclass(self, value: int) -> None:
        self._write(Lying(value))

    @rule(extra=st.integers(0, 2))
    def write_to_the_edge(self, extra: int) -> None:
        """Write exactly what is left to 2**64 - 2, or one or two more."""
        self._write(MAX - self.model.count + extra)

    # EventFD only: the drop-ins act on fileno(), a Doorbell's wake-up channel, not its counter.
    @precondition(_eventfd_only)
    @rule(extra=st.integers(0, 2))
    def write_to_the_edge_dropin(self, extra: int) -> None:
        self._write(MAX - self.model.count + extra, dropin=True)

    @precondition(lambda self: not self.nonblocking and self.model.count > 0)
    @rule(data=st.data())
    def write_waits_for_room(self, data: st.DataObject) -> None:
        """In blocking mode a write past 2**64 - 2 sleeps until reads make
        room, then adds its whole value."""
        extra = data.draw(st.integers(1, min(3, self.model.count)), label="extra")
        value = MAX - self.model.count + extra
        thread, out = in_thread(lambda: self.ev.write(value))
        # EventFD waits in the kernel's write(2), Doorbell on its futex.
        sleeps_in = "write" if self.cls is EventFD else "futex"
        assert wait_in_syscall(thread, sleeps_in)
        while not self.model.fits(value):  # one read, or (semaphore) extra of them
            assert self.ev.read() == self.model.read()
        join_thread(thread)
        assert out == {"result": None}
        self.model.write(value)

    @rule()
    def write_reserved_value(self) -> None:
        self._write(2**64 - 1)

    @rule(
        value=st.integers(max_value=-1) | st.integers(min_value=2**64),
        subclass=st.booleans(),
    )
    def write_out_of_range(self, value: int, subclass: bool) -> None:
        self._write(Lying(value) if subclass else value)

    @rule(value=st.sampled_from([1.0, "1", None, b"\1", Decimal(1), Fraction(3, 2), 1j]))
    def write_not_an_int(self, value: object) -> None:
        said = f"value must be an integer, not {type(value).__name__!r}"
        with pytest.raises(TypeError, match=exactly(said)):
            self.ev.write(value)  # type: ignore[arg-type]

    # -- reads -------------------------------------------------------------

    @rule()
    def read(self) -> None:
        if self.model.count:
            assert self.ev.read() == self.model.read()
        elif self.nonblocking:
            with pytest.raises(BlockingIOError, match=exactly(EAGAIN)):
                self.ev.read()

    # EventFD only: the drop-ins act on fileno(), a Doorbell's wake-up channel, not its counter.
    @precondition(_eventfd_only)
    @rule()
    def read_dropin(self) -> None:
        if self.model.count:
            assert eventfd_read(self.ev) == self.model.read()
        elif self.nonblocking:
            with pytest.raises(BlockingIOError):
                eventfd_read(self.ev)

    @rule()
    def read_timeout_zero(self) -> None:
        """read(timeout=0) never blocks, whatever the mode."""
        if self.model.count:
            assert self.ev.read(timeout=0) == self.model.read()
        else:
            with pytest.raises(TimeoutError, match=exactly("no count within 0 s")):
                self.ev.read(timeout=0)

    @rule()
    def try_read(self) -> None:
        """The count (1 in semaphore mode), or 0, never blocking."""
        assert self.ev.try_read() == (self.model.read() if self.model.count else 0)

    @precondition(lambda self: self.model.count > 0)
    @rule(n=st.integers(1, 5))
    def drain_some(self, n: int) -> None:
        while n and self.model.count:
            assert self.ev.read(timeout=0) == self.model.read()
            n -= 1

    @rule(
        timeout=st.sampled_from(
            ["1", float("nan"), -1.0, -1e-9, -2, float("-inf"), Decimal("0.1"), 1j, b"0"]
        ),
        call=st.sampled_from(["read", "wait"]),
    )
    def bad_timeout(self, timeout: Any, call: str) -> None:
        """Refused before anything is taken or waited for."""
        exc: type[Exception] = ValueError
        message = f"timeout must be a number of seconds >= 0 or None, not {timeout!r}"
        if not isinstance(timeout, (int, float)):
            exc = TypeError
            message = f"timeout must be a number of seconds or None, not {type(timeout).__name__!r}"
        with pytest.raises(exc, match=exactly(message)):
            if call == "read":
                self.ev.read(timeout=timeout)
            else:
                self.ev.wait(timeout)

    # -- modes and holders ---------------------------------------------------

    @rule(on=st.booleans())
    def set_nonblocking(self, on: bool) -> None:
        self.ev.nonblocking = on
        self.nonblocking = on

    @rule()
    def adopt(self) -> None:
        """Hand the counter to a new object through duplicated fds (as
        another process gets it) and close the old one."""
        old = self.ev
        if isinstance(old, EventFD):  # O_NONBLOCK belongs to the open file: it carries over
            self.ev = EventFD.from_fd(os.dup(old.fileno()))
        else:  # a Doorbell's mode is its own
            fds = tuple(map(os.dup, old.fds()))
            self.ev = Doorbell.from_fds(*fds, nonblocking=old.nonblocking)
        old.close()  # inside any watch() it has open: leaving that must still count

    # Doorbell only: an EventFD's fd always shows its count; a Doorbell's inside watch().
    @precondition(lambda self: _doorbell_only(self) and len(self.watches) < 3)
    @rule()
    def enter_watch(self) -> None:
        assert isinstance(self.ev, Doorbell)
        watch = self.ev.watch()
        watch.__enter__()
        self.watches.append(watch)

    @precondition(lambda self: bool(self.watches))
    @rule()
    def leave_watch(self) -> None:
        self.watches.pop().__exit__(None, None, None)

    # -- what must always hold ---------------------------------------------

    def _revents(self) -> int:
        p = select.poll()
        p.register(self.ev.fds()[-1], select.POLLIN | select.POLLOUT)  # the fd, watched or not
        events = p.poll(0)
        return events[0][1] if events else 0

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "ev"):
            return
        assert self.ev.peek() == self.model.count
        assert self.ev.wait(0) == (self.model.count > 0)
        assert self.ev.semaphore == self.model.semaphore
        assert self.ev.nonblocking == self.nonblocking
        revents = self._revents()
        if isinstance(self.ev, EventFD):  # its fd is the counter: poll shows it exactly
            assert bool(revents & select.POLLIN) == (self.model.count > 0)
            assert bool(revents & select.POLLOUT) == (self.model.count < MAX)
            assert not revents & select.POLLERR
        else:  # a Doorbell's fd is its wake-up channel: it never misses a
            # count inside watch() (a spare token may show with none), and
            # nobody is left counted as asleep, watching or waiting for room.
            if self.watches and self.model.count:
                assert revents & select.POLLIN
            _, sleepers, watchers, writers_waiting, *_ = self.ev._info()
            assert (sleepers, watchers, writers_waiting) == (0, len(self.watches), 0)


class EventFDMachine(CounterMachine):
    cls = EventFD


class DoorbellMachine(CounterMachine):
    cls = Doorbell


@pytest.mark.parametrize("machine", [EventFDMachine, DoorbellMachine], ids=["EventFD", "Doorbell"])
def test_model(machine: type[CounterMachine], request: pytest.FixtureRequest) -> None:
    machine.steps = 0
    previous = signal.signal(signal.SIGALRM, _stalled)
    try:
        # Its size is the loaded Hypothesis profile's (tests/conftest.py).
        run_state_machine_as_test(machine, settings=settings())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    record(f"model.{machine.cls.__name__.lower()}.{size(request.config)}_examples", machine.steps)
