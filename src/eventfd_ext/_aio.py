"""asyncio support: await an fd's readiness, and read an eventfd, without
ever blocking the event loop.

asyncio keeps one reader (and one writer) callback per fd per loop: a second
``add_reader`` silently replaces the first.  So that any number of coroutines
can await the same fd, each loop gets one :class:`_Watch` per (fd, direction):
it owns the single ``add_reader``/``add_writer`` registration and a set of
waiting futures, wakes all of them when the fd is ready, and removes the
registration when the last waiter leaves (woken, timed out or cancelled).

Closing an fd does not wake an epoll-based loop (the kernel silently drops a
closed fd from the epoll set), so the fd's owner calls :func:`notify_closing`
instead of closing it directly: every coroutine still awaiting the fd gets
ValueError, the loops' registrations are removed, and only then does the
owner's close run, so that a new fd reusing the number is never unregistered
by mistake.  A coroutine checks its owner after registering, so a close that
runs between its ``fileno()`` and its registration still reaches it.

Readiness is level-triggered, so waking every waiter loses nothing: a waiter
that finds the count gone (another coroutine, thread or process took it)
simply waits again.  The read itself is the shim's RWF_NOWAIT read, which
cannot block even when the fd is in blocking mode; its error handling is the
sync path's own (``_core``); arguments are checked in ``_checks``.

asyncio is imported only on the waiting path: by then a loop is running, so
it costs nothing, and ``import eventfd_ext`` does not pay for asyncio.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _checks

if TYPE_CHECKING:
    import asyncio

    from ._checks import FileDescriptorLike
    from ._eventfd import EventFD

__all__ = ["notify_closing", "read", "wait_readable", "wait_writable"]

_READ = 0
_WRITE = 1

# (loop, fd, direction) -> its watch.  An entry lives only while a coroutine
# waits, so it never keeps a finished loop alive.  Each loop touches only its
# own keys, from its own thread, so single dict operations are all the
# locking needed (also on the free-threaded build).
_watches: dict[tuple[asyncio.AbstractEventLoop, int, int], _Watch] = {}


class _Watch:
    """The one asyncio registration of an fd in one loop, shared by waiters."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: set[asyncio.Future[None]] = set()

    def ready(self) -> None:
        # A waiter woken but not yet resumed stays in the set until it runs;
        # the level-triggered callback may fire again meanwhile: skip it.
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)


def _after_fork_in_child() -> None:
    # Only the forking thread lives on in the child: a loop that ran in any
    # other thread never runs here, so nothing may wait for it to let go of
    # an fd (the child's close would never happen).  Its registrations are
    # forgotten, not removed: its epoll instance is shared with the parent.
    if not _watches:
        return
    import asyncio  # imported: coroutines were waiting

    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for key in [key for key in _watches if key[0] is not here]:
        del _watches[key]


os.register_at_fork(after_in_child=_after_fork_in_child)


async def _wait(fd: int, direction: int, check: Callable[[int], None] | None = None) -> None:
    """Wait in the running loop until *fd* is ready in *direction*.

    *check(fd)*, if given, raises if the fd's owner was closed; it runs
    after registering, so that a close racing the registration is seen
    either here or by notify_closing (which then wakes this waiter).
    """
    import asyncio  # already imported: a loop is running

    loop = asyncio.get_running_loop()
    key = (loop, fd, direction)
    waiter: asyncio.Future[None] = loop.create_future()
    watch = _watches.get(key)
    if watch is None:
        watch = _Watch()
        try:
            if direction == _READ:
                loop.add_reader(fd, watch.ready)
            else:
                loop.add_writer(fd, watch.ready)
        except OSError:
            if check is not None:
                check(fd)  # closed meanwhile: ValueError, not EBADF
            raise
        _watches[key] = watch  # only once add_* has accepted the fd
    # Nothing between registering and the try can fail, so the finally
    # always undoes the registration.
    watch.waiters.add(waiter)
    try:
        if check is not None:
            check(fd)  # closed before notify_closing could see this waiter
        await waiter
    finally:
        watch.waiters.discard(waiter)
        # Not if close() has already taken the registration down.
        if not watch.waiters and _watches.get(key) is watch:
            del _watches[key]
            _unregister(loop, fd, direction)


def _unregister(loop: asyncio.AbstractEventLoop, fd: int, direction: int) -> None:
    if direction == _READ:
        loop.remove_reader(fd)
    else:
        loop.remove_writer(fd)


def _abandon(loop: asyncio.AbstractEventLoop, fd: int, error: str) -> None:
    """In *loop*'s thread: drop its registrations of *fd* and fail their waiters."""
    for direction in (_READ, _WRITE):
        watch = _watches.pop((loop, fd, direction), None)
        if watch is None:
            continue
        _unregister(loop, fd, direction)
        if loop.is_closed():  # its coroutines can never resume
            continue
        for waiter in watch.waiters:
            if not waiter.done():
                waiter.set_exception(ValueError(error))


def notify_closing(fd: int, error: str, close: Callable[[], None]) -> None:
    """Tell the coroutines awaiting *fd* that its owner is closing it, then
    run *close* (the owner's own close of the fd).

    Awaiting coroutines get ValueError(*error*).  A loop running in another
    thread is asked to let go in its own thread (asyncio loops are not
    thread-safe), and *close* runs once the last of them has, from that
    thread; until then the fd number stays taken, so no new fd can reuse it
    while a loop still has it registered.
    """
    loops = {loop for loop, watched, _ in list(_watches) if watched == fd}
    if not loops:
        close()  # the usual case: no coroutine awaits it
        return
    import asyncio  # already imported: coroutines are waiting

    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    remote = [loop for loop in loops if loop is not here and loop.is_running()]
    for loop in loops.difference(remote):  # this thread's loop, or a stopped one
        _abandon(loop, fd, error)
    if not remote:
        close()
        return
    left = len(remote)
    lock = threading.Lock()

    def let_go(loop: asyncio.AbstractEventLoop) -> None:
        nonlocal left
        _abandon(loop, fd, error)
        with lock:
            left -= 1
            last = left == 0
        if last:
            close()

    for loop in remote:
        try:
            loop.call_soon_threadsafe(let_go, loop)
        except RuntimeError:  # closed since: no thread will run it, and none uses it
            let_go(loop)


async def wait_readable(fd: FileDescriptorLike) -> None:
    """Wait in the running loop until *fd* is readable.

    Any number of coroutines may wait on the same fd at once; they share one
    ``add_reader`` registration, removed when the last of them returns or is
    cancelled.  Do not also ``add_reader`` the same fd in the same loop
    yourself: asyncio would replace one callback with the other.
    """
    await _wait(_checks.as_fd(fd), _READ)


async def wait_writable(fd: FileDescriptorLike) -> None:
    """Wait in the running loop until *fd* is writable (see wait_readable)."""
    await _wait(_checks.as_fd(fd), _WRITE)


async def read(efd: EventFD) -> int:
    """Take the count of *efd* (1 in semaphore mode), waiting in the loop
    while it is zero; the body of ``EventFD.aread()``."""
    while True:
        # Through the object: a close meanwhile raises ValueError here, and
        # the take never reaches a number another file took since.
        value = efd.try_read()
        if value:
            return value
        await _wait(efd.fileno(), _READ, efd._check_open)
