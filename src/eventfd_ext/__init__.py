"""Linux eventfd for Python: fast cffi bindings, an EventFD object, drop-in
replacements for the ``os.eventfd*`` functions, Doorbell, an eventfd-like
counter in shared memory that signals without a syscall when nobody sleeps,
MaskFD, a userspace emulation of the never-merged EFD_MASK flag, and
Channel, a bounded queue of byte messages in shared memory woken by Doorbells."""

import importlib.metadata as _metadata

from . import _reduction  # noqa: F401  (registers the multiprocessing reductions)
from ._backings import choose_backing
from ._channel import Channel
from ._constants import (
    EFD_CLOEXEC,
    EFD_MASK,
    EFD_MASK_EVENTS,
    EFD_NONBLOCK,
    EFD_SEMAPHORE,
)
from ._doorbell import Doorbell
from ._dropin import eventfd, eventfd_read, eventfd_write
from ._eventfd import EventFD
from ._include import get_include
from ._maskabi import EFD_MASK_SIZE, MaskState, pack_mask, unpack_mask
from ._maskfd import MaskFD
from ._passing import (
    recv_channel,
    recv_doorbell,
    recv_eventfd,
    recv_maskfd,
    send_channel,
    send_doorbell,
    send_eventfd,
    send_maskfd,
)

__all__ = [
    "EFD_CLOEXEC",
    "EFD_MASK",
    "EFD_NONBLOCK",
    "EFD_SEMAPHORE",
    "Channel",
    "Doorbell",
    "EventFD",
    "EFD_MASK_EVENTS",
    "EFD_MASK_SIZE",
    "MaskFD",
    "MaskState",
    "choose_backing",
    "get_include",
    "pack_mask",
    "unpack_mask",
    "eventfd",
    "eventfd_read",
    "eventfd_write",
    "recv_channel",
    "recv_doorbell",
    "recv_maskfd",
    "recv_eventfd",
    "send_channel",
    "send_doorbell",
    "send_maskfd",
    "send_eventfd",
]

try:
    # The one place the version lives is pyproject.toml; this reads it back
    # from the installed distribution's metadata.
    __version__ = _metadata.version("eventfd_ext")
except _metadata.PackageNotFoundError:  # pragma: no cover - imported from a bare tree
    __version__ = "0+unknown"
