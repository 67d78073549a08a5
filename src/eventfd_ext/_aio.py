"""Async support: await an fd's readiness, and read an eventfd, without ever
blocking the event loop, under asyncio (uvloop included), trio, and anyio on
either of its backends.

Which framework runs the calling task is found without a dependency (the
test sniffio makes): a trio task is running if trio is imported and
``trio.lowlevel.current_task()`` answers (right even when trio runs as a
guest inside an asyncio loop); otherwise an asyncio loop is running if
``asyncio.get_running_loop()`` answers.  anyio runs on one of the two, so
its tasks take that one's path.  Anything else raises RuntimeError naming
the supported frameworks.

Both frameworks allow one waiter per fd and direction at a time (asyncio
silently replaces a second ``add_reader`` callback; trio raises
BusyResourceError), so that any number of tasks can await the same fd, each
event loop gets one watch per (fd, direction), shared by its waiters:

- asyncio: the watch owns the single ``add_reader``/``add_writer``
  registration and a set of waiting futures, wakes all of them when the fd
  is ready, and removes the registration when the last waiter leaves.  A
  loop other than asyncio's own (uvloop) watches an epoll fd holding the fd
  instead, since it would make the fd itself non-blocking for every holder.
- trio: one waiter at a time (the leader) sleeps in trio's
  ``wait_readable``/``wait_writable``; the others wait for the watch's
  event, set when the leader leaves, woken or cancelled; a follower that
  finds no leader and no readiness since it came takes the lead.

Readiness is level-triggered, so waking every waiter loses nothing: a waiter
that finds the count gone (another task, thread or process took it) simply
waits again.  Cancelling a waiter takes nothing: only the readiness was
awaited.  The read itself is the shim's RWF_NOWAIT read, which cannot block
even when the fd is in blocking mode; its error handling is the sync path's
own (``_core``); arguments are checked in ``_checks``.

Closing an fd wakes neither an epoll-based loop (the kernel silently drops a
closed fd from the epoll set) nor trio, so the fd's owner calls
:func:`notify_closing` instead of closing it directly: in each loop that has
waiters on the fd, in that loop's own thread, the watch is dropped and every
waiter gets ValueError (trio's own ``notify_closing`` wakes its leader), and
only once every loop has let go does the owner's close run, so that a new fd
reusing the number is never unregistered by mistake.  A waiter checks its
owner after registering, so a close that runs between its ``fileno()`` and
its registration still reaches it.

A forked child forgets every registration it inherits (they live in
kernel objects it shares with the parent), so its close() never disturbs the
parent's loops.

asyncio and trio are imported only on the waiting path (by then one of them
runs, so it costs nothing): ``import eventfd_ext`` pays for neither.
"""

from __future__ import annotations

import functools
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _checks

if TYPE_CHECKING:
    import asyncio

    from ._checks import FileDescriptorLike
    from ._eventfd import EventFD

__all__ = [
    "SUPPORTED",
    "notify_closing",
    "read",
    "running_loop",
    "wait",
    "wait_readable",
    "wait_writable",
]

_READ = 0
_WRITE = 1

#: What RuntimeError says when no supported framework runs the caller.
SUPPORTED = "asyncio (uvloop included), trio, or anyio (asyncio or trio backend)"

# (loop, fd, direction) -> its watch; a loop is an asyncio event loop or a
# trio run's TrioToken.  An entry lives only while a task waits, so it never
# keeps a finished loop alive.  Each loop touches only its own keys, from its
# own thread, so single dict operations are all the locking needed (also on
# the free-threaded build).
_watches: dict[tuple[Any, int, int], _AsyncioWatch | _TrioWatch] = {}


class _AsyncioWatch:
    """The one asyncio registration of an fd in one loop, shared by waiters."""

    __slots__ = ("relay", "waiters")

    def __init__(self) -> None:
        self.waiters: set[asyncio.Future[None]] = set()
        #: The epoll fd the loop watches in the fd's stead (see register).
        self.relay: select.epoll | None = None

    def register(self, loop: asyncio.AbstractEventLoop, fd: int, direction: int) -> None:
        """Have *loop* call ready() while *fd* is ready in *direction*."""
        if isinstance(loop, _selector_loop()):  # watches the fd, flags untouched
            if direction == _READ:
                loop.add_reader(fd, self.ready)
            else:
                loop.add_writer(fd, self.ready)
            return
        # Other loops (uvloop: libuv's poll handle) set O_NONBLOCK on the fd
        # they watch, a flag of the open file that every holder shares, so
        # they watch an epoll fd holding it instead: readable while it is
        # ready, and closing it touches nothing else.
        relay = select.epoll()
        try:
            relay.register(fd, select.EPOLLIN if direction == _READ else select.EPOLLOUT)
            loop.add_reader(relay.fileno(), self.ready)
        except BaseException:
            relay.close()
            raise
        self.relay = relay

    def unregister(self, loop: asyncio.AbstractEventLoop, fd: int, direction: int) -> None:
        if self.relay is not None:
            loop.remove_reader(self.relay.fileno())
            self.relay.close()
        elif direction == _READ:
            loop.remove_reader(fd)
        else:
            loop.remove_writer(fd)

    def ready(self) -> None:
        # A waiter woken but not yet resumed stays in the set until it runs;
        # the level-triggered callback may fire again meanwhile: skip it.
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)

    def abandon(self, loop: asyncio.AbstractEventLoop, fd: int, direction: int, error: str) -> None:
        """In the loop's thread: unregister, and fail every waiter."""
        self.unregister(loop, fd, direction)
        if loop.is_closed():  # its coroutines can never resume
            return
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(ValueError(error))


class _TrioWatch:
    """The waiters of an fd in one trio run: one leader sleeps in trio's
    wait, the others wait for ``changed``."""

    __slots__ = ("changed", "error", "leader", "rounds", "waiters")

    def __init__(self, event: Any) -> None:
        self.waiters = 0
        self.leader = False
        self.rounds = 0  # how many times the leader saw the fd ready
        self.changed: Any = event  # trio.Event, set (and replaced) as a leader leaves
        self.error: str | None = None  # set by close(): every waiter raises it

    def abandon(self, trio: Any, fd: int, error: str) -> None:
        """In the run's thread: wake the leader (trio raises
        ClosedResourceError in it, and forgets the fd), then every follower."""
        self.error = error
        trio.lowlevel.notify_closing(fd)
        self.changed.set()


def _after_fork_in_child() -> None:
    # Every loop's registrations live in a kernel object (asyncio's and
    # uvloop's epoll set, trio's) that the child shares with the parent, so
    # the child's close() must not remove them (trio's notify_closing, a
    # remove_reader, would unregister the parent's waiters), nor wait for a
    # loop of another thread, which never runs here: the child forgets
    # every one, the forking thread's loop's too.
    _watches.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _current_loop() -> Any:
    """The loop running the calling task: an asyncio loop, a trio run's
    TrioToken, or None outside both."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()  # a trio task runs this very call
        except RuntimeError:
            pass
        else:
            return trio.lowlevel.current_trio_token()
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            pass
    return None


def running_loop() -> Any:
    """The loop running the calling task (see _current_loop); RuntimeError,
    naming the supported frameworks, outside them all."""
    loop = _current_loop()
    if loop is None:
        raise RuntimeError(
            f"no running event loop: eventfd_ext's async calls run under {SUPPORTED}"
        )
    return loop


def _is_asyncio(loop: Any) -> bool:
    asyncio = sys.modules.get("asyncio")  # imported if an asyncio loop exists
    return asyncio is not None and isinstance(loop, asyncio.AbstractEventLoop)


async def wait(
    fd: int, direction: int, check: Callable[[int], None] | None = None, loop: Any = None
) -> None:
    """Wait in the running framework until *fd* is ready in *direction*.

    *check(fd)*, if given, raises if the fd's owner was closed; it runs
    after registering, so that a close racing the registration is seen
    either here or by notify_closing (which then wakes this waiter).
    *loop* is :func:`running_loop`'s answer, if the caller has it already.
    """
    if loop is None:
        loop = running_loop()
    if _is_asyncio(loop):
        await _asyncio_wait(loop, fd, direction, check)
    else:
        await _trio_wait(loop, fd, direction, check)


async def _asyncio_wait(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    direction: int,
    check: Callable[[int], None] | None,
) -> None:
    key = (loop, fd, direction)
    waiter: asyncio.Future[None] = loop.create_future()
    watch = _watches.get(key)
    if watch is None:
        watch = _AsyncioWatch()
        try:
            watch.register(loop, fd, direction)
        except OSError:
            if check is not None:
                check(fd)  # closed meanwhile: ValueError, not EBADF
            raise
        _watches[key] = watch  # only once add_* has accepted the fd
    assert isinstance(watch, _AsyncioWatch)  # a loop's keys hold its own kind
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
            watch.unregister(loop, fd, direction)


def _selector_loop() -> type[asyncio.AbstractEventLoop]:
    """asyncio's own epoll/poll/select loop class (imported by then: a loop
    of it, or of another asyncio loop, is running)."""
    return sys.modules["asyncio"].selector_events.BaseSelectorEventLoop  # type: ignore[no-any-return]


async def _trio_wait(
    token: Any, fd: int, direction: int, check: Callable[[int], None] | None
) -> None:
    trio = sys.modules["trio"]
    key = (token, fd, direction)
    watch = _watches.get(key)
    if watch is None:
        watch = _watches[key] = _TrioWatch(trio.Event())
    assert isinstance(watch, _TrioWatch)  # a loop's keys hold its own kind
    watch.waiters += 1
    try:
        if check is not None:
            check(fd)  # closed before notify_closing could see this waiter
        seen = watch.rounds
        while watch.rounds == seen and watch.error is None:
            if watch.leader:
                await watch.changed.wait()
                continue
            watch.leader = True
            try:
                if direction == _READ:
                    await trio.lowlevel.wait_readable(fd)
                else:
                    await trio.lowlevel.wait_writable(fd)
                watch.rounds += 1
            except trio.ClosedResourceError:
                if watch.error is None:
                    raise  # another notify_closing of this fd than close()'s
            except OSError:
                if check is not None:
                    check(fd)  # closed meanwhile: ValueError, not EBADF
                raise
            finally:
                # Woken, cancelled or closed: the followers wake, and one
                # that is still waiting takes the lead.
                watch.leader = False
                changed, watch.changed = watch.changed, trio.Event()
                changed.set()
        if watch.error is not None:
            raise ValueError(watch.error)
    finally:
        watch.waiters -= 1
        # Not if close() has already dropped the watch.
        if not watch.waiters and _watches.get(key) is watch:
            del _watches[key]


def _abandon(loop: Any, fd: int, error: str, running: bool) -> None:
    """In *loop*'s thread (or any, if the loop no longer *running*): drop
    its watches of *fd* and fail their waiters."""
    for direction in (_READ, _WRITE):
        watch = _watches.pop((loop, fd, direction), None)
        if isinstance(watch, _AsyncioWatch):
            watch.abandon(loop, fd, direction, error)
        elif watch is not None and running:  # a finished run's tasks never resume
            watch.abandon(sys.modules["trio"], fd, error)


def _call_in(loop: Any, callback: Callable[[], None]) -> bool:
    """Have *loop*'s thread run *callback* soon (thread-safe); False if the
    loop will never run it (closed, or its run finished)."""
    if _is_asyncio(loop):
        if not loop.is_running():
            return False
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # closed since
            return False
        return True
    try:
        loop.run_sync_soon(callback)
    except sys.modules["trio"].RunFinishedError:
        return False
    return True


def notify_closing(fd: int, error: str, close: Callable[[], None]) -> None:
    """Tell the tasks awaiting *fd* that its owner is closing it, then run
    *close* (the owner's own close of the fd).

    Awaiting tasks, in every framework, get ValueError(*error*).  A loop
    running in another thread is asked to let go in its own thread (neither
    asyncio's loops nor trio are thread-safe), and *close* runs once the
    last of them has, from that thread; until then the fd number stays
    taken, so no new fd can reuse it while a loop still has it registered.
    """
    loops = {loop for loop, watched, _ in list(_watches) if watched == fd}
    if not loops:
        close()  # the usual case: no task awaits it
        return
    here = _current_loop()
    left = len(loops)
    lock = threading.Lock()

    def let_go(loop: Any, running: bool = True) -> None:
        nonlocal left
        _abandon(loop, fd, error, running)
        with lock:
            left -= 1
            last = left == 0
        if last:
            close()

    for loop in loops:
        if loop is here:
            let_go(loop)
        elif not _call_in(loop, functools.partial(let_go, loop)):
            let_go(loop, running=False)  # no thread runs it any more


async def wait_readable(fd: FileDescriptorLike) -> None:
    """Wait in the running framework until *fd* is readable.

    Any number of tasks may wait on the same fd at once; in each event loop
    they share one registration, removed when the last of them returns or
    is cancelled.  Do not also wait on the same fd in the same loop
    yourself (``add_reader``, trio's ``wait_readable``): the framework
    would replace one callback with the other, or refuse the second.
    """
    await wait(_checks.as_fd(fd), _READ)


async def wait_writable(fd: FileDescriptorLike) -> None:
    """Wait in the running framework until *fd* is writable (see wait_readable)."""
    await wait(_checks.as_fd(fd), _WRITE)


async def read(efd: EventFD) -> int:
    """Take the count of *efd* (1 in semaphore mode), waiting in the loop
    while it is zero; the body of ``EventFD.aread()``."""
    loop = running_loop()  # outside every loop, even with a count to take
    while True:
        # Through the object: a close meanwhile raises ValueError here, and
        # the take never reaches a number another file took since.
        value = efd._try_read("aread()")
        if value:
            return value
        await wait(efd.fileno(), _READ, efd._check_open, loop)
