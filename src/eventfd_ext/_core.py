"""The one place that turns shim results into Python values and exceptions.

Every public entry point (the drop-in functions, EventFD, Doorbell, MaskFD)
calls the shim directly on its fast path and comes here only when the shim
reports a failure, so that EINTR retries (PEP 475), the owner's closed check
and errno mapping are written once (:func:`finish`), as is the waiting loop
(:func:`wait_ready`).  Arguments are checked in ``_checks``.
"""

from __future__ import annotations

import errno
import math
import os
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ._checks import check_timeout

if TYPE_CHECKING:
    from ._shim import OwnerHandle

__all__ = [
    "SPIN_SLICE_NS",
    "deadline",
    "fail_errno",
    "finish",
    "left_ms",
    "raise_errno",
    "sleep_until",
    "spin_first",
    "timeout_ms",
    "wait_ready",
    "warn_unclosed",
]

_EINTR = -errno.EINTR
# poll(2) takes an int of milliseconds; longer timeouts are waited in slices.
_MAX_POLL_MS = 2**31 - 1
#: A spin returns to Python at least this often, so that signal handlers
#: run (Ctrl-C leaves a spin within about this long).
SPIN_SLICE_NS = 1_000_000
#: A shim step: (handle, budget, limit) -> > 0 ready, 0 not yet, < 0 -errno.
Step = Callable[["OwnerHandle", int, int], int]
#: What raises for a failed call's -errno: an owner's ``_fail`` (ValueError
#: once closed, else the errno's OSError) or :func:`fail_errno`.
Fail = Callable[[int], NoReturn]


def raise_errno(err: int) -> NoReturn:
    """Raise the OSError subclass the interpreter maps *err* to."""
    raise OSError(err, os.strerror(err))


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


def fail_errno(result: int) -> NoReturn:
    """The failure of a call that has no owner (the drop-ins on a raw fd):
    the OSError of the -errno in *result*."""
    raise_errno(-result)


def finish(result: int, fail: Fail, call: Callable[..., int], *args: Any) -> int:
    """Finish a shim call whose first try, ``call(*args)``, returned *result*.

    -EINTR did nothing, so the call is made again (PEP 475) once the
    interpreter has run the signal handlers (it runs them at this loop's
    back edge: one that raises leaves from here).  Any other negative
    result goes to *fail*.  Returns the first result that is not negative.
    """
    while result == _EINTR:
        result = call(*args)
    if result < 0:
        fail(result)
    return result


def deadline(timeout: object) -> float | None:
    """The monotonic deadline of *timeout* seconds (None: none), checked by
    ``check_timeout`` (TypeError, or ValueError for a negative or NaN one)."""
    seconds = check_timeout(timeout)
    return None if seconds is None else time.monotonic() + seconds


def left_ms(deadline: float | None) -> int:
    """poll(2) milliseconds until *deadline* (None: -1, forever)."""
    return -1 if deadline is None else timeout_ms(deadline - time.monotonic())


def sleep_until(fail: Fail, deadline: float | None, step: Callable[[int], int]) -> bool:
    """Call ``step(ms)`` with the poll(2) milliseconds left until it says
    ready (> 0: True) or *deadline* passes (False).  -EINTR is retried with
    the time left (PEP 475; handlers run in between), any other failure
    raises through *fail*."""
    while True:
        result = step(left_ms(deadline))
        if result > 0:
            return True
        if result < 0 and result != _EINTR:
            fail(result)
        if deadline is not None and time.monotonic() >= deadline:
            return False


def wait_ready(
    h: OwnerHandle,
    fail: Fail,
    deadline: float | None,
    spin: int,
    spin_step: Step,
    sleep_step: Step,
) -> bool:
    """Wait until the owner of handle *h* is ready (a count is pending), at most until
    *deadline*: True, or False once it passed.  Nothing is taken.

    The one waiting loop of every owner: :func:`spin_first`, then sleeps
    (:func:`sleep_until`); all of it counts against the deadline.  Each step
    is one crossing that looks without taking and returns to Python, so
    signal handlers run between steps (a raising one leaves with the count
    still in the counter).  The steps are the shim's (h, spin_ns, limit_ns)
    and (h, ms, spun_ns).
    """
    start = time.monotonic()
    if spin_first(h, fail, deadline, spin, spin_step):
        return True
    spun = int((time.monotonic() - start) * 1e9)
    return sleep_until(fail, deadline, lambda ms: sleep_step(h, ms, spun))


def spin_first(
    h: OwnerHandle, fail: Fail, deadline: float | None, spin: int, spin_step: Step
) -> bool:
    """Spin *spin* ns (< 0: the shim's adaptive budget), never past
    *deadline*, in slices of at most SPIN_SLICE_NS (a slice returns to
    Python, so signal handlers run): True when a count is pending (not
    taken), False when none came."""
    if not spin or (deadline is not None and not left_ms(deadline)):
        return False
    spin_end = None if spin < 0 else time.monotonic() + spin / 1e9
    # Whichever comes first of the spin's end and the deadline; None when
    # neither bounds the slices (the common wait: the adaptive budget and no
    # deadline), which then need no clock.
    if spin_end is None or deadline is None:
        end = deadline if spin_end is None else spin_end
    else:
        end = min(spin_end, deadline)
    while True:
        limit = SPIN_SLICE_NS
        if end is not None:
            left = end - time.monotonic()  # inf for a timeout past float's range
            if left <= 0:
                return False
            if left * 1e9 < limit:
                limit = int(left * 1e9)
        result = spin_step(h, spin, limit)
        if result > 0:
            return True
        if result < 0:
            fail(result)
        if spin_end is None:
            return False  # the adaptive budget fits one slice


def timeout_ms(seconds: float) -> int:
    """poll(2) milliseconds for *seconds* (checked already; <= 0: 0).

    Rounds up, so a wait never ends before the timeout has passed.
    """
    if seconds <= 0:
        return 0
    if seconds * 1000 >= _MAX_POLL_MS:  # also inf, which math.ceil refuses
        return _MAX_POLL_MS
    return math.ceil(seconds * 1000)
