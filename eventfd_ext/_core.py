"""The one place that turns shim results into Python values and exceptions.

Every public entry point (the drop-in functions, EventFD, the asyncio helpers)
calls the shim directly on its fast path and comes here only when the shim
reports a failure, so that argument conversion, EINTR retries (PEP 475) and
errno mapping are written once.
"""

from __future__ import annotations

import errno
import math
import numbers
import os
import time
import warnings
from typing import Any, Callable, NoReturn, Protocol, Union

from ._shim import ffi, lib

__all__ = [
    "FAILED",
    "MAX_COUNT",
    "FileDescriptorLike",
    "as_fd",
    "check_initval",
    "check_value",
    "raise_errno",
    "read_nowait",
    "retry_read",
    "retry_write",
    "timeout_ms",
    "wait_readable",
]

#: What a shim function returning a counter value returns on failure.
FAILED: int = lib.EFX_FAILED
#: The largest count a write can leave in the counter (2**64 - 2).
MAX_COUNT: int = 0xFFFF_FFFF_FFFF_FFFE
_U64_LIMIT = 1 << 64
_INITVAL_LIMIT = 1 << 32
# poll(2) takes an int of milliseconds; longer timeouts are waited in slices.
_MAX_POLL_MS = 2**31 - 1


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


FileDescriptorLike = Union[int, _HasFileno]


def raise_errno(err: int) -> NoReturn:
    """Raise the OSError subclass the interpreter maps *err* to."""
    raise OSError(err, os.strerror(err))


def as_fd(obj: object) -> int:
    """Convert an int or an object with fileno() to an fd, as os functions do."""
    if isinstance(obj, int):
        fd = int(obj)
    else:
        fileno = getattr(obj, "fileno", None)
        if fileno is None:
            raise TypeError("argument must be an int, or have a fileno() method.")
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    # Range before sign, as CPython does: -2**70 is an OverflowError there.
    if not -(2**31) <= fd <= 2**31 - 1:
        raise OverflowError("Python int too large to convert to C int")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return int(fd)


def warn_unclosed(owner: object, fd: int, _warn: Any = warnings.warn) -> None:
    """Warn that *owner* (holding *fd*) was collected unclosed, as sockets do.

    For ``__del__``, which must close the fd whatever happens here: under
    ``-W error::ResourceWarning`` the warning raises, and at interpreter exit
    repr() can fail (the codecs that reading /proc needs may be gone) and
    module globals may be None (hence *_warn* bound as a default).
    """
    try:
        text = repr(owner)
    except Exception:
        text = f"<{type(owner).__name__} fd={fd}>"
    _warn(f"unclosed {text}", ResourceWarning, source=owner)


def check_initval(initval: object) -> int:
    """Validate an eventfd initial value exactly as os.eventfd does."""
    if not isinstance(initval, int):
        raise TypeError("an integer is required")
    if initval < 0:
        raise ValueError("value must be positive")
    if initval >= _U64_LIMIT:  # CPython converts to unsigned long first
        raise OverflowError("Python int too large to convert to C unsigned long")
    if initval >= _INITVAL_LIMIT:
        raise OverflowError("Python int too large for C unsigned int")
    return int(initval)


def check_value(value: object) -> int:
    """Validate a value to add to the counter exactly as os.eventfd_write does.

    2**64 - 1 passes here, as it does in CPython; the kernel refuses it.
    """
    if not isinstance(value, int):
        raise TypeError("an integer is required")
    if value < 0:
        raise ValueError("value must be positive")
    if value >= _U64_LIMIT:
        raise OverflowError("int too big to convert")
    return int(value)


def retry_read(
    read: Callable[[int], int],
    fd: int,
    check: Callable[[int], None] | None = None,
    *,
    nowait: bool = False,
) -> int:
    """Finish a read whose first try returned FAILED.

    Retries EINTR after giving signal handlers their chance to run (the
    interpreter runs them at the loop's back edge, so an exception raised by
    one leaves from here), and returns a genuine 2**64 - 1 count (errno 0).
    *check(fd)*, if given, runs before each retry or error and raises if the
    fd's owner was closed meanwhile (its number may now be another file's).
    With *nowait*, EAGAIN returns 0 (a read never takes 0, so 0 can only mean
    "the count was zero") instead of raising BlockingIOError.
    """
    while True:
        err = ffi.errno
        if err == 0:
            return FAILED
        if check is not None:
            check(fd)
        if err != errno.EINTR:
            if nowait and err == errno.EAGAIN:
                return 0
            raise_errno(err)
        value = read(fd)
        if value != FAILED:
            return value


def read_nowait(fd: int) -> int:
    """Take the count without ever blocking, whatever the fd's mode.

    One RWF_NOWAIT read: returns the count (1 in semaphore mode), or 0 if the
    count was zero.  The asyncio read is built on it, so that a blocking fd
    whose count another reader took first cannot block the event loop.
    """
    value: int = lib.efx_read_nowait(fd)
    if value != FAILED:
        return value
    return retry_read(lib.efx_read_nowait, fd, nowait=True)


def retry_write(
    fd: int, value: int, result: int, check: Callable[[int], None] | None = None
) -> None:
    """Finish a write whose first try returned -errno in *result*.

    *check* is as for retry_read.
    """
    while True:
        if check is not None:
            check(fd)
        if result != -errno.EINTR:
            break
        result = lib.efx_write(fd, value)
    if result:
        raise_errno(-result)


def timeout_ms(timeout: float | None) -> int:
    """Convert a timeout in seconds (None: forever) to poll(2) milliseconds.

    Rounds up, so a wait never ends before the timeout has passed.
    """
    if timeout is None:
        return -1
    if not isinstance(timeout, numbers.Real):
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__!r}"
        )
    if math.isnan(timeout):
        raise ValueError("timeout must not be NaN")
    if timeout <= 0:
        return 0
    if timeout * 1000 >= _MAX_POLL_MS:  # also inf, which math.ceil refuses
        return _MAX_POLL_MS
    return math.ceil(timeout * 1000)


def wait_readable(
    fd: int,
    timeout: float | None,
    attempt: Callable[[int, int], int],
    check: Callable[[int], None] | None = None,
) -> int:
    """Run *attempt(fd, ms)* until it succeeds or *timeout* expires.

    *attempt* is a shim call that waits up to ms milliseconds and returns a
    positive result, 0 on timeout, or a failure (negative errno or FAILED with
    errno set).  EINTR and timeouts longer than one poll(2) can express are
    retried with the time left, measured on the monotonic clock.  Returns the
    positive result, or 0 once the timeout has expired.  *check* is as for
    retry_read.
    """
    ms = timeout_ms(timeout)  # first: it validates timeout
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    while True:
        result = attempt(fd, ms)
        if result == FAILED:
            err = ffi.errno
            if err == 0:
                return result
            result = -err
        if result > 0:
            return result
        if check is not None:
            check(fd)
        if result < 0 and result != -errno.EINTR:
            raise_errno(-result)
        # Timeout or EINTR: signal handlers run at this back edge.
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return 0
            ms = timeout_ms(left)
        elif result == 0:
            continue
