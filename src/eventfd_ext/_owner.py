"""FDOwner: the one base of every object that owns a file descriptor.

What EventFD, MaskFD (and any later class) share, written once: ``fileno()``,
``closed``, the context manager, an idempotent ``close()`` that tells waiting
coroutines before the fd goes (trio's ``notify_closing``: waiters are told,
then the owner closes its own fd), the ValueError of a closed object, a
ResourceWarning when collected unclosed, and a refusal of plain pickling (an
fd number means nothing in another process; multiprocessing carries the fd
itself, see ``_reduction``).

A subclass sets ``_fd`` (and whatever else it owns) in ``__init__``, and
overrides ``_close_fd`` when closing is more than ``os.close`` (MaskFD closes
three fds under its lock).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, NoReturn, TypeVar

from . import _aio, _core

__all__ = ["FDOwner"]

_Self = TypeVar("_Self", bound="FDOwner")

_CLOSED = -1
# Makes taking the fd out of an object atomic, so that two threads closing it
# at once cannot both close the number (the second could close a reused fd).
_release_lock = threading.Lock()


class FDOwner:
    """An object that owns one pollable file descriptor: ``fileno()``."""

    __slots__ = ("_fd", "__weakref__")

    _fd: int
    #: Called with every subclass when it is defined (multiprocessing's
    #: pickler matches exact classes, so each one registers; see _reduction).
    _subclass_hooks: ClassVar[list[Callable[[type[FDOwner]], None]]] = []
    #: Other ways to pass the object, for the error that refuses pickling.
    _OTHER_WAYS: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for hook in FDOwner._subclass_hooks:
            hook(cls)

    # -- the fd ---------------------------------------------------------

    def fileno(self) -> int:
        """The file descriptor number; ValueError once closed."""
        fd = self._fd
        if fd < 0:
            self._raise_closed()
        return fd

    @property
    def closed(self) -> bool:
        """True once the object was closed."""
        return self._fd < 0

    def close(self) -> None:
        """Close the fd.  Closing again does nothing.

        Coroutines awaiting the fd (``aread``, ``await_readable``) get
        ValueError, as any later use does; only then is the fd closed.
        """
        fd = self._release()
        if fd >= 0:
            _aio.notify_closing(fd, self._closed_message(), lambda: self._close_fd(fd))

    def _release(self) -> int:
        """Take the fd out of the object, once: -1 if it was already out."""
        with _release_lock:
            fd, self._fd = self._fd, _CLOSED
        return fd

    def _close_fd(self, fd: int) -> None:
        """Close what the object owns, once *fd* was released."""
        os.close(fd)

    # The default keeps what __del__ needs: at interpreter exit this
    # module's globals may already be None.
    def _finalize_fd(self, fd: int, _close: Any = os.close) -> None:
        """Close what a collected object owns (no waiters can be left)."""
        _close(fd)

    def __enter__(self: _Self) -> _Self:
        self.fileno()
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
    def __del__(self, _warn_unclosed: Any = _core.warn_unclosed) -> None:
        fd = getattr(self, "_fd", _CLOSED)
        if fd < 0:
            return
        try:
            _warn_unclosed(self, fd)
        finally:
            # No lock and no waiters to tell: nothing else holds a reference
            # to an object being collected (a waiting coroutine would).
            self._fd = _CLOSED
            self._finalize_fd(fd)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"cannot pickle {type(self).__name__}: its fd only means something "
            "in this process; pass it to a multiprocessing.Process or through a "
            f"multiprocessing Pipe or Queue, which carry the fd itself{self._OTHER_WAYS}"
        )

    # -- for subclasses ---------------------------------------------------

    def _check_open(self, fd: int) -> None:
        """Raise if the object no longer holds *fd*: before a retry or an
        error, since another thread may have closed it meanwhile and the
        number may already be a new file's."""
        if self._fd != fd:
            self._raise_closed()

    def _closed_message(self) -> str:
        return f"I/O operation on closed {type(self).__name__}"

    def _raise_closed(self) -> NoReturn:
        raise ValueError(self._closed_message())
