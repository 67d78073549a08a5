"""asyncio support: await an fd's readiness, and read an eventfd, without
ever blocking the event loop.

asyncio keeps one reader (and one writer) callback per fd per loop: a second
``add_reader`` silently replaces the first.  So that any number of coroutines
can await the same fd, each loop gets one :class:`_Watch` per (fd, direction):
it owns the single ``add_reader``/``add_writer`` registration and a set of
waiting futures, wakes all of them when the fd is ready, and removes the
registration when the last waiter leaves (woken, timed out or cancelled).

Closing an fd does not wake an epoll-based loop (the kernel silently drops a
closed fd from the epoll set), so :func:`close` wakes every coroutine still
awaiting the fd with ValueError and removes the loops' registrations before
the fd number is closed: a new fd that reuses the number is never
unregistered by mistake.

Readiness is level-triggered, so waking every waiter loses nothing: a waiter
that finds the count gone (another coroutine, thread or process took it)
simply waits again.  The read itself is the shim's RWF_NOWAIT read, which
cannot block even when the fd is in blocking mode; its error handling is the
sync path's own (``_core``).

asyncio is imported only on the waiting path: by then a loop is running, so
it costs nothing, and ``import eventfd_ext`` does not pay for asyncio.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from . import _core

if TYPE_CHECKING:
    import asyncio

    from ._core import FileDescriptorLike
    from ._eventfd import EventFD

__all__ = ["close", "read", "wait_readable", "wait_writable"]

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


async def _wait(fd: int, direction: int) -> None:
    import asyncio  # already imported: a loop is running

    loop = asyncio.get_running_loop()
    key = (loop, fd, direction)
    waiter: asyncio.Future[None] = loop.create_future()
    watch = _watches.get(key)
    if watch is None:
        watch = _Watch()
        if direction == _READ:
            loop.add_reader(fd, watch.ready)
        else:
            loop.add_writer(fd, watch.ready)
        _watches[key] = watch  # only once add_* has accepted the fd
    # Nothing between registering and the try can fail, so the finally
    # always undoes the registration.
    watch.waiters.add(waiter)
    try:
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


def close(fd: int, error: str) -> None:
    """Close *fd* once no event loop awaits it; awaiting coroutines get
    ValueError(*error*).  A loop running in another thread is asked to let
    go in its own thread (asyncio loops are not thread-safe), and the last
    of them closes the fd; until then the number stays taken."""
    loops = {loop for loop, watched, _ in list(_watches) if watched == fd}
    if not loops:
        os.close(fd)  # the usual case: no coroutine awaits it
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
        os.close(fd)
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
            os.close(fd)

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
    await _wait(_core.as_fd(fd), _READ)


async def wait_writable(fd: FileDescriptorLike) -> None:
    """Wait in the running loop until *fd* is writable (see wait_readable)."""
    await _wait(_core.as_fd(fd), _WRITE)


async def read(efd: EventFD) -> int:
    """Take the count of *efd* (1 in semaphore mode), waiting in the loop
    while it is zero; the body of ``EventFD.aread()``."""
    while True:
        # fileno() on every round: an EventFD closed meanwhile raises
        # ValueError here rather than reading a reused fd number.
        fd = efd.fileno()
        value = _core.read_nowait(fd)
        if value:
            return value
        await _wait(fd, _READ)
