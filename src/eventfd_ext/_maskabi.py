"""The byte ABI of the EFD_MASK patch: the 12-byte ``struct efd_mask``
{u32 events; u64 data;} (native order, packed), the pair it carries, and
its packing (the checks of an event mask and a data word are ``_checks``)."""

from __future__ import annotations

import struct
import sys
from typing import TYPE_CHECKING, NamedTuple

from ._checks import check_data, check_events
from ._constants import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI

if TYPE_CHECKING:
    # Any object with the buffer protocol (bytes, bytearray, memoryview, array).
    if sys.version_info >= (3, 12):
        from collections.abc import Buffer as Buffer
    else:
        from typing_extensions import Buffer as Buffer

__all__ = [
    "EFD_MASK_SIZE",
    "MaskState",
    "STRUCT",
    "event_names",
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


class MaskState(NamedTuple):
    """The pair an EFD_MASK read returns: the event bits and the data word."""

    events: int
    data: int


def event_names(events: int) -> str:
    """``"POLLIN|POLLOUT"`` for 5, ``"0"`` for no bits."""
    return "|".join(name for bit, name in EVENT_NAMES if events & bit) or "0"


def pack_mask(events: int, data: int = 0) -> bytes:
    """The 12-byte ``struct efd_mask`` for (*events*, *data*), native order.

    Invalid events or data raise as :meth:`MaskFD.write` does.
    """
    return STRUCT.pack(check_events(events), check_data(data))


def unpack_mask(buffer: Buffer) -> MaskState:
    """Decode the first 12 bytes of *buffer* (any bytes-like object).

    ValueError for a shorter buffer or an invalid event bit.
    """
    view = memoryview(buffer).cast("B")
    if len(view) < EFD_MASK_SIZE:
        raise ValueError(f"an efd_mask is {EFD_MASK_SIZE} bytes, the buffer has {len(view)}")
    events, data = STRUCT.unpack_from(view)
    return MaskState(check_events(events), data)
