"""Model-based tests of MaskFD (hypothesis): the patch's semantics as a
reference model (one stored (events, data) pair, replaced by a write, bits
changed by set/clear/update), the never-miss rule (poll and epoll show every
stored bit; extra bits only the documented ones), and the 12-byte ABI fed
arbitrary bytes and lengths: accepted or refused cleanly, state consistent.

A change the backing cannot show raises OSError (EOPNOTSUPP, ENOTRECOVERABLE
or EPERM) and must change nothing: the model then stays as it was.
"""

from __future__ import annotations

import errno
import select
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from _kernel import record
from conftest import size
from eventfd_ext import EFD_MASK_EVENTS, MaskFD, pack_mask, unpack_mask
from maskfd_helpers import ERR, HUP, IN, OUT, PRI

ABI = struct.Struct("=IQ")
REFUSED = (errno.EOPNOTSUPP, errno.ENOTRECOVERABLE, errno.EPERM)

events_st = st.integers(0, EFD_MASK_EVENTS)
data_st = st.one_of(st.integers(0, 3), st.integers(0, 2**64 - 1), st.just(2**64 - 1))


def documented_extras(backing: str, events: int) -> int:
    """Bits a backing may show beyond the stored ones, as the fidelity table
    (``python -m eventfd_ext.fidelity``) documents them: on ``stream`` PRI
    and HUP bring IN, ERR brings IN, OUT and HUP; on ``dgram`` HUP brings
    IN, ERR brings OUT; ``pipe`` shows exactly what is stored."""
    extra = 0
    if backing == "stream":
        if events & (PRI | HUP):
            extra |= IN
        if events & ERR:
            extra |= IN | OUT | HUP
    elif backing == "dgram":
        if events & HUP:
            extra |= IN
        if events & ERR:
            extra |= OUT
    return extra


class MaskFDMachine(RuleBasedStateMachine):
    mask: MaskFD
    examples = 0

    @initialize(backing=st.sampled_from(["stream", "dgram", "pipe"]), data=data_st)
    def create(self, backing: str, data: int) -> None:
        self.mask = MaskFD(0, data, backing=backing)  # type: ignore[arg-type]
        self.backing = backing
        self.model = (0, data)
        self.refused = 0
        # Extras that outlive their cause: once a socket backing has shown
        # HUP (stored, or brought by ERR on stream) it cannot take it back,
        # and A can no longer fill its send buffer, so HUP, IN and OUT may
        # show from then on whatever is stored.
        self.sticky = 0

    def teardown(self) -> None:
        if hasattr(self, "mask"):
            self.mask.close()
        type(self).examples += 1

    def _apply(self, change: object, new: tuple[int, int]) -> None:
        """Run *change*; on success the model becomes *new*; a refusal by
        the backing must leave everything as it was."""
        try:
            change()  # type: ignore[operator]
        except OSError as exc:
            assert exc.errno in REFUSED, exc
            self.refused += 1
            return
        self.model = new
        hup = HUP | (ERR if self.backing == "stream" else 0)
        if self.backing != "pipe" and new[0] & hup:
            self.sticky = HUP | IN | OUT

    @rule(events=events_st, data=data_st)
    def write(self, events: int, data: int) -> None:
        self._apply(lambda: self.mask.write(events, data), (events, data))

    @rule(events=events_st)
    def set(self, events: int) -> None:
        self._apply(lambda: self.mask.set(events), (self.model[0] | events, self.model[1]))

    @rule(events=events_st)
    def clear(self, events: int) -> None:
        self._apply(lambda: self.mask.clear(events), (self.model[0] & ~events, self.model[1]))

    @rule(set_=events_st, clear=events_st, data=st.none() | data_st)
    def update(self, set_: int, clear: int, data: int | None) -> None:
        events = (self.model[0] & ~clear) | set_  # set wins
        new = (events, self.model[1] if data is None else data)
        self._apply(lambda: self.mask.update(set=set_, clear=clear, data=data), new)

    @rule(buffer=st.binary(max_size=20))
    def write_bytes(self, buffer: bytes) -> None:
        """Arbitrary bytes: under 12, or an invalid event bit, is EINVAL."""
        if len(buffer) < 12 or ABI.unpack_from(buffer)[0] & ~EFD_MASK_EVENTS:
            with pytest.raises(OSError) as info:
                self.mask.write_bytes(buffer)
            assert info.value.errno == errno.EINVAL
            return
        new = ABI.unpack_from(buffer)
        self._apply(lambda: self.mask.write_bytes(buffer), new)

    @rule(events=st.integers(EFD_MASK_EVENTS + 1, 2**32 - 1), data=data_st)
    def write_invalid_events(self, events: int, data: int) -> None:
        with pytest.raises(ValueError):
            self.mask.write(events, data)

    @rule(size=st.integers(-4, 20))
    def read_bytes(self, size: int) -> None:
        if size < 12:
            with pytest.raises(OSError) as info:
                self.mask.read_bytes(size)
            assert info.value.errno == errno.EINVAL
        else:
            assert self.mask.read_bytes(size) == ABI.pack(*self.model)

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "mask"):
            return
        events, data = self.model
        assert self.mask.read() == (events, data)
        assert (self.mask.events, self.mask.data) == (events, data)
        assert unpack_mask(self.mask.read_bytes()) == (events, data)
        fd = self.mask.fileno()
        poller = select.poll()
        poller.register(fd, EFD_MASK_EVENTS)
        ready = poller.poll(0)
        polled = ready[0][1] if ready else 0
        with select.epoll() as ep:
            ep.register(fd, select.EPOLLIN | select.EPOLLPRI | select.EPOLLOUT)
            ready = ep.poll(0)
        epolled = ready[0][1] if ready else 0
        allowed = events | documented_extras(self.backing, events) | self.sticky
        for shown, api in ((polled, "poll"), (epolled, "epoll")):
            # Never miss a stored bit; never show an undocumented one.
            assert shown & events == events, (api, hex(events), hex(shown))
            assert not shown & ~allowed, (api, hex(events), hex(shown))


def test_maskfd_model(request: pytest.FixtureRequest) -> None:
    # Its size is the loaded Hypothesis profile's (tests/conftest.py).
    MaskFDMachine.examples = 0
    run_state_machine_as_test(MaskFDMachine, settings=settings())
    record(f"model.maskfd.{size(request.config)}_examples", MaskFDMachine.examples)


@settings(max_examples=300, deadline=None)
@given(buffer=st.binary(max_size=40))
def test_abi_unpack_arbitrary_bytes(buffer: bytes) -> None:
    """unpack_mask takes any bytes: a valid struct round-trips through
    pack_mask; anything else is a clean ValueError."""
    if len(buffer) < 12 or ABI.unpack_from(buffer)[0] & ~EFD_MASK_EVENTS:
        with pytest.raises(ValueError):
            unpack_mask(buffer)
        return
    state = unpack_mask(buffer)
    assert state == ABI.unpack_from(buffer)
    assert pack_mask(*state) == buffer[:12]


@settings(max_examples=100, deadline=None)
@given(buffer=st.binary(max_size=40), backing=st.sampled_from(["stream", "dgram", "pipe"]))
def test_abi_write_bytes_arbitrary(buffer: bytes, backing: str) -> None:
    """write_bytes on a fresh MaskFD: returns 12 and stores the pair, or
    raises OSError and leaves the fresh state (0, 0)."""
    with MaskFD(backing=backing) as m:  # type: ignore[arg-type]
        try:
            assert m.write_bytes(bytearray(buffer)) == 12
        except OSError as exc:
            assert exc.errno in (errno.EINVAL, *REFUSED)
            assert m.read() == (0, 0)
        else:
            assert m.read() == ABI.unpack_from(buffer)


def test_stream_out_and_err_at_once_after_hup() -> None:
    """Regression: from HUP (with the send buffer full), setting OUT and ERR
    in one change drained the buffer before raising ERR, which then never
    showed although the change was accepted."""
    with MaskFD(backing="stream") as m:
        m.write(HUP)
        m.set(OUT | ERR)
        poller = select.poll()
        poller.register(m, EFD_MASK_EVENTS)
        shown = poller.poll(0)[0][1]
        assert shown & (HUP | OUT | ERR) == HUP | OUT | ERR, hex(shown)
