"""EventFD: an eventfd as an object that owns its file descriptor."""

from __future__ import annotations

import errno
import fcntl
import os
from typing import TypeVar

from . import _aio, _core
from ._constants import EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, OVERFLOW
from ._owner import FDOwner
from ._shim import ffi, lib

__all__ = ["EventFD", "eventfd_fdinfo", "is_eventfd"]

# from_fd on a subclass returns the subclass (typing.Self needs Python 3.11).
_E = TypeVar("_E", bound="EventFD")

_take = lib.efx_take
_take_nowait = lib.efx_take_nowait
_spin_take = lib.efx_spin_take
_write = lib.efx_write
_signal = lib.efx_signal


def _fdinfo(fd: int) -> dict[str, str]:
    """The fields of /proc/self/fdinfo/FD (the kernel's view of the fd).

    A closed fd raises OSError(EBADF), as the fd's other operations do.
    """
    try:
        f = open(f"/proc/self/fdinfo/{fd}", encoding="ascii")
    except FileNotFoundError:
        os.fstat(fd)  # EBADF if fd is closed; otherwise /proc itself is missing
        raise
    with f:
        fields = (line.partition(":") for line in f)
        return {key: value.strip() for key, _, value in fields}


def eventfd_fdinfo(fd: int) -> dict[str, str] | None:
    """*fd*'s fdinfo fields if it is an eventfd, else None (OSError if it
    is not open)."""
    info = _fdinfo(fd)
    return info if "eventfd-count" in info else None


def is_eventfd(fd: int) -> bool:
    """Whether *fd* is an eventfd (OSError if it is not open)."""
    return eventfd_fdinfo(fd) is not None


class EventFD(FDOwner):
    """A Linux eventfd: a 64-bit counter behind a pollable file descriptor.

    ``write(n)`` adds *n* to the counter and wakes readers; ``read()`` takes
    the whole count (or 1, with ``semaphore=True``), blocking while it is zero
    unless the fd is non-blocking.  The object owns its fd: ``close()`` it, or
    use it as a context manager; one collected unclosed is closed with a
    ResourceWarning, as sockets are.  It can be passed wherever an fd is
    accepted (``select``, ``selectors``, ``os.*``) through ``fileno()``.
    """

    __slots__ = ("_spin",)

    _spin: int
    _OTHER_WAYS = ", or send it over a UNIX socket with eventfd_ext.send_eventfd"

    def __init__(
        self,
        initval: int = 0,
        *,
        semaphore: bool = False,
        nonblocking: bool = False,
        cloexec: bool = True,
        spin: float = 0.0,
    ) -> None:
        self._fd = -1  # __del__ and repr must work if creation fails
        _core.check_initval(initval)
        self._spin = _core.spin_ns(spin)
        flags = (
            (EFD_SEMAPHORE if semaphore else 0)
            | (EFD_NONBLOCK if nonblocking else 0)
            | (EFD_CLOEXEC if cloexec else 0)
        )
        fd = lib.efx_create(initval, flags)
        if fd < 0:
            _core.raise_errno(-fd)
        self._fd = fd

    @classmethod
    def from_fd(cls: type[_E], fd: int) -> _E:
        """Adopt an existing eventfd: the object owns (and will close) *fd*.

        Use it for an fd inherited through ``subprocess`` ``pass_fds`` or
        received over a UNIX socket.  Anything but an eventfd is refused with
        ValueError, and *fd* is then left open.  Only an fd number is taken:
        an object with ``fileno()`` (another EventFD, a file) still owns its
        fd, and two owners would close it twice; adopt ``os.dup(obj.fileno())``.
        """
        (fd,) = _core.as_fd_numbers("from_fd() takes an fd number", fd)
        if not is_eventfd(fd):
            raise ValueError(f"fd {fd} is not an eventfd")
        self = cls.__new__(cls)
        self._fd = fd
        self._spin = 0
        return self

    def detach(self) -> int:
        """Give up ownership: return the fd, which the caller must close."""
        fd = self._release()
        if fd < 0:
            self._raise_closed()
        return fd

    def __repr__(self) -> str:
        fd = self._fd
        if fd < 0:
            return f"<{type(self).__name__} [closed]>"
        try:
            info = _fdinfo(fd)
        except OSError:
            return f"<{type(self).__name__} fd={fd} [unreadable fdinfo]>"
        flags = int(info.get("flags", "0"), 8)
        mode = [
            name
            for name, on in (
                ("semaphore", info.get("eventfd-semaphore") == "1"),
                ("nonblocking", flags & os.O_NONBLOCK),
            )
            if on
        ]
        count = int(info.get("eventfd-count", "0"), 16)
        return f"<{type(self).__name__} fd={fd} count={count}{''.join(' ' + m for m in mode)}>"

    # -- modes ----------------------------------------------------------

    @property
    def semaphore(self) -> bool:
        """Whether reads take 1 (EFD_SEMAPHORE) rather than the whole count.

        Read from the kernel (fdinfo), so it is right for adopted fds too.
        """
        return _fdinfo(self.fileno()).get("eventfd-semaphore") == "1"

    @property
    def nonblocking(self) -> bool:
        """Whether reads and writes raise BlockingIOError instead of waiting.

        Shared with every duplicate of the fd, like ``O_NONBLOCK`` itself.
        """
        return bool(fcntl.fcntl(self.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)

    @nonblocking.setter
    def nonblocking(self, value: bool) -> None:
        os.set_blocking(self.fileno(), not value)

    # -- the counter ----------------------------------------------------

    def read(self, timeout: float | None = None) -> int:
        """Take the count (1 in semaphore mode) and return it.

        With no *timeout*, blocks while the count is zero (BlockingIOError if
        non-blocking).  With a *timeout* in seconds, waits at most that long
        whatever the fd's mode, and raises TimeoutError if nothing came; the
        wait and the read are one call into C, and a count another reader
        takes first sends it back to waiting, never into a blocking read.
        With ``spin`` set, a wait spins that long before it sleeps.
        """
        if timeout is None:
            fd = self._fd
            if fd < 0:
                self._raise_closed()
            spin = self._spin
            # The spin and the sleep are two calls: a signal that came while
            # C spun has its handler run between them (see efx_bell_spin).
            value = (spin and _spin_take(fd, spin)) or _take(fd)
            return value if value else _core.read_again(fd, self._check_open)
        return self._read_waiting(timeout)

    def _read_waiting(self, timeout: float) -> int:
        # Its own function: the closure's cells would be made on every call
        # of read(), the fast path included (~8% of a write+read pair).
        fd = self.fileno()  # a closed object says so before a bad timeout does
        ms = _core.timeout_ms(timeout)
        if self._spin and ms:  # spin (within the timeout), then wait: two calls
            value = _spin_take(fd, min(self._spin, ms * 1_000_000))
            if value:
                return value
        count = ffi.new("uint64_t *")  # per call: a signal handler may read too

        def wait_read(fd: int, ms: int) -> int:
            return lib.efx_wait_read(fd, ms, count)

        if not _core.wait_readable(fd, timeout, wait_read, self._check_open):
            raise TimeoutError(f"no count within {timeout} s")
        return int(count[0])

    def write(self, value: int = 1) -> None:
        """Add *value* (0 <= value < 2**64 - 1) to the count, waking readers.

        Blocks (BlockingIOError if non-blocking) while the count would pass
        2**64 - 2.  A refused value leaves the count as it was.
        """
        fd = self._fd
        if fd < 0:
            self._raise_closed()
        if type(value) is not int:  # cffi would take Decimal('1.5') as 1
            value = _core.check_value(value)
        try:
            # The one-argument call (METH_O, no argument tuple) makes the
            # common write(1) pair 11-13% cheaper (measured 2026-12-02).
            result = _signal(fd) if value == 1 else _write(fd, value)
        except (TypeError, OverflowError):
            _core.check_value(value)
            raise  # unreachable: check_value raises for what cffi refuses
        if result:
            if value == OVERFLOW:
                raise ValueError(
                    "2**64 - 1 cannot be written to an eventfd (the kernel "
                    "reserves it to mark an overflow)"
                )
            _core.retry_write(fd, value, result, self._check_open)

    def try_read(self) -> int:
        """The count (1 in semaphore mode), or 0 if there is none: never
        blocks, whatever the fd's mode, and never raises for a zero count."""
        fd = self._fd
        if fd < 0:
            self._raise_closed()
        value = _take_nowait(fd)
        return value if value else _core.read_nowait(fd, self._check_open)

    @property
    def spin(self) -> float:
        """Seconds a blocking read that finds no count spins with
        non-blocking reads (yielding the CPU) before it sleeps: 0 by default.
        Exact kernel semantics; pays when the writer is another process on
        another CPU and answers within the budget."""
        return self._spin / 1e9

    @spin.setter
    def spin(self, value: float) -> None:
        self._spin = _core.spin_ns(value)

    def peek(self) -> int:
        """The current count, without taking it (from /proc/self/fdinfo)."""
        return int(_fdinfo(self.fileno())["eventfd-count"], 16)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the count is nonzero, without taking it.

        Returns True when readable, False if *timeout* seconds passed first.
        """
        revents = _core.wait_readable(self.fileno(), timeout, _poll_in, self._check_open)
        if revents & lib.POLLNVAL:
            if self.closed:  # by another thread while we polled
                self._raise_closed()
            _core.raise_errno(errno.EBADF)  # closed behind the object's back
        return revents != 0

    # -- asyncio (eventfd_ext/_aio.py) ------------------------------------

    async def aread(self) -> int:
        """Take the count (1 in semaphore mode) in a coroutine.

        Waits in the running loop while the count is zero, never blocking
        it, whatever the fd's mode: a count that another reader (coroutine,
        thread or process) takes first sends it back to waiting.  Any number
        of coroutines may await the same EventFD; cancelling one (or an
        ``asyncio.wait_for`` timeout) leaves the count and the fd as they
        were.  Closing the EventFD meanwhile raises ValueError here.
        """
        return await _aio.read(self)

    async def await_readable(self) -> None:
        """Wait in the running loop until the count is nonzero, without
        taking it: the async twin of ``wait()`` (use ``asyncio.wait_for``
        for a timeout).  Shares aread()'s one registration per loop."""
        await _aio._wait(self.fileno(), _aio._READ, self._check_open)


def _poll_in(fd: int, ms: int) -> int:
    return lib.efx_poll(fd, lib.POLLIN, ms)
