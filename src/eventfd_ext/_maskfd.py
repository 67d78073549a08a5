"""MaskFD: a userspace emulation of the never-merged EFD_MASK eventfd flag.

A MaskFD is a real file descriptor that poll, select, epoll and ``selectors``
accept, showing whatever combination of POLLIN, POLLPRI, POLLOUT, POLLERR and
POLLHUP was last written, with a 64-bit opaque data word beside it.  The
kernel has no such object, so it is built on one it has (the *backing*): the
handed-out fd is one end of an AF_UNIX socket pair or a pipe, and the C shim
makes that end show the stored bits.  Every change (compare old and new bits,
at most a few syscalls per changed bit, none when nothing changes, store)
runs under a process-shared lock inside one call into C, so threads and
processes serialize and readiness always agrees with :meth:`MaskFD.read`.

The state lives in a shared memfd mapping: a MaskFD shared by ``fork`` or
passed to a ``multiprocessing`` child is still one object.  docs/maskfd.md
has the fidelity table of each backing, as measured by
``python -m eventfd_ext.fidelity``.
"""

from __future__ import annotations

import errno
import functools
import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from . import _aio, _core
from ._backings import BACKINGS, BY_KIND, BY_NAME, Backing, BackingRecord, choose_backing
from ._checks import as_fd_numbers, check_choice, check_data, check_events, index
from ._constants import EFD_MASK_EVENTS
from ._maskabi import EFD_MASK_SIZE, STRUCT, MaskState, event_names
from ._owner import FDOwner
from ._shim import ffi, lib

if TYPE_CHECKING:
    from ._maskabi import Buffer
    from ._shim import MaskHandle

__all__ = ["MaskFD"]

_change = lib.mfx_change
_set = lib.mfx_set
_clear = lib.mfx_clear
_EINTR = -errno.EINTR
_EBADF = -errno.EBADF
# A refused change packs the refused bits above the errno (maskfd_shim.h).
_REFUSED_SHIFT = lib.MFX_REFUSED_SHIFT
_ERRNO_MASK = (1 << _REFUSED_SHIFT) - 1
# Out-arguments are allocated per call (never a shared buffer: a signal
# handler may run a MaskFD call between another's return and its use).
# Every shim call that takes the MaskFD's lock waits for it in slices and
# returns -EINTR after each (a holder stopped by SIGSTOP or a debugger would
# otherwise keep it waiting in C): _core.finish calls it again, and signal
# handlers run in between, so Ctrl-C or a raising handler leaves at once.
_new = ffi.new


# Every live MaskFD, so that a fork can mark its state shared.
_live: weakref.WeakSet[MaskFD] = weakref.WeakSet()


def _mark_all_shared(in_child: int) -> None:
    for mask in list(_live):
        handle = getattr(mask, "_m", None)
        if handle is not None and not mask.closed:
            lib.mfx_mark_shared(handle, in_child)  # lock-free: never waits


# Before the fork, in the parent: from that instant another process holds
# copies of every fd, so a change that needs the last reference of one (a
# stream ERR) must be refused at once, not once the child has run its hook.
# In the child: the pipe backing's writer stays with its creator.  A fork
# from C runs neither hook: the shim then checks what the kernel shows and
# refuses with EBUSY (docs/maskfd.md).
os.register_at_fork(
    before=lambda: _mark_all_shared(0),
    after_in_child=lambda: _mark_all_shared(1),
)


class MaskFD(FDOwner):
    """A pollable fd that shows the event bits last written to it (EFD_MASK).

    ``MaskFD(events=0, data=0, *, backing=None, uses=None)``: *backing* is
    ``"stream"`` (the default), ``"dgram"`` or ``"pipe"``; with *uses* (the
    event bits the caller means to write) and no *backing*, the backing is
    chosen by :func:`choose_backing`.

    Give ``fileno()`` to poll/select/epoll/selectors/asyncio and never read
    or write it directly: the fd is one end of the backing's IPC object.
    ``write(events, data)`` replaces both, as an EFD_MASK write does;
    ``set``/``clear``/``update`` change single bits.  What the fd shows
    always includes every bit of the last write; documented extra bits
    (IN beside PRI and HUP on sockets) may come with them.  A write a
    backing cannot show raises OSError (EOPNOTSUPP, or ENOTRECOVERABLE for a
    bit it can no longer clear, or EPERM) and changes nothing.
    """

    __slots__ = ("_m",)

    _m: MaskHandle  # owned (and freed) by the handle _h

    def __init__(
        self,
        events: int = 0,
        data: int = 0,
        *,
        backing: Backing | None = None,
        uses: int | None = None,
    ) -> None:
        events = check_events(events)
        data = check_data(data)
        if backing is None:
            backing = BACKINGS[0] if uses is None else choose_backing(uses)
        record = BY_NAME[check_choice(backing, "backing", BACKINGS)]
        if uses is not None:
            record.check_uses(uses)
        out = _new("struct mfx_handle **")
        result = lib.mfx_new(record.kind, out)
        if result:
            _core.raise_errno(-result)  # the shim closed what it had opened
        self._adopt(out[0])
        if events or data:
            try:
                self.write(events, data)
            except BaseException:
                self.close()
                raise

    def _adopt(self, handle: MaskHandle) -> None:
        """Own *handle* (a new or attached mfx handle) through the core."""
        out = _new("efx_owner_t **")
        result = lib.mfx_own(handle, out)
        if result:
            lib.mfx_free(handle)  # closes its fds
            _core.raise_errno(-result)
        self._own(result, out)
        self._m = handle
        _live.add(self)

    @classmethod
    def from_fds(cls, memfd: int, fd: int, peer: int | None = None) -> MaskFD:
        """Adopt a MaskFD's fds received from another process (``subprocess``
        ``pass_fds=m.fds()``, SCM_RIGHTS): ``MaskFD.from_fds(*fds)``.  The
        object then owns them and will close them; it is the same MaskFD as
        the sender's (one stored pair, one fd showing it).

        Anything else is refused with ValueError, and the fds are left open:
        a memfd without the seals every MaskFD's memfd carries (shrinking it
        would make every holder die of SIGBUS), smaller than the state, or
        without a MaskFD state in it; fds that are not that state's own ends
        (type and inode); a ``pipe`` MaskFD's writer (it stays with its
        creator, whose close is HUP).  A memfd that cannot be mapped
        read-write gives the mapping's OSError.  Only fd numbers are taken:
        an object with ``fileno()`` still owns its fd."""
        numbers = [memfd, fd] if peer is None else [memfd, fd, peer]
        fds = as_fd_numbers("from_fds() takes fd numbers", *numbers)
        if len(set(fds)) != len(fds):
            raise ValueError(f"from_fds() needs distinct fds, not {fds}")
        out = _new("struct mfx_handle **")
        result = lib.mfx_attach(fds[0], fds[1], fds[2] if len(fds) > 2 else -1, out)
        if result == -errno.EINVAL:
            raise ValueError(
                f"fds {', '.join(map(str, fds))} are not a MaskFD's sealed memfd and its "
                "own ends (a pipe's writer stays with its creator)"
            )
        if result:
            _core.raise_errno(-result)
        self = cls.__new__(cls)
        self._adopt(out[0])
        return self

    def fds(self) -> tuple[int, ...]:
        """The fds that make this MaskFD, for ``subprocess`` ``pass_fds``;
        the other process adopts them with ``MaskFD.from_fds(*fds)``:
        ``(memfd, fileno())``, and the peer when it goes with the MaskFD
        (``stream``, ``dgram``; a ``pipe``'s writer stays here).  Still owned
        by this object.  ValueError once closed, never -1.

        The state counts as shared from here on, as after a fork: another
        process may hold the peer, so a ``stream`` ERR is refused."""
        lib.mfx_mark_shared(self._handle(), 0)
        return super().fds()

    def _dup_fds(self) -> list[int]:
        lib.mfx_mark_shared(self._handle(), 0)  # as fds(): another process will hold them
        return super()._dup_fds()

    def __del__(self, _base: Any = FDOwner.__del__, _null: Any = ffi.NULL) -> None:
        try:
            _base(self)
        finally:
            self._m = _null  # freed with the handle: a resurrected MaskFD says closed

    @property
    def backing(self) -> Backing:
        """``"stream"``, ``"dgram"`` or ``"pipe"``: the IPC object behind the fd."""
        return self._record().name

    def _record(self) -> BackingRecord:
        return BY_KIND[lib.mfx_kind(self._handle())]  # fixed per handle: no lock

    def __repr__(self) -> str:
        # Never raises of its own and never waits long: another thread may
        # close the object at any point in here, and a stopped holder may
        # keep the lock.  (An exception a signal handler raises in here
        # still goes through; warn_unclosed copes with interpreter exit.)
        name = type(self).__name__
        fd = lib.efx_owner_fd(self._h)
        if fd < 0:
            return f"<{name} [closed]>"
        handle = self._m  # valid while the object is
        record = BY_KIND.get(lib.mfx_kind(handle))
        out = _new("struct mfx_pair *")
        for _ in range(3):  # a slice each: a stopped holder makes it "busy"
            result = lib.mfx_get(handle, out)
            if result != _EINTR:
                break
        if result == -errno.EBADF:
            return f"<{name} [closed]>"
        backing = "?" if record is None else record.name
        if result:
            return f"<{name} fd={fd} backing={backing} [state busy]>"
        events, data = out.events, out.data
        return (
            f"<{name} fd={fd} backing={backing} "
            f"eventfd-mask: {events:x} ({event_names(events)}) data={data:#x}>"
        )

    # -- the mask -------------------------------------------------------

    def write(self, events: int, data: int = 0) -> None:
        """Replace the stored pair by (*events*, *data*), as EFD_MASK's write.

        The fd then shows every bit of *events*.  Bits already shown cost no
        syscall, so a write that changes no bit makes none.  Invalid input
        raises TypeError/ValueError/OverflowError and changes nothing.
        """
        if type(events) is not int or type(data) is not int:
            # cffi would take any __int__ (Decimal('1.5') as 1).
            events, data = check_events(events), check_data(data)
        try:
            result = _change(self._m, EFD_MASK_EVENTS, events, 1, data)
        except (TypeError, OverflowError):
            self._refuse(events, data)
            raise
        if result:
            self._finish(result, 0, events, _change, EFD_MASK_EVENTS, events, 1, data)

    def set(self, events: int) -> None:
        """Add the bits in *events* to the stored mask; the data stays."""
        if type(events) is not int:  # cffi would take Decimal('1.5') as 1
            events = check_events(events)
        try:
            result = _set(self._m, events)
        except (TypeError, OverflowError):
            self._refuse(events, 0)
            raise
        if result:
            self._finish(result, 0, events, _set, events)

    def clear(self, events: int) -> None:
        """Remove the bits in *events* from the stored mask; the data stays."""
        if type(events) is not int:  # cffi would take Decimal('1.5') as 1
            events = check_events(events)
        try:
            result = _clear(self._m, events)
        except (TypeError, OverflowError):
            self._refuse(events, 0)
            raise
        if result:
            self._finish(result, events, 0, _clear, events)

    def update(self, set: int = 0, clear: int = 0, data: int | None = None) -> None:
        """Set and clear bits (set wins) and optionally replace the data, at once."""
        set_data = data is not None
        value = 0 if data is None else data
        if type(set) is not int or type(clear) is not int or type(value) is not int:
            # cffi would take any __int__ (Decimal('1.5') as 1).
            set, clear, value = check_events(set), check_events(clear), check_data(value)
        try:
            result = _change(self._m, clear, set, set_data, value)
        except (TypeError, OverflowError):
            check_events(clear)
            self._refuse(set, value)
            raise
        if result:
            self._finish(result, clear, set, _change, clear, set, set_data, value)

    def read(self) -> MaskState:
        """The last written pair ``(events, data)``, as EFD_MASK's read."""
        out, h = _new("struct mfx_pair *"), self._handle()  # this call's own buffer
        result = lib.mfx_get(h, out)
        if result:
            _core.finish(result, self._raise, lib.mfx_get, h, out)
        return MaskState(out.events, out.data)

    @property
    def events(self) -> int:
        """The stored event bits."""
        return self.read().events

    @property
    def data(self) -> int:
        """The stored data word."""
        return self.read().data

    # -- async: asyncio, uvloop, trio, anyio (eventfd_ext/_aio.py) --------

    async def await_readable(self) -> None:
        """Wait in a task of asyncio (uvloop included), trio or anyio until
        the fd shows POLLIN (or POLLHUP/POLLERR, which wake readers too),
        changing nothing.  Any number of tasks may wait; close() from any
        thread wakes them with ValueError."""
        loop = _aio.running_loop()
        await _aio.wait(self.fileno(), _aio._READ, self._check_open, loop)

    async def await_writable(self) -> None:
        """Wait until the fd shows POLLOUT (or POLLERR), as await_readable."""
        loop = _aio.running_loop()
        await _aio.wait(self.fileno(), _aio._WRITE, self._check_open, loop)

    # -- the byte ABI of the patch ----------------------------------------

    def write_bytes(self, buffer: Buffer) -> int:
        """Write a packed ``struct efd_mask``, as write(2) on the patch's fd.

        Returns 12.  Bytes past the 12th are ignored; a shorter buffer or an
        invalid event bit raises ``OSError(EINVAL)`` and changes nothing.
        """
        view = memoryview(buffer).cast("B")
        if len(view) < EFD_MASK_SIZE:
            raise OSError(
                errno.EINVAL,
                f"short efd_mask write: {len(view)} bytes, {EFD_MASK_SIZE} needed",
            )
        events, data = STRUCT.unpack_from(view)
        if events & ~EFD_MASK_EVENTS:
            raise OSError(
                errno.EINVAL,
                f"invalid efd_mask events {events:#x} (valid: {EFD_MASK_EVENTS:#x})",
            )
        self.write(events, data)
        return EFD_MASK_SIZE

    def read_bytes(self, size: int = EFD_MASK_SIZE) -> bytes:
        """The stored pair as a packed ``struct efd_mask``, as read(2) would.

        A *size* under 12 raises ``OSError(EINVAL)``; a larger one still
        returns 12 bytes.
        """
        size = index(size, "size")
        if size < EFD_MASK_SIZE:
            raise OSError(
                errno.EINVAL,
                f"short efd_mask read: {size} bytes, {EFD_MASK_SIZE} needed",
            )
        return STRUCT.pack(*self.read())

    # -- diagnostics ------------------------------------------------------

    @property
    def syscalls(self) -> int:
        """Syscalls made so far by changes of this state, in every process.

        Diagnostic: proves that a write changing no bit makes none.
        """
        out = _new("uint64_t *")
        lib.mfx_syscalls(self._handle(), out)
        return int(out[0])

    def limits(self) -> tuple[int, int]:
        """``(cannot_set, cannot_clear)``: bits the backing refuses now."""
        h = self._handle()
        packed = _core.finish(lib.mfx_limits(h), self._raise, lib.mfx_limits, h)
        return packed >> 16, packed & 0xFFFF

    # -- internals --------------------------------------------------------

    def _handle(self) -> MaskHandle:
        self._check_open()
        return self._m

    def _refuse(self, events: object, data: object) -> None:
        """Raise the exception for arguments cffi would not convert (a
        closed object says so first)."""
        self._check_open()
        check_events(events)
        check_data(data)

    def _raise(self, result: int) -> NoReturn:
        """Raise for a shim result other than a change's."""
        if result == _EBADF:
            self._raise_closed()  # closed by another thread meanwhile
        _core.raise_errno(-result)

    def _finish(
        self, result: int, clear: int, set: int, change: Callable[..., int], *args: int
    ) -> None:
        """A change ``change(self._m, *args)`` of bits *clear* and *set*
        returned *result*: finish it through :func:`_core.finish`."""
        fail = functools.partial(self._change_failed, clear, set)
        _core.finish(result, fail, change, self._m, *args)

    def _change_failed(self, clear: int, set: int, result: int) -> NoReturn:
        """Raise what a change's failed *result* means.

        A refusal names the bits the shim refused in that very call, under
        its lock: nothing is asked again, so another holder's change since
        cannot make it name the wrong ones."""
        err, refused = -result & _ERRNO_MASK, -result >> _REFUSED_SHIFT
        if err == errno.EINVAL:
            check_events(clear)
            check_events(set)
        if err == errno.EBADF:
            self._raise_closed()
        if refused:
            raise self._record().refusal(err, refused)
        _core.raise_errno(err)
