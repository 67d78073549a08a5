"""The MaskFD backings: which kernel object shows the bits, what each one
cannot do, and why (the text of the error that refuses it).  The mechanism
of each is in csrc/maskfd_shim.c; its measured fidelity in docs/maskfd.md."""

from __future__ import annotations

from typing import Literal

from ._constants import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI
from ._maskabi import check_events
from ._shim import lib

__all__ = ["BACKINGS", "Backing", "KINDS", "NAMES", "CANT_CLEAR", "CANT_SET", "choose_backing"]

Backing = Literal["stream", "dgram", "pipe"]

#: The backings, in order of preference when several would do.
BACKINGS: tuple[Backing, ...] = ("stream", "dgram", "pipe")
#: The shim's number of each backing, and back.
KINDS: dict[str, int] = {
    "stream": lib.MFX_STREAM,
    "dgram": lib.MFX_DGRAM,
    "pipe": lib.MFX_PIPE,
}
NAMES: dict[int, Backing] = {kind: name for name, kind in KINDS.items()}  # type: ignore[misc]


def choose_backing(uses: int) -> Backing:
    """The backing that shows every bit in *uses* most faithfully.

    IN and HUP alone: ``pipe`` (both reversible, the cheapest IN).  ERR
    without PRI: ``dgram`` (ERR reversible, without HUP).  Anything else,
    above all OUT and PRI: ``stream`` (all 16 IN/PRI/OUT/ERR combinations).
    """
    uses = check_events(uses, "uses")
    if not uses & ~(POLLIN | POLLHUP):
        return "pipe"
    if uses & POLLERR and not uses & POLLPRI:
        return "dgram"
    return "stream"


# Why a backing refuses a bit, for the error message.
CANT_CLEAR = {
    ("stream", POLLHUP): "the peer's shutdown is irreversible; backing='pipe' clears HUP",
    ("stream", POLLOUT): "after HUP the send buffer can no longer be filled",
    ("dgram", POLLHUP): "shutdown is irreversible; backing='pipe' clears HUP",
    ("dgram", POLLOUT): "after HUP the send buffer can no longer be filled",
}
CANT_SET = {
    ("stream", POLLPRI): "needs AF_UNIX MSG_OOB (Linux >= 5.15, CONFIG_AF_UNIX_OOB), "
    "which this kernel refused, or a peer that has not shut down",
    ("stream", POLLERR): "ERR comes from the peer's last close, once, with unread data "
    "at the peer (none after HUP with OUT shown), and only while no other process "
    "holds this MaskFD; backing='dgram' shows ERR reversibly",
    ("dgram", POLLPRI): "datagram sockets have no out-of-band data; use backing='stream'",
    ("pipe", POLLPRI): "a pipe never shows PRI; use backing='stream'",
    ("pipe", POLLOUT): "a pipe's read end never shows OUT; use backing='stream'",
    ("pipe", POLLERR): "a pipe's read end never shows ERR; use backing='dgram'",
}
