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
import operator
import os
import struct
import weakref
from types import TracebackType
from typing import Any, Callable, Literal, NamedTuple, NoReturn

from . import _core
from ._shim import ffi, lib

__all__ = [
    "BACKINGS",
    "EFD_MASK_EVENTS",
    "EFD_MASK_SIZE",
    "MaskFD",
    "MaskState",
    "choose_backing",
    "pack_mask",
    "unpack_mask",
]

Backing = Literal["stream", "dgram", "pipe"]

POLLIN: int = lib.POLLIN
POLLPRI: int = lib.POLLPRI
POLLOUT: int = lib.POLLOUT
POLLERR: int = lib.POLLERR
POLLHUP: int = lib.POLLHUP
#: Every bit an EFD_MASK write may carry: POLLIN|POLLPRI|POLLOUT|POLLERR|POLLHUP.
EFD_MASK_EVENTS: int = lib.MFX_VALID
#: Size of the packed ``struct efd_mask {u32 events; u64 data;}`` (native order).
EFD_MASK_SIZE: int = 12
#: The backings, in order of preference when several would do.
BACKINGS: tuple[Backing, ...] = ("stream", "dgram", "pipe")

_STRUCT = struct.Struct("=IQ")
_KINDS: dict[str, int] = {
    "stream": lib.MFX_STREAM,
    "dgram": lib.MFX_DGRAM,
    "pipe": lib.MFX_PIPE,
}
_NAMES: dict[int, Backing] = {kind: name for name, kind in _KINDS.items()}  # type: ignore[misc]
_EVENT_NAMES = (
    (POLLIN, "POLLIN"),
    (POLLPRI, "POLLPRI"),
    (POLLOUT, "POLLOUT"),
    (POLLERR, "POLLERR"),
    (POLLHUP, "POLLHUP"),
)
_U64_LIMIT = 1 << 64

_change = lib.mfx_change
_set = lib.mfx_set
_clear = lib.mfx_clear
_EINTR = -errno.EINTR
# Out-arguments are allocated per call (never a shared buffer: a signal
# handler may run a MaskFD call between another's return and its use).
_new: Callable[[str], Any] = ffi.new
_free: Callable[[Any], Any] = lib.mfx_free  # ffi.gc ignores its result


def _retry(call: Callable[..., int], *args: Any) -> int:
    """Call a shim function that takes the MaskFD's lock until it returns
    something else than -EINTR.  The shim waits for the lock in slices and
    returns -EINTR after each (a holder stopped by SIGSTOP or a debugger
    would otherwise keep it waiting in C): between two calls the interpreter
    runs its signal handlers, so Ctrl-C or a raising handler leaves here at
    once.  The one place every entry point that takes the lock goes through.
    """
    result = call(*args)
    while result == _EINTR:
        result = call(*args)
    return result


class MaskState(NamedTuple):
    """The pair an EFD_MASK read returns: the event bits and the data word."""

    events: int
    data: int


def event_names(events: int) -> str:
    """``"POLLIN|POLLOUT"`` for 5, ``"0"`` for no bits."""
    return "|".join(name for bit, name in _EVENT_NAMES if events & bit) or "0"


def _index(value: object, what: str) -> int:
    """*value* as CPython's C int converters take it: an int (an int
    subclass at its real value, never its ``__int__``) or an object with
    ``__index__``; TypeError for anything else (float, Decimal, str, None)."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{what} must be an integer, not {type(value).__name__}"
        ) from None


def _check_events(events: object, what: str = "events") -> int:
    events = _index(events, what)
    if events < 0 or events & ~EFD_MASK_EVENTS:
        raise ValueError(
            f"invalid events {events:#x}: only POLLIN|POLLPRI|POLLOUT|POLLERR|"
            f"POLLHUP ({EFD_MASK_EVENTS:#x}) may be set"
        )
    return events


def _check_data(data: object) -> int:
    data = _index(data, "data")
    if data < 0:
        raise ValueError(f"data must be >= 0 (an unsigned 64-bit word), not {data}")
    if data >= _U64_LIMIT:
        raise OverflowError(f"data {data:#x} does not fit in 64 bits")
    return data


def pack_mask(events: int, data: int = 0) -> bytes:
    """The 12-byte ``struct efd_mask`` for (*events*, *data*), native order.

    Invalid events or data raise as :meth:`MaskFD.write` does.
    """
    return _STRUCT.pack(_check_events(events), _check_data(data))


def unpack_mask(buffer: Any) -> MaskState:
    """Decode the first 12 bytes of *buffer* (any bytes-like object).

    ValueError for a shorter buffer or an invalid event bit.
    """
    view = memoryview(buffer).cast("B")
    if len(view) < EFD_MASK_SIZE:
        raise ValueError(
            f"an efd_mask is {EFD_MASK_SIZE} bytes, the buffer has {len(view)}"
        )
    events, data = _STRUCT.unpack_from(view)
    return MaskState(_check_events(events), data)


def choose_backing(uses: int) -> Backing:
    """The backing that shows every bit in *uses* most faithfully.

    IN and HUP alone: ``pipe`` (both reversible, the cheapest IN).  ERR
    without PRI: ``dgram`` (ERR reversible, without HUP).  Anything else,
    above all OUT and PRI: ``stream`` (all 16 IN/PRI/OUT/ERR combinations).
    """
    uses = _check_events(uses, "uses")
    if not uses & ~(POLLIN | POLLHUP):
        return "pipe"
    if uses & POLLERR and not uses & POLLPRI:
        return "dgram"
    return "stream"


# Why a backing refuses a bit, for the error message.
_CANT_CLEAR = {
    ("stream", POLLHUP): "the peer's shutdown is irreversible; backing='pipe' clears HUP",
    ("stream", POLLOUT): "after HUP the send buffer can no longer be filled",
    ("dgram", POLLHUP): "shutdown is irreversible; backing='pipe' clears HUP",
    ("dgram", POLLOUT): "after HUP the send buffer can no longer be filled",
}
_CANT_SET = {
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

# Every live MaskFD, so that a fork can mark its state shared.
_live: weakref.WeakSet[MaskFD] = weakref.WeakSet()


def _mark_all_shared(in_child: int) -> None:
    for mask in list(_live):
        handle = mask._h
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


class MaskFD:
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

    __slots__ = ("_h", "_fd", "__weakref__")

    _h: Any
    _fd: int

    def __init__(
        self,
        events: int = 0,
        data: int = 0,
        *,
        backing: Backing | None = None,
        uses: int | None = None,
    ) -> None:
        self._fd = -1  # __del__ and repr must work if creation fails
        self._h = None
        events = _check_events(events)
        data = _check_data(data)
        if backing is None:
            backing = "stream" if uses is None else choose_backing(uses)
        elif uses is not None:
            _check_events(uses, "uses")
        kind = _KINDS.get(backing) if isinstance(backing, str) else None
        if kind is None:
            raise ValueError(f"backing must be one of {BACKINGS}, not {backing!r}")
        out = _new("struct mfx_handle **")
        result = lib.mfx_new(kind, out)
        if result:
            _core.raise_errno(-result)  # the shim closed what it had opened
        handle = out[0]
        self._h = ffi.gc(handle, _free)
        self._fd = lib.mfx_fd(handle)
        _live.add(self)
        if events or data:
            try:
                self.write(events, data)
            except BaseException:
                self.close()
                raise

    # -- the fd ---------------------------------------------------------

    def fileno(self) -> int:
        """The pollable fd; ValueError once closed."""
        fd = self._fd
        if fd < 0:
            self._raise_closed()
        return fd

    @property
    def backing(self) -> Backing:
        """``"stream"``, ``"dgram"`` or ``"pipe"``: the IPC object behind the fd."""
        return _NAMES[lib.mfx_kind(self._handle())]

    @property
    def closed(self) -> bool:
        """True once close() has been called."""
        return self._fd < 0

    def close(self) -> None:
        """Close the fds of this holder.  Closing again does nothing.

        Other processes holding the same MaskFD keep theirs.  A call racing
        in another thread either completes first or sees the MaskFD closed.
        """
        handle = self._h
        if handle is not None and self._fd >= 0:
            _retry(lib.mfx_close, handle)  # 0: the fds are closed
            self._fd = -1

    def __enter__(self) -> MaskFD:
        self.fileno()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # The defaults keep what __del__ needs: at interpreter exit it can run
    # after this module's globals (lib, _core) have become None.
    def __del__(
        self, _warn_unclosed: Any = _core.warn_unclosed, _close: Any = lib.mfx_close
    ) -> None:
        fd = getattr(self, "_fd", -1)
        if fd < 0:
            return
        try:
            _warn_unclosed(self, fd)
        finally:
            self._fd = -1
            # One slice at most: if a stopped holder has the lock, mfx_free
            # closes the fds when the handle goes, without it.
            _close(self._h)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # ForkingPickler's reducers match the exact class: register each
        # subclass too, so that it travels to a multiprocessing child as
        # itself.
        super().__init_subclass__(**kwargs)
        _register_reduction(cls)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"cannot pickle {type(self).__name__}: its fds only mean something "
            "in this process; pass it to a multiprocessing.Process or through a "
            "multiprocessing queue, which share the same object"
        )

    def __repr__(self) -> str:
        if self._fd < 0:
            return f"<{type(self).__name__} [closed]>"
        events, data = self.read()
        return (
            f"<{type(self).__name__} fd={self._fd} backing={self.backing} "
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
            events, data = _check_events(events), _check_data(data)
        try:
            result = _change(self._h, EFD_MASK_EVENTS, events, 1, data)
        except (TypeError, OverflowError):
            self._refuse(events, data)
        if result:
            self._failed(result, (_change, self._h, EFD_MASK_EVENTS, events, 1, data),
                         EFD_MASK_EVENTS, events, data)

    def set(self, events: int) -> None:
        """Add the bits in *events* to the stored mask; the data stays."""
        if type(events) is not int:  # cffi would take Decimal('1.5') as 1
            events = _check_events(events)
        try:
            result = _set(self._h, events)
        except (TypeError, OverflowError):
            self._refuse(events, 0)
        if result:
            self._failed(result, (_set, self._h, events), 0, events, 0)

    def clear(self, events: int) -> None:
        """Remove the bits in *events* from the stored mask; the data stays."""
        if type(events) is not int:  # cffi would take Decimal('1.5') as 1
            events = _check_events(events)
        try:
            result = _clear(self._h, events)
        except (TypeError, OverflowError):
            self._refuse(events, 0)
        if result:
            self._failed(result, (_clear, self._h, events), events, 0, 0)

    def update(
        self, set: int = 0, clear: int = 0, data: int | None = None
    ) -> None:
        """Set and clear bits (set wins) and optionally replace the data, at once."""
        set_data = data is not None
        value = 0 if data is None else data
        if type(set) is not int or type(clear) is not int or type(value) is not int:
            # cffi would take any __int__ (Decimal('1.5') as 1).
            set, clear, value = _check_events(set), _check_events(clear), _check_data(value)
        try:
            result = _change(self._h, clear, set, set_data, value)
        except (TypeError, OverflowError):
            _check_events(clear)
            self._refuse(set, value)
        if result:
            self._failed(result, (_change, self._h, clear, set, set_data, value),
                         clear, set, value)

    def read(self) -> MaskState:
        """The last written pair ``(events, data)``, as EFD_MASK's read."""
        out = _new("struct mfx_pair *")  # this call's own: no shared buffer
        result = _retry(lib.mfx_get, self._handle(), out)
        if result:
            self._raise(result)
        return MaskState(out.events, out.data)

    @property
    def events(self) -> int:
        """The stored event bits."""
        return self.read().events

    @property
    def data(self) -> int:
        """The stored data word."""
        return self.read().data

    # -- the byte ABI of the patch ----------------------------------------

    def write_bytes(self, buffer: Any) -> int:
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
        events, data = _STRUCT.unpack_from(view)
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
        size = _index(size, "size")
        if size < EFD_MASK_SIZE:
            raise OSError(
                errno.EINVAL,
                f"short efd_mask read: {size} bytes, {EFD_MASK_SIZE} needed",
            )
        return _STRUCT.pack(*self.read())

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
        packed = _retry(lib.mfx_limits, self._handle())
        if packed < 0:
            self._raise(packed)
        return packed >> 16, packed & 0xFFFF

    # -- internals --------------------------------------------------------

    def _handle(self) -> Any:
        if self._fd < 0:
            self._raise_closed()
        return self._h

    def _raise_closed(self) -> NoReturn:
        raise ValueError(f"I/O operation on closed {type(self).__name__}")

    def _refuse(self, events: object, data: object) -> NoReturn:
        """Raise the exception for arguments cffi would not convert."""
        if self._h is None:
            self._raise_closed()
        _check_events(events)
        _check_data(data)
        raise TypeError("events and data must be ints")  # unreachable

    def _raise(self, result: int) -> NoReturn:
        """Raise for a shim result other than a change's."""
        if result == -errno.EBADF:
            self._raise_closed()  # closed by another thread meanwhile
        _core.raise_errno(-result)

    def _failed(
        self, result: int, call: tuple[Any, ...], clear: int, set: int, data: int
    ) -> None:
        """A change returned *result*: call it again while the lock was
        busy (signal handlers run in between), else raise what it means."""
        if result == _EINTR:
            result = _retry(*call)
            if not result:
                return
        err = -result
        if err == errno.EINVAL:
            _check_events(clear)
            _check_events(set)
        if err == errno.EBADF:
            self._raise_closed()
        backing = self.backing
        cant_set, cant_clear = self.limits()
        old = self.events
        new = (old & ~clear) | set
        if err == errno.ENOTRECOVERABLE:
            bits = old & ~new & cant_clear or clear & ~set
            reason = "; ".join(
                _CANT_CLEAR.get((backing, bit), "irreversible")
                for bit, _ in _EVENT_NAMES
                if bits & bit
            )
            raise OSError(
                err,
                f"the {backing!r} backing cannot clear {event_names(bits)}: {reason}",
            )
        if err == errno.EOPNOTSUPP:
            bits = new & ~old & cant_set or set
            reason = "; ".join(
                _CANT_SET.get((backing, bit), "not available")
                for bit, _ in _EVENT_NAMES
                if bits & bit
            )
            raise OSError(
                err,
                f"the {backing!r} backing cannot show {event_names(bits)}: {reason}",
            )
        if err == errno.EBUSY:
            raise OSError(
                err,
                f"the {backing!r} backing cannot show {event_names(set & ~old)} "
                "now: another process holds a copy of the object whose last "
                "close makes it (a process forked from C, without Python's fork "
                "hooks, or one forked an instant ago); nothing was changed",
            )
        if err == errno.EPERM:
            raise OSError(
                err,
                "the 'pipe' backing changes POLLHUP only in the process that "
                "created it (HUP means every writer closed, and it holds the writer)",
            )
        _core.raise_errno(err)


# -- multiprocessing: a child gets the same kernel objects and state --------


def _rebuild(
    cls: type[MaskFD], memfd: Any, fd: Any, peer: Any, state: dict[str, Any] | None
) -> MaskFD:
    """Adopt the duplicated fds in the receiving process, as an instance of
    the class that was sent (a subclass stays itself)."""
    fds = [memfd.detach(), fd.detach(), -1 if peer is None else peer.detach()]
    out = _new("struct mfx_handle **")
    result = lib.mfx_attach(fds[0], fds[1], fds[2], out)
    if result:
        for each in fds:
            if each >= 0:
                os.close(each)
        _core.raise_errno(-result)
    self = cls.__new__(cls)
    self._h = ffi.gc(out[0], _free)
    self._fd = fds[1]
    if state:
        self.__dict__.update(state)
    _live.add(self)
    return self


def _reduce(mask: MaskFD) -> tuple[Callable[..., MaskFD], tuple[Any, ...]]:
    from multiprocessing.reduction import DupFd

    handle = mask._handle()
    lib.mfx_mark_shared(handle, 0)
    peer = lib.mfx_peer_fd(handle)
    # The pipe backing's writer stays with its creator: HUP is its close.
    keep_peer = peer >= 0 and mask.backing != "pipe"
    return _rebuild, (
        type(mask),
        DupFd(lib.mfx_memfd(handle)),
        DupFd(mask.fileno()),
        DupFd(peer) if keep_peer else None,
        getattr(mask, "__dict__", None),
    )


def _register_reduction(cls: type[MaskFD]) -> None:
    from multiprocessing.reduction import ForkingPickler

    ForkingPickler.register(cls, _reduce)


_register_reduction(MaskFD)
