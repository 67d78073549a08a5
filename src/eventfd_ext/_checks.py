"""The one home of argument checks: every class and helper validates its
arguments here, so that the same bad input gets the same message from
EventFD, Doorbell and MaskFD.

Each check returns the value converted (an int subclass at its real value,
never through its own ``__int__``) or raises TypeError for a wrong type and
ValueError (OverflowError past a C type's range, as CPython's converters do)
for a wrong value, naming the argument, the range it must be in, and what it
was.  A check never touches an fd: a refused call changes nothing.

The drop-ins (``eventfd``, ``eventfd_read``, ``eventfd_write``) do not use
these: they leave conversion to the running interpreter's ``os`` functions,
whose messages they must match word for word.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Protocol

from ._constants import EFD_MASK_EVENTS, OVERFLOW

__all__ = [
    "ADAPTIVE_SPIN",
    "FileDescriptorLike",
    "MAX_SPIN",
    "RESERVED_VALUE",
    "as_fd",
    "as_fd_numbers",
    "check_choice",
    "check_data",
    "check_events",
    "check_initval",
    "check_timeout",
    "check_value",
    "index",
    "spin_ns",
]

_U64_LIMIT = 1 << 64
_INITVAL_LIMIT = 1 << 32
_NO_FILENO = object()

#: The longest spin budget in seconds, for every class: a wake-up costs tens
#: of microseconds, so spinning longer than this never pays.
MAX_SPIN = 1.0
#: The shim's spin budget for "the handle's adaptive budget" (Doorbell's
#: ``spin=None``).
ADAPTIVE_SPIN = -1
#: Why 2**64 - 1 is refused although it fits the counter's type.
RESERVED_VALUE = (
    "2**64 - 1 cannot be written to an eventfd (the kernel reserves it to mark an overflow)"
)


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


FileDescriptorLike = int | _HasFileno


def _type_name(value: object) -> str:
    return type(value).__name__


def index(value: object, what: str) -> int:
    """*value* as CPython's C int converters take it: an int (an int
    subclass at its real value, never its ``__int__``) or an object with
    ``__index__``; TypeError for anything else (float, Decimal, str, None)."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {_type_name(value)!r}") from None


def check_initval(initval: object) -> int:
    """An eventfd's initial count: 0 <= initval < 2**32 (a C unsigned int,
    as eventfd(2) takes it)."""
    initval = index(initval, "initval")
    if not 0 <= initval < _INITVAL_LIMIT:
        error = ValueError if initval < 0 else OverflowError
        raise error(f"initval must be between 0 and 2**32 - 1, not {initval}")
    return initval


def check_value(value: object) -> int:
    """A value to add to a counter: 0 <= value <= 2**64 - 2 (2**64 - 1 is
    the kernel's overflow mark)."""
    value = index(value, "value")
    if value == OVERFLOW:
        raise ValueError(RESERVED_VALUE)
    if not 0 <= value < OVERFLOW:
        error = ValueError if value < 0 else OverflowError
        raise error(f"value must be between 0 and 2**64 - 2, not {value}")
    return value


def _seconds(value: object, must: str) -> float:
    """*value*, any real number but a bool, as seconds; an int past float's
    range is as absurd as inf, so it is +-inf.  TypeError starting *must*
    otherwise.  A bool is refused, although CPython's time.sleep takes it:
    as a duration it is a slip (a flag passed where seconds go)."""
    if isinstance(value, bool):
        raise TypeError(f"{must}, not a bool ({value!r})")
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{must}, not {_type_name(value)!r}")
    try:
        return float(value)
    except OverflowError:  # an int past float's range
        return math.inf if operator.gt(value, 0) else -math.inf


def spin_ns(spin: object, *, adaptive: bool = False) -> int:
    """A spin budget in seconds (0 <= spin <= MAX_SPIN) as nanoseconds;
    with *adaptive*, None is the shim's adaptive budget (ADAPTIVE_SPIN)."""
    if spin is None and adaptive:
        return ADAPTIVE_SPIN
    seconds = _seconds(spin, "spin must be a number of seconds")
    if not 0 <= seconds <= MAX_SPIN:  # NaN included
        raise ValueError(f"spin must be between 0 and {MAX_SPIN} seconds, not {spin!r}")
    return int(seconds * 1e9)


def check_timeout(timeout: object) -> float | None:
    """A timeout in seconds (>= 0, inf allowed: it waits forever) or None
    (wait forever)."""
    if timeout is None:
        return None
    seconds = _seconds(timeout, "timeout must be a number of seconds or None")
    if not seconds >= 0:  # NaN included
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, not {timeout!r}")
    return seconds


def check_choice(value: object, what: str, choices: tuple[str, ...]) -> str:
    """One of the names *choices*: TypeError for a value that is no str,
    ValueError for another name."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be one of {choices}, not {_type_name(value)!r}")
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, not {value!r}")
    return value


def check_events(events: object, what: str = "events") -> int:
    """An event mask of POLLIN|POLLPRI|POLLOUT|POLLERR|POLLHUP bits."""
    events = index(events, what)
    if events < 0 or events & ~EFD_MASK_EVENTS:
        raise ValueError(
            f"invalid {what} {events:#x}: only POLLIN|POLLPRI|POLLOUT|POLLERR|"
            f"POLLHUP ({EFD_MASK_EVENTS:#x}) may be set"
        )
    return events


def check_data(data: object) -> int:
    """A MaskFD's data word: an unsigned 64-bit integer."""
    data = index(data, "data")
    if not 0 <= data < _U64_LIMIT:
        error = ValueError if data < 0 else OverflowError
        raise error(f"data must be between 0 and 2**64 - 1, not {data}")
    return data


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
                f"{takes}, not {_type_name(fd)!r}: the object still owns its fd; "
                "adopt os.dup(obj.fileno()) instead"
            )
    return [as_fd(fd) for fd in fds]
