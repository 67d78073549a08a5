"""Drop-in replacements for ``os.eventfd``, ``os.eventfd_read`` and
``os.eventfd_write``, with the same signatures, defaults and exceptions as the
running interpreter's.

Two paths, chosen by the arguments' exact types:

* every argument an exact ``int``: one shim call on the raw number (the fast
  path); only a failure goes on to Python code (EINTR, errno, or a number
  out of the C type's range, which cffi refuses before any call is made);
* anything else (an object with ``fileno()``, an int subclass or bool, an
  ``__index__`` object, a float, a missing argument): the call is the
  interpreter's own ``os`` function, made once with the arguments as given.
  Its converters decide what is accepted and what the error says, whatever
  the version (3.14 takes ``__index__`` objects and words its errors anew),
  and they run before its read or write: a refused argument is never acted on.

No argument is converted twice (a ``fileno()`` or ``__index__`` is called
once per try), and no count is read or written twice: a retry follows only
EINTR, when an eventfd's read or write moved nothing.  (Given an object
whose fd is not an eventfd, os's glibc call reports a short read or write
with whatever errno was left; a stale EINTR there would be retried.)
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

from . import _core
from ._checks import FileDescriptorLike
from ._constants import EFD_CLOEXEC
from ._shim import ffi, lib

__all__ = ["eventfd", "eventfd_read", "eventfd_write"]

_T = TypeVar("_T")
_take = lib.efx_take
_read = lib.efx_read
_write = lib.efx_write
_signal = lib.efx_signal
_create = lib.efx_create
_os_eventfd = os.eventfd
_os_read = os.eventfd_read
_os_write = os.eventfd_write
# A required argument left out arrives as this default and is then left out
# of the call to os, so that os says what is missing, in its own words.  It
# is not an int: testing for it costs nothing on the fast path.
_MISSING: Any = object()


def _signature(*names: str, **defaults: Any) -> inspect.Signature:
    """The signature os's function shows (no sentinel defaults)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [
            inspect.Parameter(n, kind, default=defaults.get(n, inspect.Parameter.empty))
            for n in names
        ]
    )


def _by_os(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """*function* (os's own) called with these arguments.

    A signal that interrupts its read or write makes it raise
    InterruptedError once the handlers have run and returned; the call is
    then made again (PEP 475, as on the fast path), its arguments converted
    anew (a closed EventFD's fileno() then raises ValueError).  An
    InterruptedError raised by Python code it called (a fileno() method, a
    signal handler) carries that code's frame and leaves as it came.
    """
    while True:
        try:
            return function(*args, **kwargs)
        except InterruptedError as e:
            if e.__traceback__ is None or e.__traceback__.tb_next is not None:
                raise


def _given(**arguments: Any) -> dict[str, Any]:
    """The arguments that were given, for os to say which one is missing."""
    return {name: v for name, v in arguments.items() if v is not _MISSING}


def eventfd(initval: int = _MISSING, flags: int = EFD_CLOEXEC) -> int:
    """Create an eventfd with counter *initval* and return its fd number."""
    if type(initval) is int and type(flags) is int:
        try:
            fd = _create(initval, flags)
        except OverflowError:  # out of the C types' range: os says how
            return _by_os(_os_eventfd, initval, flags)
        if fd < 0:
            _core.raise_errno(-fd)
        return fd
    if initval is _MISSING:
        return _by_os(_os_eventfd, **_given(flags=flags))
    return _by_os(_os_eventfd, initval, flags)


def eventfd_read(fd: FileDescriptorLike = _MISSING) -> int:
    """Read and return the counter of eventfd *fd* (an int or has fileno())."""
    if type(fd) is not int:  # cffi would take any __int__ (Decimal) as an fd
        if fd is _MISSING:
            return _by_os(_os_read)
        return _by_os(_os_read, fd)
    try:
        value = _take(fd)
    except OverflowError:  # not a C int: nothing was read
        return _by_os(_os_read, fd)
    if value:
        return value
    if fd < 0:  # read(2) refused it; os refuses it before reading
        return _by_os(_os_read, fd)
    return _read_again(fd)


def _read_again(fd: int) -> int:
    """The count of eventfd *fd* after the hot read (``efx_take``) returned
    0, which says only that it took nothing, not why: ``efx_read`` reads
    again and returns its own errno (csrc/eventfd_shim.h)."""
    count = ffi.new("uint64_t *")  # per call: a signal handler may read too
    _core.finish(_read(fd, count), _core.fail_errno, _read, fd, count)
    return int(count[0])


def eventfd_write(fd: FileDescriptorLike = _MISSING, value: int = _MISSING) -> None:
    """Add *value* to the counter of eventfd *fd* (an int or has fileno())."""
    if type(fd) is not int or type(value) is not int:
        # cffi would take any __int__ (Decimal('1.5') -> 1) as a number.
        if fd is _MISSING or value is _MISSING:
            _by_os(_os_write, **_given(fd=fd, value=value))
        else:
            _by_os(_os_write, fd, value)
        return None
    try:
        # The one-argument call (METH_O, no argument tuple) makes the common
        # write of 1 cheaper (the bench's drop-in rows measure it).
        result = _signal(fd) if value == 1 else _write(fd, value)
    except OverflowError:  # fd or value out of the C types' range: nothing written
        _by_os(_os_write, fd, value)
        return None
    if result:
        if fd < 0:  # write(2) refused it; os refuses it before writing
            _by_os(_os_write, fd, value)
        _core.finish(result, _core.fail_errno, _write, fd, value)
    return None


eventfd.__signature__ = _signature("initval", "flags", flags=EFD_CLOEXEC)  # type: ignore[attr-defined]
eventfd_read.__signature__ = _signature("fd")  # type: ignore[attr-defined]
eventfd_write.__signature__ = _signature("fd", "value")  # type: ignore[attr-defined]
