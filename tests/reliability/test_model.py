"""Model-based test (hypothesis stateful): EventFD against a reference model
of the kernel counter, in normal and semaphore mode, blocking and not,
through the overflow boundary (2**64 - 2 is the most it holds; beyond that a
write is refused with EAGAIN, or would block).

The model is a few lines of arithmetic taken from eventfd(2); every step
compares the object with it, through peek(), poll() and the results of the
calls themselves.
"""

from __future__ import annotations

import select

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

from _kernel import record
from conftest import size
from eventfd_ext import EventFD, eventfd_read, eventfd_write

MAX = 2**64 - 2

# Values that matter for the counter: small ones, ones near the boundary.
values = st.one_of(
    st.integers(0, 3),
    st.integers(0, 2**64 - 2),
    st.integers(MAX - 3, MAX),
)


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


class EventFDMachine(RuleBasedStateMachine):
    ev: EventFD
    model: Model
    steps = 0

    @initialize(
        initval=st.one_of(st.integers(0, 3), st.integers(0, 2**32 - 1)),
        semaphore=st.booleans(),
        nonblocking=st.booleans(),
    )
    def create(self, initval: int, semaphore: bool, nonblocking: bool) -> None:
        self.ev = EventFD(initval, semaphore=semaphore, nonblocking=nonblocking)
        self.model = Model(initval, semaphore)
        self.nonblocking = nonblocking

    def teardown(self) -> None:
        if hasattr(self, "ev"):
            self.ev.close()
        type(self).steps += 1

    # -- writes ------------------------------------------------------------

    @rule(value=values)
    def write(self, value: int) -> None:
        if self.model.fits(value):
            self.ev.write(value)
            self.model.write(value)
        else:  # refused with EAGAIN; in blocking mode it would block, so
            # look through a non-blocking switch rather than hang the test.
            self.ev.nonblocking = True
            try:
                with pytest.raises(BlockingIOError):
                    self.ev.write(value)
            finally:
                self.ev.nonblocking = self.nonblocking

    @rule(data=st.data())
    def write_to_the_edge(self, data: st.DataObject) -> None:
        """Write exactly what is left to 2**64 - 2, or one more."""
        extra = data.draw(st.integers(0, 2))
        value = MAX - self.model.count + extra
        if extra and value < 2**64 - 1 and self.nonblocking:
            with pytest.raises(BlockingIOError):
                eventfd_write(self.ev, value)
        elif not extra:
            eventfd_write(self.ev, value)
            self.model.write(value)

    @rule()
    def write_reserved_value(self) -> None:
        with pytest.raises(ValueError):
            self.ev.write(2**64 - 1)

    @rule(value=st.integers(max_value=-1) | st.integers(min_value=2**64))
    def write_out_of_range(self, value: int) -> None:
        with pytest.raises((ValueError, OverflowError)):
            self.ev.write(value)

    # -- reads -------------------------------------------------------------

    @rule()
    def read(self) -> None:
        if self.model.count:
            assert self.ev.read() == self.model.read()
        elif self.nonblocking:
            with pytest.raises(BlockingIOError):
                self.ev.read()

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
            with pytest.raises(TimeoutError):
                self.ev.read(timeout=0)

    @precondition(lambda self: self.model.count > 0)
    @rule(n=st.integers(1, 5))
    def drain_some(self, n: int) -> None:
        while n and self.model.count:
            assert self.ev.read(timeout=0) == self.model.read()
            n -= 1

    # -- modes -------------------------------------------------------------

    @rule(on=st.booleans())
    def set_nonblocking(self, on: bool) -> None:
        self.ev.nonblocking = on
        self.nonblocking = on

    # -- what must always hold ---------------------------------------------

    def _revents(self) -> int:
        p = select.poll()
        p.register(self.ev, select.POLLIN | select.POLLOUT)
        events = p.poll(0)
        return events[0][1] if events else 0

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "ev"):
            return
        assert self.ev.peek() == self.model.count
        assert self.ev.wait(0) == (self.model.count > 0)
        revents = self._revents()
        assert bool(revents & select.POLLIN) == (self.model.count > 0)
        assert bool(revents & select.POLLOUT) == (self.model.count < MAX)
        assert not revents & select.POLLERR
        assert self.ev.semaphore == self.model.semaphore
        assert self.ev.nonblocking == self.nonblocking


def test_eventfd_model(request: pytest.FixtureRequest) -> None:
    # Its size is the loaded Hypothesis profile's (tests/conftest.py).
    EventFDMachine.steps = 0
    run_state_machine_as_test(EventFDMachine, settings=settings())
    record(f"model.eventfd.{size(request.config)}_examples", EventFDMachine.steps)
