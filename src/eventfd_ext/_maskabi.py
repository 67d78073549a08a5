"""The byte ABI of the EFD_MASK patch: the 12-byte ``struct efd_mask``
{u32 events; u64 data;} (native order, packed), the pair it carries, and
how an event mask and a data word are checked, as CPython's converters
check ints."""

from __future__ import annotations

import operator
import struct
from typing import Any, NamedTuple

from ._constants import EFD_MASK_EVENTS, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI

__all__ = [
    "EFD_MASK_SIZE",
    "MaskState",
    "STRUCT",
    "check_data",
    "check_events",
    "event_names",
    "index",
    "pack_mask",
    "unpack_mask",
]

#: Size of the packed ``struct efd_mask {u32 events; u64 data;}`` (native order).
EFD_MASK_SIZE: int = 12
STRUCT = struct.Struct("=IQ")
EVENT_NAMES = (
    (POLLIN, "POLLIN"),
    (POLLPRI, "POLLPRI"),
    (POLLOUT, "POLLOUT"),
    (POLLERR, "POLLERR"),
    (POLLHUP, "POLLHUP"),
)
_U64_LIMIT = 1 << 64


class MaskState(NamedTuple):
    """The pair an EFD_MASK read returns: the event bits and the data word."""

    events: int
    data: int


def event_names(events: int) -> str:
    """``"POLLIN|POLLOUT"`` for 5, ``"0"`` for no bits."""
    return "|".join(name for bit, name in EVENT_NAMES if events & bit) or "0"


def index(value: object, what: str) -> int:
    """*value* as CPython's C int converters take it: an int (an int
    subclass at its real value, never its ``__int__``) or an object with
    ``__index__``; TypeError for anything else (float, Decimal, str, None)."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None


def check_events(events: object, what: str = "events") -> int:
    events = index(events, what)
    if events < 0 or events & ~EFD_MASK_EVENTS:
        raise ValueError(
            f"invalid events {events:#x}: only POLLIN|POLLPRI|POLLOUT|POLLERR|"
            f"POLLHUP ({EFD_MASK_EVENTS:#x}) may be set"
        )
    return events


def check_data(data: object) -> int:
    data = index(data, "data")
    if data < 0:
        raise ValueError(f"data must be >= 0 (an unsigned 64-bit word), not {data}")
    if data >= _U64_LIMIT:
        raise OverflowError(f"data {data:#x} does not fit in 64 bits")
    return data


def pack_mask(events: int, data: int = 0) -> bytes:
    """The 12-byte ``struct efd_mask`` for (*events*, *data*), native order.

    Invalid events or data raise as :meth:`MaskFD.write` does.
    """
    return STRUCT.pack(check_events(events), check_data(data))


def unpack_mask(buffer: Any) -> MaskState:
    """Decode the first 12 bytes of *buffer* (any bytes-like object).

    ValueError for a shorter buffer or an invalid event bit.
    """
    view = memoryview(buffer).cast("B")
    if len(view) < EFD_MASK_SIZE:
        raise ValueError(f"an efd_mask is {EFD_MASK_SIZE} bytes, the buffer has {len(view)}")
    events, data = STRUCT.unpack_from(view)
    return MaskState(check_events(events), data)
