"""Drop-in replacements for ``os.eventfd``, ``os.eventfd_read`` and
``os.eventfd_write``, with the same signatures, defaults and exceptions.

The fast path is one shim call; everything else (fileno() objects, bad
arguments, EINTR, errno) happens only after the shim reports a failure.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

from . import _core
from ._constants import EFD_CLOEXEC
from ._core import FileDescriptorLike
from ._shim import lib

__all__ = ["eventfd", "eventfd_read", "eventfd_write"]

_take = lib.efx_take
_write = lib.efx_write
_signal = lib.efx_signal
# A required argument left out arrives as this default, so that the error
# says what os's Argument Clinic says (Python's own wording differs).  The
# test for it costs nothing on the fast path: the sentinel is not an int, so
# it takes the branch that converts non-int arguments.
_MISSING: Any = object()


def _missing(function: str, name: str, position: int) -> Any:
    raise TypeError(f"{function}() missing required argument {name!r} (pos {position})")


def _signature(*names: str, **defaults: Any) -> inspect.Signature:
    """The signature os's function shows (no sentinel defaults)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [
            inspect.Parameter(n, kind, default=defaults.get(n, inspect.Parameter.empty))
            for n in names
        ]
    )


def eventfd(initval: int = _MISSING, flags: int = EFD_CLOEXEC) -> int:
    """Create an eventfd with counter *initval* and return its fd number."""
    if initval is _MISSING:
        _missing("eventfd", "initval", 1)
    _core.check_initval(initval)
    flags = operator.index(flags)  # CPython's int converter takes __index__
    if not -(2**31) <= flags < 2**31:
        raise OverflowError("Python int too large to convert to C int")
    fd = lib.efx_create(initval, flags)
    if fd < 0:
        _core.raise_errno(-fd)
    return fd


def eventfd_read(fd: FileDescriptorLike = _MISSING) -> int:
    """Read and return the counter of eventfd *fd* (an int or has fileno())."""
    if type(fd) is not int:  # cffi would take any __int__ (Decimal) as an fd
        if fd is _MISSING:
            _missing("eventfd_read", "fd", 1)
        number = _core.as_fd(fd)
        value = _take(number)
        if value:
            return value
        return _core.read_again(number, None if isinstance(fd, int) else _unchanged(fd))
    try:
        value = _take(fd)
    except (TypeError, OverflowError):
        return eventfd_read(_core.as_fd(fd))
    if value:
        return value
    if fd < 0:
        _core.as_fd(fd)  # raises the ValueError os.eventfd_read gives
    return _core.read_again(fd)


def eventfd_write(fd: FileDescriptorLike = _MISSING, value: int = _MISSING) -> None:
    """Add *value* to the counter of eventfd *fd* (an int or has fileno())."""
    if type(fd) is not int or type(value) is not int:
        # cffi would take any __int__ (Decimal('1.5') -> 1) as a number.
        if fd is _MISSING:
            _missing("eventfd_write", "fd", 1)
        if value is _MISSING:
            _missing("eventfd_write", "value", 2)
        number, value = _core.as_fd(fd), _core.check_value(value)
        result = _signal(number) if value == 1 else _write(number, value)
        if result:
            check = None if isinstance(fd, int) else _unchanged(fd)
            _core.retry_write(number, value, result, check)
        return None
    try:
        # The one-argument call (METH_O, no argument tuple) makes the common
        # write of 1 11-13% cheaper per pair (measured 2026-12-02).
        result = _signal(fd) if value == 1 else _write(fd, value)
    except (TypeError, OverflowError):
        return eventfd_write(_core.as_fd(fd), _core.check_value(value))
    if result:
        if fd < 0:
            _core.as_fd(fd)
        _core.retry_write(fd, value, result)
    return None


def _unchanged(obj: object) -> Callable[[int], None]:
    """For a call given an object with fileno(): before a retry (after a
    signal), check that the object still gives the same fd, so that a retry
    never reaches a file that took the number after the object was closed
    (an EventFD's fileno() then raises its ValueError)."""

    def check(fd: int) -> None:
        if _core.as_fd(obj) != fd:
            raise ValueError(
                f"{type(obj).__name__}.fileno() is no longer {fd}: it was closed "
                "or changed while the call waited"
            )

    return check


eventfd.__signature__ = _signature("initval", "flags", flags=EFD_CLOEXEC)  # type: ignore[attr-defined]
eventfd_read.__signature__ = _signature("fd")  # type: ignore[attr-defined]
eventfd_write.__signature__ = _signature("fd", "value")  # type: ignore[attr-defined]
