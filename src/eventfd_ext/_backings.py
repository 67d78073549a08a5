"""The MaskFD backings, one record each: the kernel object that shows the
bits (its shim kind), what it cannot do, and why (the text of the error
that refuses it).  The mechanism of each is its ``struct mfx_backing_ops``
in csrc/maskfd_shim.c; its measured fidelity is in docs/maskfd.md.

As in :mod:`selectors`, the variation is data: :class:`MaskFD` holds no
test on a backing's name, only look-ups in these records."""

from __future__ import annotations

import errno
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from ._checks import check_events
from ._constants import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI
from ._maskabi import EVENT_NAMES, event_names
from ._requirements import UNIX_OOB
from ._shim import lib

__all__ = [
    "BACKINGS",
    "BY_KIND",
    "BY_NAME",
    "Backing",
    "BackingRecord",
    "DGRAM",
    "PIPE",
    "RECORDS",
    "STREAM",
    "choose_backing",
]

Backing = Literal["stream", "dgram", "pipe"]

_BUSY = (
    "another process holds a copy of the object whose last close makes it "
    "(a process forked from C, without Python's fork hooks, or one forked an "
    "instant ago); nothing was changed"
)


@dataclass(frozen=True, eq=False)
class BackingRecord:
    """One backing: its name, the shim's number for it, and why it refuses
    each bit it refuses (the shim says which bits; these say why)."""

    name: Backing
    #: The shim's kind number (``lib.MFX_*``), as ``mfx_new`` takes it.
    kind: int
    #: Bits it cannot show (always, or once some state is reached): why.
    cant_set: Mapping[int, str]
    #: Bits it can no longer clear once shown: why.
    cant_clear: Mapping[int, str]
    #: Bits only the creating process may change: why.
    owner_only: Mapping[int, str]
    #: Bits of cant_set it never shows, whatever the kernel or the state.
    never: int = 0

    def check_uses(self, uses: object) -> int:
        """*uses* (the bits a caller means to write), if this backing can
        show every one of them; ValueError naming the ones it never shows."""
        uses = check_events(uses, "uses")
        if uses & self.never:
            names = event_names(uses & self.never)
            why = _reasons(self.cant_set, uses & self.never, "not available")
            raise ValueError(
                f"uses={event_names(uses)}: the {self.name!r} backing never shows "
                f"{names} ({why}); leave out backing= to have one chosen"
            )
        return uses

    def refusal(self, err: int, bits: int) -> OSError:
        """The error for a change the shim refused with *err*, naming *bits*
        (exactly the bits that call refused)."""
        names = event_names(bits)
        if err == errno.ENOTRECOVERABLE:
            why = _reasons(self.cant_clear, bits, "irreversible")
            text = f"the {self.name!r} backing cannot clear {names}: {why}"
        elif err == errno.EOPNOTSUPP:
            why = _reasons(self.cant_set, bits, "not available")
            text = f"the {self.name!r} backing cannot show {names}: {why}"
        elif err == errno.EBUSY:
            text = f"the {self.name!r} backing cannot show {names} now: {_BUSY}"
        elif err == errno.EPERM:
            why = _reasons(self.owner_only, bits, "the creator holds the object")
            text = (
                f"the {self.name!r} backing changes {names} only in the process "
                f"that created it ({why})"
            )
        else:
            text = f"the {self.name!r} backing refused {names}"
        return OSError(err, text)


def _reasons(why: Mapping[int, str], bits: int, default: str) -> str:
    return "; ".join(why.get(bit, default) for bit, _ in EVENT_NAMES if bits & bit)


def _why(reasons: dict[int, str]) -> Mapping[int, str]:
    return MappingProxyType(reasons)


_HUP_FINAL = "shutdown is irreversible; backing='pipe' clears HUP"
_OUT_AFTER_HUP = "after HUP the send buffer can no longer be filled"

STREAM = BackingRecord(
    name="stream",
    kind=lib.MFX_STREAM,
    cant_set=_why(
        {
            POLLPRI: f"needs {UNIX_OOB.what} (Linux >= {UNIX_OOB.linux}), "
            "which this kernel refused, or a peer that has not shut down",
            POLLERR: "ERR comes from the peer's last close, once, with unread data "
            "at the peer (none after HUP with OUT shown), and only while no other process "
            "holds this MaskFD; backing='dgram' shows ERR reversibly",
        }
    ),
    cant_clear=_why(
        {
            POLLHUP: "the peer's shutdown is irreversible; backing='pipe' clears HUP",
            POLLOUT: _OUT_AFTER_HUP,
        }
    ),
    owner_only=_why({}),
)
DGRAM = BackingRecord(
    name="dgram",
    kind=lib.MFX_DGRAM,
    cant_set=_why(
        {
            POLLPRI: "datagram sockets have no out-of-band data; use backing='stream'",
        }
    ),
    cant_clear=_why({POLLHUP: _HUP_FINAL, POLLOUT: _OUT_AFTER_HUP}),
    owner_only=_why({}),
    never=POLLPRI,
)
PIPE = BackingRecord(
    name="pipe",
    kind=lib.MFX_PIPE,
    cant_set=_why(
        {
            POLLPRI: "a pipe never shows PRI; use backing='stream'",
            POLLOUT: "a pipe's read end never shows OUT; use backing='stream'",
            POLLERR: "a pipe's read end never shows ERR; use backing='dgram'",
        }
    ),
    cant_clear=_why({}),
    owner_only=_why(
        {
            POLLHUP: "HUP means every writer closed, and it holds the writer",
        }
    ),
    never=POLLPRI | POLLOUT | POLLERR,
)

#: The records, in order of preference when several would do.
RECORDS: tuple[BackingRecord, ...] = (STREAM, DGRAM, PIPE)
BACKINGS: tuple[Backing, ...] = tuple(record.name for record in RECORDS)
BY_NAME: Mapping[str, BackingRecord] = MappingProxyType({r.name: r for r in RECORDS})
BY_KIND: Mapping[int, BackingRecord] = MappingProxyType({r.kind: r for r in RECORDS})


def choose_backing(uses: int) -> Backing:
    """The backing that shows every bit in *uses* most faithfully.

    IN and HUP alone: ``pipe`` (both reversible, the cheapest IN).  ERR
    without PRI: ``dgram`` (ERR reversible, without HUP).  Anything else,
    above all OUT and PRI: ``stream`` (all 16 IN/PRI/OUT/ERR combinations).
    """
    uses = check_events(uses, "uses")
    if not uses & ~(POLLIN | POLLHUP):
        return PIPE.name
    if uses & POLLERR and not uses & POLLPRI:
        return DGRAM.name
    return STREAM.name
