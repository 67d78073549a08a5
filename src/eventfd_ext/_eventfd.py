"""EventFD: an eventfd as an object that owns its file descriptor."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from . import _aio, _checks, _core
from ._constants import EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE
from ._owner import FDOwner
from ._requirements import NOWAIT_READ
from ._shim import ffi, lib

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

__all__ = ["EventFD", "eventfd_fdinfo", "is_eventfd"]


_take = lib.efx_efd_take
_write = lib.efx_efd_write
_signal = lib.efx_efd_signal
_spin_step = lib.efx_efd_spin
_sleep_step = lib.efx_efd_sleep
_wait_read = lib.efx_efd_wait_read
_EAGAIN = -errno.EAGAIN


def _parse_fdinfo(text: str) -> dict[str, str]:
    fields = (line.partition(":") for line in text.splitlines())
    return {key: value.strip() for key, _, value in fields}


def _fdinfo(fd: int) -> dict[str, str]:
    """The fields of /proc/self/fdinfo/FD (the kernel's view of the fd),
    for an fd this process is about to adopt (an owner reads its own
    through its handle).  A closed fd raises OSError(EBADF)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
            text = f.read()
    except FileNotFoundError:
        os.fstat(fd)  # EBADF if fd is closed; otherwise /proc itself is missing
        raise
    return _parse_fdinfo(text)


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
    _needs = NOWAIT_READ

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
        initval = _checks.check_initval(initval)
        self._spin = _checks.spin_ns(spin)
        flags = (
            (EFD_SEMAPHORE if semaphore else 0)
            | (EFD_NONBLOCK if nonblocking else 0)
            | (EFD_CLOEXEC if cloexec else 0)
        )
        out = ffi.new("efx_owner_t **")
        self._own(lib.efx_efd_create(initval, flags, out), out)

    @classmethod
    def from_fd(cls, fd: int) -> Self:
        """Adopt an existing eventfd: the object owns (and will close) *fd*.

        Use it for an fd inherited through ``subprocess`` ``pass_fds`` or
        received over a UNIX socket.  Anything but an eventfd is refused with
        ValueError, and *fd* is then left open.  Only an fd number is taken:
        an object with ``fileno()`` (another EventFD, a file) still owns its
        fd, and two owners would close it twice; adopt ``os.dup(obj.fileno())``.
        """
        (fd,) = _checks.as_fd_numbers("from_fd() takes an fd number", fd)
        if not is_eventfd(fd):
            raise ValueError(f"fd {fd} is not an eventfd")
        self = cls.__new__(cls)
        self._spin = 0
        out = ffi.new("efx_owner_t **")
        self._own(lib.efx_efd_adopt(fd, out), out)
        return self

    @classmethod
    def from_fds(cls, fd: int, *, spin: float = 0.0) -> Self:
        """:meth:`from_fd`, in the protocol every owner shares with
        :meth:`fds` (multiprocessing and socket passing use it)."""
        spin_ns = _checks.spin_ns(spin)
        self = cls.from_fd(fd)
        self._spin = spin_ns
        return self

    def _modes(self) -> dict[str, object]:
        return {"spin": self.spin}

    def detach(self) -> int:
        """Give up ownership: return the fd, which the caller must close.
        Calls sleeping in other threads wake with ValueError, as at close."""
        fd = self._close(detach=True)
        if fd < 0:
            self._raise_closed()
        return fd

    def _fdinfo(self) -> dict[str, str]:
        buf = ffi.new("char[]", 1024)
        result = lib.efx_owner_fdinfo(self._h, buf, 1024)
        if result < 0:
            self._fail(result)
        return _parse_fdinfo(ffi.string(buf).decode("ascii"))

    def __repr__(self) -> str:
        name = type(self).__name__
        try:
            fd, info = self.fileno(), self._fdinfo()
        except ValueError:
            return f"<{name} [closed]>"
        except OSError:
            return f"<{name} [unreadable fdinfo]>"
        flags = int(info.get("flags", "0"), 8)
        mode = [
            mode_name
            for mode_name, on in (
                ("semaphore", info.get("eventfd-semaphore") == "1"),
                ("nonblocking", flags & os.O_NONBLOCK),
            )
            if on
        ]
        count = int(info.get("eventfd-count", "0"), 16)
        return f"<{name} fd={fd} count={count}{''.join(' ' + m for m in mode)}>"

    # -- modes ----------------------------------------------------------

    @property
    def semaphore(self) -> bool:
        """Whether reads take 1 (EFD_SEMAPHORE) rather than the whole count.

        Read from the kernel (fdinfo), so it is right for adopted fds too.
        """
        return self._fdinfo().get("eventfd-semaphore") == "1"

    @property
    def nonblocking(self) -> bool:
        """Whether reads and writes raise BlockingIOError instead of waiting.

        Shared with every duplicate of the fd, like ``O_NONBLOCK`` itself.
        """
        result = lib.efx_efd_nonblocking(self._h, -1)
        if result < 0:
            self._fail(result)
        return bool(result)

    @nonblocking.setter
    def nonblocking(self, value: bool) -> None:
        result = lib.efx_efd_nonblocking(self._h, 1 if value else 0)
        if result < 0:
            self._fail(result)

    # -- the counter ----------------------------------------------------

    def read(self, timeout: float | None = None) -> int:
        """Take the count (1 in semaphore mode) and return it.

        With no *timeout*, blocks while the count is zero (BlockingIOError if
        non-blocking).  With a *timeout* in seconds, waits at most that long
        whatever the fd's mode, and raises TimeoutError if nothing came.
        With ``spin`` set, a wait spins that long (within the timeout)
        before it sleeps.  A close() from another thread wakes it with
        ValueError.
        """
        if timeout is None:
            value: int = _take(self._h)  # the hot path: one RWF_NOWAIT read
            if value:
                return value
        return self._read_waiting(timeout)

    def _read_waiting(self, timeout: float | None) -> int:
        # Its own function, so that read() makes no cells on the fast path.
        h, count = self._h, ffi.new("uint64_t *")  # per call: a handler may read too
        fail = self._failing("read()")
        if timeout is None and not self._spin:  # the common wait: one crossing
            # BlockingIOError for a non-blocking fd, through _fail.
            _core.finish(_wait_read(h, -1, count), fail, _wait_read, h, -1, count)
            return int(count[0])
        self.fileno()  # a closed object says so before a bad timeout does
        deadline = _core.deadline(timeout)
        if timeout is None:  # a non-blocking fd raises at once, never spins
            result = lib.efx_efd_read(h, count)
            if not result:
                return int(count[0])
            if result < 0:
                fail(result)
        # The spin looks without taking (a handler that raises after it
        # leaves the count); then one crossing sleeps and takes.
        _core.spin_first(h, fail, deadline, self._spin, _spin_step)
        if _core.sleep_until(fail, deadline, lambda ms: _wait_read(h, ms, count)):
            return int(count[0])
        raise TimeoutError(f"no count within {timeout} s")

    def write(self, value: int = 1) -> None:
        """Add *value* (0 <= value < 2**64 - 1) to the count, waking readers.

        Blocks (BlockingIOError if non-blocking) while the count would pass
        2**64 - 2.  A refused value leaves the count as it was.
        """
        if type(value) is not int:  # cffi would take Decimal('1.5') as 1
            value = _checks.check_value(value)
        try:
            # The one-argument call (METH_O, no argument tuple) makes the
            # common write(1) cheaper (the bench's per-call rows).
            result = _signal(self._h) if value == 1 else _write(self._h, value)
        except (TypeError, OverflowError):
            _checks.check_value(value)  # raises for what cffi refuses
            raise
        if result:
            self._write_failed(value, result)

    def _write_failed(self, value: int, result: int) -> None:
        if result == -errno.EINVAL:
            _checks.check_value(value)  # 2**64 - 1: the kernel's overflow mark
        _core.finish(result, self._fail, _write, self._h, value)

    def try_read(self) -> int:
        """The count (1 in semaphore mode), or 0 if there is none: never
        blocks, whatever the fd's mode, and never raises for a zero count."""
        value: int = _take(self._h)
        return value or self._try_read("try_read()")

    def _try_read(self, call: str) -> int:
        """try_read() past its hot path, for method *call* (its errors
        name it)."""
        count = ffi.new("uint64_t *")
        result = lib.efx_efd_read(self._h, count)
        if not result:
            return int(count[0])
        if result < 0 and result != _EAGAIN:
            self._fail(result, call)
        return 0

    @property
    def spin(self) -> float:
        """Seconds a blocking read that finds no count spins (yielding the
        CPU, looking with poll) before it sleeps: 0 by default, at most
        1.  Pays when the writer is another process on another CPU and
        answers within the budget."""
        return self._spin / 1e9

    @spin.setter
    def spin(self, value: float) -> None:
        self._spin = _checks.spin_ns(value)

    def peek(self) -> int:
        """The current count, without taking it (from /proc/self/fdinfo)."""
        return int(self._fdinfo()["eventfd-count"], 16)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the count is nonzero, without taking it.

        Returns True when readable, False if *timeout* seconds passed first.
        A close() from another thread wakes it with ValueError.
        """
        self.fileno()
        deadline = _core.deadline(timeout)
        return _core.wait_ready(self._h, self._fail, deadline, 0, _spin_step, _sleep_step)

    # -- async: asyncio, uvloop, trio, anyio (eventfd_ext/_aio.py) --------

    async def aread(self) -> int:
        """Take the count (1 in semaphore mode) in a task of asyncio
        (uvloop included), trio or anyio.

        Waits in the running loop while the count is zero, never blocking
        it, whatever the fd's mode: a count that another reader (task,
        thread or process) takes first sends it back to waiting.  Any number
        of tasks may await the same EventFD; cancelling one (a timeout, a
        cancel scope) leaves the count and the fd as they were.  Closing the
        EventFD meanwhile, from any thread, raises ValueError here.  Outside
        those frameworks it raises RuntimeError.
        """
        return await _aio.read(self)

    async def await_readable(self) -> None:
        """Wait in the running loop until the count is nonzero, without
        taking it: the async twin of ``wait()`` (use the framework's
        timeout for one).  Shares aread()'s one registration per loop."""
        loop = _aio.running_loop()
        await _aio.wait(self.fileno(), _aio._READ, self._check_open, loop)
