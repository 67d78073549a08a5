"""The flags and limits of eventfd and EFD_MASK, in one place."""

from __future__ import annotations

from ._shim import lib

__all__ = [
    "EFD_CLOEXEC",
    "EFD_MASK",
    "EFD_MASK_EVENTS",
    "EFD_NONBLOCK",
    "EFD_SEMAPHORE",
    "MAX_COUNT",
    "OVERFLOW",
    "POLLERR",
    "POLLHUP",
    "POLLIN",
    "POLLNVAL",
    "POLLOUT",
    "POLLPRI",
]

#: Close the fd on exec (``O_CLOEXEC``).
EFD_CLOEXEC: int = lib.EFD_CLOEXEC
#: Non-blocking reads and writes (``O_NONBLOCK``).
EFD_NONBLOCK: int = lib.EFD_NONBLOCK
#: Reads take 1 from the counter instead of all of it.
EFD_SEMAPHORE: int = lib.EFD_SEMAPHORE
#: The flag value of the never-merged EFD_MASK patch; see :class:`MaskFD`.
EFD_MASK: int = 1 << 1

#: The largest count a write can leave in the counter (2**64 - 2).
MAX_COUNT: int = 0xFFFF_FFFF_FFFF_FFFE
#: The count the kernel reserves to mark an overflow: no write may carry it.
OVERFLOW: int = 0xFFFF_FFFF_FFFF_FFFF

POLLIN: int = lib.POLLIN
POLLPRI: int = lib.POLLPRI
POLLOUT: int = lib.POLLOUT
POLLERR: int = lib.POLLERR
POLLHUP: int = lib.POLLHUP
POLLNVAL: int = lib.POLLNVAL
#: Every bit an EFD_MASK write may carry: POLLIN|POLLPRI|POLLOUT|POLLERR|POLLHUP.
EFD_MASK_EVENTS: int = lib.MFX_VALID
