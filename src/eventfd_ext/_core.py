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
import operator
import os
import time
import warnings
from typing import Any, Callable, NoReturn, Protocol, Union

from ._shim import ffi, lib

__all__ = [
    "FileDescriptorLike",
    "as_fd",
    "check_initval",
    "check_value",
    "deadline",
    "left_ms",
    "raise_errno",
    "read_again",
    "retry_write",
    "spin_first",
    "spin_ns",
    "timeout_ms",
    "wait_ready",
]

_U64_LIMIT = 1 << 64
_INITVAL_LIMIT = 1 << 32
_NO_FILENO = object()
# poll(2) takes an int of milliseconds; longer timeouts are waited in slices.
_MAX_POLL_MS = 2**31 - 1


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


FileDescriptorLike = Union[int, _HasFileno]


def raise_errno(err: int) -> NoReturn:
    """Raise the OSError subclass the interpreter maps *err* to."""
    raise OSError(err, os.strerror(err))


def as_fd(obj: object) -> int:
    """Convert an int or an object with fileno() to an fd, as os functions do.

    An int subclass counts by its value (operator.index), never by an
    ``__int__`` or ``__repr__`` of its own, as CPython's converter does.
    """
    if isinstance(obj, int):
        fd = operator.index(obj)
    else:
        fileno: Any = getattr(obj, "fileno", _NO_FILENO)
        if fileno is _NO_FILENO:
            raise TypeError("argument must be an int, or have a fileno() method.")
        fd = fileno()  # CPython calls whatever fileno is: None raises TypeError
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
        fd = operator.index(fd)
    # Range before sign, as CPython does: -2**70 is an OverflowError there.
    if not -(2**31) <= fd <= 2**31 - 1:
        raise OverflowError("Python int too large to convert to C int")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def as_fd_numbers(takes: str, *fds: object) -> list[int]:
    """*fds* for an adopter (``from_fd``, ``from_fds``): fd numbers only,
    since an object with ``fileno()`` still owns its fd and two owners would
    close it twice; every type is checked before any value.  *takes* starts
    the TypeError: "from_fd() takes an fd number"."""
    for fd in fds:
        if not isinstance(fd, int):
            raise TypeError(
                f"{takes}, not {type(fd).__name__!r}: the object still owns its fd; "
                "adopt os.dup(obj.fileno()) instead"
            )
    return [as_fd(fd) for fd in fds]


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
    initval = operator.index(initval)  # an int subclass's value, not its __int__
    if initval < 0:
        raise ValueError("value must be positive")
    if initval >= _U64_LIMIT:  # CPython converts to unsigned long first
        raise OverflowError("Python int too large to convert to C unsigned long")
    if initval >= _INITVAL_LIMIT:
        raise OverflowError("Python int too large for C unsigned int")
    return initval


def check_value(value: object) -> int:
    """Validate a value to add to the counter exactly as os.eventfd_write does.

    2**64 - 1 passes here, as it does in CPython; the kernel refuses it.
    """
    if not isinstance(value, int):
        raise TypeError("an integer is required")
    value = operator.index(value)  # an int subclass's value, not its __int__
    if value < 0:
        raise ValueError("value must be positive")
    if value >= _U64_LIMIT:
        raise OverflowError("int too big to convert")
    return value


def read_again(fd: int) -> int:
    """Read the count of the raw eventfd *fd* after the drop-in's hot read
    (``efx_take``) returned 0.

    That 0 says only that the read failed (it took nothing), not why: the
    read is made again through ``efx_read``, which returns its own errno (see
    csrc/eventfd_shim.h).  EINTR is retried once signal handlers have had
    their chance to run (the interpreter runs them at the loop's back edge,
    so an exception raised by one leaves from here).
    """
    count = ffi.new("uint64_t *")  # per call: a signal handler may read too
    while True:
        result = lib.efx_read(fd, count)
        if not result:
            return int(count[0])
        if result != -errno.EINTR:
            raise_errno(-result)


def retry_write(fd: int, value: int, result: int) -> None:
    """Finish a drop-in write to the raw eventfd *fd* whose first try
    returned -errno in *result*: EINTR wrote nothing, so it is retried."""
    while result == -errno.EINTR:
        result = lib.efx_write(fd, value)
    if result:
        raise_errno(-result)


#: The longest spin budget: a wake-up costs tens of microseconds, so
#: spinning longer than this never pays.
MAX_SPIN = 1.0
#: A spin returns to Python at least this often, so that signal handlers
#: run (Ctrl-C leaves a spin within about this long).
SPIN_SLICE_NS = 1_000_000


def spin_ns(spin: object) -> int:
    """A spin budget in seconds (0 <= spin <= MAX_SPIN) as nanoseconds."""
    if not isinstance(spin, numbers.Real) or isinstance(spin, bool):
        raise TypeError(f"spin must be a number of seconds, not {type(spin).__name__!r}")
    try:
        seconds = float(spin)
    except OverflowError:  # an int past float's range: as absurd as inf
        seconds = math.inf
    if not 0 <= seconds <= MAX_SPIN:  # NaN included
        raise ValueError(f"spin must be between 0 and {MAX_SPIN} seconds, not {spin!r}")
    return int(seconds * 1e9)


def deadline(timeout: float | None) -> float | None:
    """The monotonic deadline of *timeout* seconds (None: none), validated
    as ``timeout_ms`` does; a negative timeout is already past."""
    timeout_ms(timeout)
    return None if timeout is None else time.monotonic() + max(float(timeout), 0.0)


def left_ms(deadline: float | None) -> int:
    """poll(2) milliseconds until *deadline* (None: -1, forever)."""
    return -1 if deadline is None else timeout_ms(deadline - time.monotonic())


def wait_ready(
    owner: Any,
    deadline: float | None,
    spin: int,
    spin_step: Callable[[Any, int, int], int],
    sleep_step: Callable[[Any, int, int], int],
) -> bool:
    """Wait until *owner* is ready (a count is pending), at most until
    *deadline*: True, or False once it passed.  Nothing is taken.

    The one waiting loop of every owner: :func:`spin_first`, then sleeps;
    all of it counts against the deadline.  Each step is one crossing that
    looks without taking and returns to Python, so signal handlers run
    between steps (a raising one leaves with the count still in the
    counter) and EINTR is retried with the time left (PEP 475).  The steps
    are the shim's (h, spin_ns, limit_ns) and (h, ms, spun_ns); a failure
    raises through ``owner._fail`` (ValueError once closed).
    """
    start = time.monotonic()
    if spin_first(owner, deadline, spin, spin_step):
        return True
    h, spun = owner._h, int((time.monotonic() - start) * 1e9)
    while True:
        result = sleep_step(h, left_ms(deadline), spun)
        if result > 0:
            return True
        if result < 0 and result != -errno.EINTR:
            owner._fail(result)
        if deadline is not None and time.monotonic() >= deadline:
            return False


def spin_first(
    owner: Any, deadline: float | None, spin: int, spin_step: Callable[[Any, int, int], int]
) -> bool:
    """Spin *spin* ns (< 0: the shim's adaptive budget), never past
    *deadline*, in slices of at most SPIN_SLICE_NS (a slice returns to
    Python, so signal handlers run): True when a count is pending (not
    taken), False when none came."""
    if not spin or not left_ms(deadline):
        return False
    h = owner._h
    spin_end = None if spin < 0 else time.monotonic() + spin / 1e9
    while True:
        now = time.monotonic()
        limit = min(
            SPIN_SLICE_NS / 1e9,
            math.inf if spin_end is None else spin_end - now,
            math.inf if deadline is None else deadline - now,
        )
        if limit <= 0:
            return False
        result = spin_step(h, spin, int(limit * 1e9))
        if result > 0:
            return True
        if result < 0:
            owner._fail(result)
        if spin_end is None:
            return False  # the adaptive budget fits one slice


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
