"""Drop-in replacements for ``os.eventfd``, ``os.eventfd_read`` and
``os.eventfd_write``, with the same signatures, defaults and exceptions.

The fast path is one shim call; everything else (fileno() objects, bad
arguments, EINTR, errno) happens only after the shim reports a failure.
"""

from __future__ import annotations

import operator

from . import _core
from ._core import FileDescriptorLike
from ._shim import ffi, lib

__all__ = [
    "EFD_CLOEXEC",
    "EFD_MASK",
    "EFD_NONBLOCK",
    "EFD_SEMAPHORE",
    "eventfd",
    "eventfd_read",
    "eventfd_write",
]

#: Close the fd on exec (``O_CLOEXEC``).
EFD_CLOEXEC: int = lib.EFD_CLOEXEC
#: Non-blocking reads and writes (``O_NONBLOCK``).
EFD_NONBLOCK: int = lib.EFD_NONBLOCK
#: Reads take 1 from the counter instead of all of it.
EFD_SEMAPHORE: int = lib.EFD_SEMAPHORE
#: The flag value of the never-merged EFD_MASK patch; see :class:`MaskFD`.
EFD_MASK: int = 1 << 1

_read = lib.efx_read
_take = lib.efx_take
_write = lib.efx_write
_signal = lib.efx_signal
# The cached small int 1: an identity test sends the common signal to the
# one-argument shim call (METH_O, no argument tuple) and anything else,
# True and 1.0 included, to the checked two-argument one.
_ONE = 1


def eventfd(initval: int, flags: int = EFD_CLOEXEC) -> int:
    """Create an eventfd with counter *initval* and return its fd number."""
    _core.check_initval(initval)
    flags = operator.index(flags)  # CPython's int converter takes __index__
    if not -(2**31) <= flags < 2**31:
        raise OverflowError("Python int too large to convert to C int")
    fd = lib.efx_create(initval, flags)
    if fd < 0:
        _core.raise_errno(-fd)
    return fd


def eventfd_read(fd: FileDescriptorLike) -> int:
    """Read and return the counter of eventfd *fd* (an int or has fileno())."""
    if type(fd) is not int:  # cffi would take any __int__ (Decimal) as an fd
        fd = _core.as_fd(fd)
    try:
        value = _take(fd)
    except (TypeError, OverflowError):
        return eventfd_read(_core.as_fd(fd))
    if value:
        return value
    if fd < 0:
        _core.as_fd(fd)  # raises the ValueError os.eventfd_read gives
    return _core.retry_read(_read, fd) if ffi.errno else value


def eventfd_write(fd: FileDescriptorLike, value: int) -> None:
    """Add *value* to the counter of eventfd *fd* (an int or has fileno())."""
    if type(fd) is not int or type(value) is not int:
        # cffi would take any __int__ (Decimal('1.5') -> 1) as a number.
        return eventfd_write(_core.as_fd(fd), _core.check_value(value))
    try:
        result = _signal(fd) if value is _ONE else _write(fd, value)
    except (TypeError, OverflowError):
        return eventfd_write(_core.as_fd(fd), _core.check_value(value))
    if result:
        if fd < 0:
            _core.as_fd(fd)
        _core.retry_write(fd, value, result)
