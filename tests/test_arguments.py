"""The argument rules every class shares (eventfd_ext/_checks.py), checked
across EventFD, Doorbell and MaskFD: what is taken as an integer, as
seconds and as a name, and that a refused argument changes nothing."""

from __future__ import annotations

import os
from typing import Any

import pytest

from eventfd_ext import Doorbell, EventFD, MaskFD


class Index:
    """Not an int, but converts to one through __index__, as NumPy's
    integers do."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


COUNTERS = [EventFD, Doorbell]


@pytest.mark.parametrize("cls", COUNTERS)
def test_counters_take_index_objects_as_maskfd_does(cls: Any) -> None:
    """initval and write's value go through __index__, as MaskFD's events
    and data do (the drop-ins follow os instead: tests/test_dropin.py)."""
    with cls(Index(3), nonblocking=True) as obj, MaskFD(Index(1), Index(2)) as mask:  # type: ignore[arg-type]
        obj.write(Index(4))
        obj.write(Index(1))  # the hot path's value
        assert obj.read() == 8
        assert mask.read() == (1, 2)


@pytest.mark.parametrize("cls", COUNTERS)
@pytest.mark.parametrize(
    ("value", "exc"),
    [(Index(-1), ValueError), (Index(2**64 - 1), ValueError), (Index(2**64), OverflowError)],
)
def test_an_index_object_out_of_range_is_refused_and_changes_nothing(
    cls: Any, value: Index, exc: type[Exception]
) -> None:
    with cls(5, nonblocking=True) as obj:
        with pytest.raises(exc) as info:
            obj.write(value)
        assert type(info.value) is exc
        assert obj.peek() == 5
    with pytest.raises((ValueError, OverflowError)):
        cls(value)


@pytest.mark.parametrize("cls", COUNTERS)
@pytest.mark.parametrize("flag", [True, False])
def test_a_bool_is_no_number_of_seconds_for_spin_or_timeout(cls: Any, flag: bool) -> None:
    """One rule for both, said in the message: a bool where seconds go is
    a slip (time.sleep would take it as 1 or 0)."""
    with pytest.raises(
        TypeError, match=rf"spin must be a number of seconds, not a bool \({flag}\)"
    ):
        cls(spin=flag)
    with cls(2, spin=1e-3) as obj:
        with pytest.raises(TypeError, match="spin must be a number of seconds, not a bool"):
            obj.spin = flag
        assert obj.spin == 1e-3
        for call in (obj.read, obj.wait):
            with pytest.raises(
                TypeError, match="timeout must be a number of seconds or None, not a bool"
            ):
                call(flag)
        assert obj.peek() == 2


@pytest.mark.parametrize("cls", COUNTERS)
@pytest.mark.parametrize("call", ["read", "wait"])
def test_a_timeout_past_floats_range_waits_like_inf(cls: Any, call: str) -> None:
    """An int past float's range is as absurd as inf, as for spin: it waits
    forever (here it finds the count at once); negative, it is refused with
    the timeout message."""
    with cls(2) as obj:
        with pytest.raises(ValueError, match="timeout must be a number of seconds >= 0 or None"):
            getattr(obj, call)(-(10**400))
        assert obj.peek() == 2
        assert getattr(obj, call)(10**400) == (True if call == "wait" else 2)


@pytest.mark.parametrize("backing", [1, None.__class__, b"pipe", ["pipe"]], ids=repr)
def test_a_backing_that_is_not_a_name_is_typeerror(backing: object) -> None:
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(TypeError, match=r"backing must be one of \('stream', 'dgram', 'pipe'\)"):
        MaskFD(backing=backing)  # type: ignore[arg-type]
    assert set(os.listdir("/proc/self/fd")) == fds
