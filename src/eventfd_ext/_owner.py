"""FDOwner: the one base of every object that owns file descriptors.

Each object holds a handle of the lifecycle core (csrc/owner.h): its fds,
and one atomic word with a closed bit and a count of calls in flight.
Every call that touches the fds enters and leaves through the handle inside
one crossing into C, so:

- once ``close()`` has begun, no call of this object touches a number it
  had: a new call raises ValueError before it touches any fd;
- the real close(2) is made by the last call in flight as it leaves, so the
  number cannot be reused while one of them still runs;
- ``close()`` wakes every call of this object that sleeps, which then
  raises ValueError; coroutines awaiting the fd are told first (trio's
  ``notify_closing``: waiters are told, then the owner closes);
- a forked child does not inherit its parent's calls in flight.

What the base writes once: ``fileno()``, ``closed``, the context manager,
an idempotent ``close()``, the ValueError of a closed object, a
ResourceWarning when collected unclosed (the handle then closes the fds),
a refusal of plain pickling (multiprocessing carries the fds themselves,
see ``_reduction``), and the errors of a failed call (:meth:`_fail`).

A subclass sets ``_h`` (the handle, through :meth:`_own`) in ``__init__``.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from . import _aio, _core
from ._requirements import KernelFeature
from ._shim import ffi, lib

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

    from ._shim import OwnerHandle, OwnerOut

__all__ = ["FDOwner", "dup_fds", "from_fds_modes", "on_subclass"]


_ECLOSED = -lib.EFX_ECLOSED
_owner_fd = lib.efx_owner_fd
#: The handle of an object not (yet, or any more) built: closed for good.
_DEAD = lib.efx_owner_dead()
#: How long close() waits for the calls it woke to leave (they take well
#: under a millisecond; only a call nothing can wake takes longer).
_SETTLE_MS = 1000


class FDOwner:
    """An object that owns one pollable file descriptor: ``fileno()``."""

    __slots__ = ("_h", "__weakref__")

    _h: OwnerHandle  # freed (its fds closed if still open) by __del__
    #: Called with every subclass when it is defined (multiprocessing's
    #: pickler matches exact classes, so each one registers; see _reduction).
    _subclass_hooks: ClassVar[list[Callable[[type[FDOwner]], None]]] = []
    #: Other ways to pass the object, for the error that refuses pickling.
    _OTHER_WAYS: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for hook in FDOwner._subclass_hooks:
            hook(cls)

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        self = super().__new__(cls)
        self._h = _DEAD  # until built: every call says closed, nothing warns
        return self

    def _own(self, result: int, out: OwnerOut) -> None:
        """Take the handle a shim's create or adopt call made (*result* 0)
        into *out*; raise for its -errno.  Until then the object is
        half-built: no handle, so nothing to close and nothing to warn of."""
        if result:
            _core.raise_errno(-result)
        self._h = out[0]

    # -- the fd ---------------------------------------------------------

    def fileno(self) -> int:
        """The file descriptor number; ValueError once closed."""
        fd: int = _owner_fd(self._h)
        if fd < 0:
            self._raise_closed()
        return fd

    @property
    def closed(self) -> bool:
        """True once the object was closed."""
        return bool(lib.efx_owner_closed(self._h))

    def close(self) -> None:
        """Close the object.  Closing again does nothing.

        Calls of this object sleeping in other threads wake and raise
        ValueError, as any later call does; coroutines awaiting the fd get
        ValueError too.  The fds are closed once the last of them has left.
        """
        self._close(detach=False)

    def _close(self, detach: bool) -> int:
        """Begin closing (or detaching): the fd if this call did, else -1."""
        h = self._h
        fd: int = lib.efx_owner_close(h, detach)
        if fd < 0:
            return -1
        # The calls it woke leave first, so that none is left to close a
        # number once close() has returned (Go's FD.Close waits likewise).
        lib.efx_owner_settle(h, _SETTLE_MS)

        def leave() -> None:  # the last call out closes: EBADF if closed behind our back
            result = lib.efx_owner_leave(h)
            if result:
                _core.raise_errno(-result)

        _aio.notify_closing(fd, self._closed_message(), leave)
        return fd

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # The default keeps what __del__ needs: at interpreter exit it can run
    # after this module's globals have become None.
    def __del__(self, _warn_unclosed: Any = _core.warn_unclosed, _lib: Any = lib) -> None:
        # The one owner of the handle's memory.  No call is in flight (it
        # would hold the object) and no coroutine waits (likewise).  A
        # subclass that overrides __del__ calls this one.
        h = getattr(self, "_h", None)
        if h is None or h == _lib.efx_owner_dead():
            return  # half-built: nothing was made
        try:
            if not _lib.efx_owner_closed(h):
                _warn_unclosed(self, _lib.efx_owner_fd(h))
        finally:
            self._h = _lib.efx_owner_dead()  # resurrected, it says closed
            _lib.efx_owner_free(h)  # closes what is still open

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"cannot pickle {type(self).__name__}: its fd only means something "
            "in this process; pass it to a multiprocessing.Process or through a "
            f"multiprocessing Pipe or Queue, which carry the fd itself{self._OTHER_WAYS}"
        )

    # -- passing to other processes ---------------------------------------
    # Every owner has fds() (the fds that make it, still its own) and the
    # classmethod from_fds(*fds, **modes) that adopts them; _modes() is what
    # from_fds needs beside the fds to rebuild this object's modes.

    def fds(self) -> tuple[int, ...]:
        """The fds that make this object, in :meth:`from_fds`'s order: for
        ``subprocess`` ``pass_fds``; the child adopts them with
        ``from_fds(*fds)``.  Still owned by this object; ValueError once
        closed, never -1."""
        return tuple(self._fds(dup=False))

    def _dup_fds(self) -> list[int]:
        """Duplicates of :meth:`fds`, made inside one call of the object (a
        close() racing it cannot hand over a number another file took);
        the caller closes them.  For passing the object on."""
        return self._fds(dup=True)

    def _fds(self, dup: bool) -> list[int]:
        out = ffi.new("int[3]")
        n: int = lib.efx_owner_fds(self._h, out, dup)
        if n < 0:
            self._fail(n)
        return [int(out[i]) for i in range(n)]

    def _modes(self) -> dict[str, Any]:
        return {}

    # -- for subclasses ---------------------------------------------------

    #: The kernel feature whose absence this class's calls report as
    #: EOPNOTSUPP (None: EOPNOTSUPP means what its errno says).
    _needs: ClassVar[KernelFeature | None] = None

    def _fail(self, result: int, call: str = "") -> NoReturn:
        """Raise for a shim call's failed *result*: ValueError once closed,
        the missing kernel feature's error (naming *call*, the method that
        needs it, e.g. ``"read()"``), else the OSError of its errno."""
        if result == _ECLOSED:
            self._raise_closed()
        if result == -errno.EOPNOTSUPP and self._needs is not None:
            name = type(self).__name__
            raise self._needs.missing(f"{name}.{call}" if call else name)
        _core.raise_errno(-result)

    def _failing(self, call: str) -> _core.Fail:
        """:meth:`_fail` for the calls of method *call* (``"read()"``)."""
        return functools.partial(self._fail, call=call)

    def _check_open(self, fd: int = -1) -> None:
        """Raise ValueError if the object was closed (for the asyncio
        support, which checks after registering *fd* with a loop)."""
        if lib.efx_owner_closed(self._h):
            self._raise_closed()

    def _closed_message(self) -> str:
        return f"I/O operation on closed {type(self).__name__}"

    def _raise_closed(self) -> NoReturn:
        raise ValueError(self._closed_message())


# -- the passing protocol, for _reduction and _passing ------------------------


def dup_fds(owner: FDOwner) -> list[int]:
    """Duplicates of ``owner.fds()`` for passing the object to another
    process, made inside one call of the object; the caller closes them."""
    return owner._dup_fds()


def from_fds_modes(owner: FDOwner) -> dict[str, Any]:
    """What ``from_fds`` needs beside the fds to rebuild *owner*'s modes."""
    return owner._modes()


def on_subclass(hook: Callable[[type[FDOwner]], None]) -> None:
    """Call *hook* with every subclass of FDOwner defined from now on."""
    FDOwner._subclass_hooks.append(hook)
