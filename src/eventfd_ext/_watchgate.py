"""WatchGated: an owner whose fd is pollable only inside its ``watch()``.

Some objects' writes reach the fd only while someone watches it (a
Doorbell's writes stay in shared memory otherwise), so a poller handed the
fd outside a watch would sleep through pending counts in silence.  Such a
class derives from :class:`WatchGated` and supplies ``_watched()``, its own
watch (what makes writes reach the fd); the base adds the rule:

- ``watch()`` enters ``_watched()`` and counts the block as the user's;
- ``fileno()`` answers only while one of the user's blocks is open in this
  process, else io.UnsupportedOperation (a ValueError, as for a closed
  object, so selectors still unregisters the object by identity);
- the class's own async waits enter ``_watched()`` and take the number from
  ``_wake_fd()``: they never open the gate for anyone else.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ._owner import FDOwner

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

__all__ = ["WatchGated"]

# Guards each object's count of the user's watch() blocks (entered and left
# from any thread, also on the free-threaded build).
_watching_lock = threading.Lock()


class WatchGated(FDOwner):
    """An FDOwner whose ``fileno()`` answers only inside its ``watch()``."""

    __slots__ = ("_watching",)

    #: (pid, n): n of the user's watch() blocks are open in process pid.
    _watching: tuple[int, int]
    #: The class's async waits, which watch by themselves (for the refusal).
    _AWAIT: ClassVar[str] = "await obj.aread() or obj.await_readable()"

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        self = super().__new__(cls, *args, **kwargs)
        self._watching = (0, 0)  # from_fds builds without __init__
        return self

    def _watched(self) -> contextlib.AbstractContextManager[object]:
        """The class's own watch: while inside, writes reach the fd."""
        raise NotImplementedError

    @contextlib.contextmanager
    def watch(self) -> Iterator[Self]:
        """While inside, writes reach the fd, so ``fileno()`` answers: what a
        poller (select, poll, epoll, selectors, asyncio) needs to never miss
        one.  A child forked inside is not a watcher unless it enters its
        own watch().  Unregister the object from a poller inside the block,
        or after it by the number :meth:`fds` gives (a closed or unwatched
        object has no ``fileno()`` for poll, epoll or asyncio to look up)."""
        with self._watched():
            self._count_watch(+1)
            try:
                yield self
            finally:
                self._count_watch(-1)

    def _count_watch(self, step: int) -> None:
        here = os.getpid()
        with _watching_lock:
            pid, n = self._watching
            # A forked child's copy counts only the blocks it entered itself.
            self._watching = (here, (n if pid == here else 0) + step)

    def fileno(self) -> int:
        """The fd that wakes pollers, inside ``watch()`` only (see the class)."""
        fd = self._wake_fd()
        pid, n = self._watching
        if not n or pid != os.getpid():
            name = type(self).__name__
            raise io.UnsupportedOperation(
                f"a {name}'s fileno() is pollable only inside its watch(): outside it "
                f"writes do not reach the fd; poll within 'with obj.watch():', {self._AWAIT}, "
                "or use obj.fds() to pass it on"
            )
        return fd

    def _wake_fd(self) -> int:
        """The fd number without the gate, for the class's own waits inside
        ``_watched()``; ValueError once closed."""
        return super().fileno()
