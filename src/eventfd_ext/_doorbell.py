"""Doorbell: an eventfd whose counter lives in shared memory (issue 12).

The count is a 64-bit word in a memfd mapping that every holder maps; the
eventfd (``fileno()``) is only the wake-up channel.  A write makes no
syscall unless a reader sleeps or a poller watches; a read that finds a
count makes none; a read that finds none spins for a while, then sleeps on
the eventfd.  The protocol, and the orderings that keep a wake-up from
being lost, are csrc/DOORBELL.md; the shared layout, for C peers, is
csrc/doorbell_layout.h.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from typing import Any

from . import _aio, _core
from ._constants import OVERFLOW
from ._eventfd import _fdinfo, eventfd_fdinfo
from ._owner import FDOwner
from ._shim import ffi, lib

__all__ = ["Doorbell"]

_detach: Callable[[Any], Any] = lib.efx_bell_detach  # ffi.gc ignores its result
_take1 = lib.efx_bell_take1
_signal = lib.efx_bell_signal
_read = lib.efx_bell_read
_spin_take = lib.efx_bell_spin_take
_ADAPTIVE = -1  # the shim's spin_ns for "the handle's adaptive budget"
_INFO_COUNT, _INFO_FLAGS = 0, 10  # indices in efx_bell_info's snapshot


def _spin_ns(spin: object) -> int:
    """A spin budget in seconds (None: adaptive) as the shim's nanoseconds."""
    return _ADAPTIVE if spin is None else _core.spin_ns(spin)


class Doorbell(FDOwner):
    """A counter with eventfd's rules in shared memory, an eventfd beside it.

    ``Doorbell(initval=0, *, semaphore=False, nonblocking=False, spin=None)``:
    the same interface and counter rules as :class:`EventFD`; *spin* is how
    long a read that finds no count spins before sleeping, in seconds (None:
    an adaptive budget that shrinks when spinning does not pay).
    """

    __slots__ = ("_bell", "_memfd", "_nonblocking", "_spin", "_watching")

    _bell: Any
    _memfd: int
    _nonblocking: bool
    _spin: int
    _watching: int
    _OTHER_WAYS = ", or send it over a UNIX socket with eventfd_ext.send_doorbell"

    def __init__(
        self,
        initval: int = 0,
        *,
        semaphore: bool = False,
        nonblocking: bool = False,
        spin: float | None = None,
    ) -> None:
        self._fd = self._memfd = -1  # __del__ and repr must work if creation fails
        initval = _core.check_initval(initval)
        self._spin = _spin_ns(spin)
        memfd, efd, out = ffi.new("int *"), ffi.new("int *"), ffi.new("efx_bell_t **")
        flags = lib.EFX_BELL_SEMAPHORE if semaphore else 0
        result = lib.efx_bell_create(initval, flags, memfd, efd, out)
        if result:
            _core.raise_errno(-result)  # the shim closed what it had opened
        # The mapping stays until the object goes, so that a call racing
        # close() in another thread never touches unmapped memory.
        self._bell = ffi.gc(out[0], _detach)
        self._memfd, self._fd = memfd[0], efd[0]
        self._nonblocking = bool(nonblocking)
        self._watching = 0
        # Recorded in the page, so that from_fds can refuse another eventfd.
        eventfd_id = _fdinfo(self._fd).get("eventfd-id")  # it is an eventfd: just made
        if eventfd_id is not None:  # the field is in fdinfo since Linux 5.15
            lib.efx_bell_set_eventfd_id(self._bell, int(eventfd_id))

    @classmethod
    def from_fds(
        cls, memfd: int, efd: int, *, nonblocking: bool = False, spin: float | None = None
    ) -> Doorbell:
        """Adopt a Doorbell's two fds (its memfd and its eventfd) received
        from another process (``subprocess`` ``pass_fds``, SCM_RIGHTS): the
        object owns them and will close them.  Anything else is refused
        with ValueError (not a Doorbell's layout, or not an eventfd; a
        memfd that cannot be mapped read-write gives the OSError of the
        mapping, e.g. PermissionError), and the fds are then left open.
        The eventfd may be blocking: the Doorbell never reads it in a way
        that could block.  Only fd numbers are taken, as by
        ``EventFD.from_fd``: an object with ``fileno()`` still owns its fd."""
        memfd, efd = _core.as_fd_numbers("from_fds() takes fd numbers", memfd, efd)
        # The wake-up channel is rung with write(2): anything but an eventfd
        # (a pipe, a file, the memfd itself) would have bytes written into it.
        info = eventfd_fdinfo(efd)
        if info is None:
            raise ValueError(f"fds {memfd}, {efd} are not a Doorbell's memfd and eventfd")
        self = cls.__new__(cls)
        self._fd = self._memfd = -1
        self._spin = _spin_ns(spin)
        out = ffi.new("efx_bell_t **")
        result = lib.efx_bell_attach(memfd, efd, out)  # the shim checks the memfd's layout
        if result == -errno.EINVAL:
            raise ValueError(f"fds {memfd}, {efd} are not a Doorbell's memfd and eventfd")
        if result:
            _core.raise_errno(-result)
        recorded = lib.efx_bell_eventfd_id(out[0])
        if recorded and int(info.get("eventfd-id", recorded)) != recorded:
            _detach(out[0])
            raise ValueError(
                f"fd {efd} is an eventfd, but not the one of the Doorbell whose memfd is {memfd}"
            )
        self._bell = ffi.gc(out[0], _detach)
        self._memfd, self._fd = memfd, efd
        self._nonblocking = bool(nonblocking)
        self._watching = 0
        return self

    def _close_fd(self, fd: int) -> None:
        try:
            os.close(fd)
        finally:
            memfd, self._memfd = self._memfd, -1
            os.close(memfd)

    def fds(self) -> tuple[int, int]:
        """The two fds that make this Doorbell, ``(memfd, eventfd)``: the
        shared page holding the counter, and the wake-up channel
        (``fileno()``).  For ``subprocess`` ``pass_fds``; the child adopts
        them with :meth:`from_fds`.  Still owned by this object."""
        fd = self.fileno()
        return self._memfd, fd

    def _finalize_fd(self, fd: int, _close: Any = os.close) -> None:
        _close(fd)
        _close(self._memfd)

    def __repr__(self) -> str:
        if self.closed:
            return f"<{type(self).__name__} [closed]>"
        modes = "".join(
            f" {name}"
            for name, on in (("semaphore", self.semaphore), ("nonblocking", self._nonblocking))
            if on
        )
        return f"<{type(self).__name__} fd={self._fd} count={self.peek()}{modes}>"

    # -- modes ----------------------------------------------------------

    @property
    def semaphore(self) -> bool:
        """Whether reads take 1 rather than the whole count (fixed at creation)."""
        return bool(self._info()[_INFO_FLAGS] & lib.EFX_BELL_SEMAPHORE)

    @property
    def nonblocking(self) -> bool:
        """Whether reads and writes raise BlockingIOError instead of waiting
        (this object's mode, not shared with other holders)."""
        self.fileno()
        return self._nonblocking

    @nonblocking.setter
    def nonblocking(self, value: bool) -> None:
        self.fileno()
        self._nonblocking = bool(value)

    @property
    def spin(self) -> float | None:
        """Seconds a read spins before sleeping; None: adaptive."""
        return None if self._spin == _ADAPTIVE else self._spin / 1e9

    @spin.setter
    def spin(self, value: float | None) -> None:
        self._spin = _spin_ns(value)

    # -- the counter ----------------------------------------------------

    def write(self, value: int = 1) -> None:
        """Add *value* (0 <= value < 2**64 - 1), waking a sleeping reader.

        Waits (BlockingIOError if non-blocking) while the count would pass
        2**64 - 2.  A refused value leaves the count as it was.
        """
        fd = self._fd
        if fd < 0:
            self._raise_closed()
        if type(value) is not int:
            value = _core.check_value(value)
        elif value == 1:
            if not _signal(self._bell):  # the hot path: one CAS, no syscall
                return
        elif not 0 <= value <= OVERFLOW:
            _core.check_value(value)
        timeout = 0 if self._nonblocking else -1
        while True:
            result = lib.efx_bell_write(self._bell, value, timeout)
            if not result:
                return
            self._check_open(fd)
            if result == -errno.EINTR:
                continue  # signal handlers ran at this back edge
            if result == -errno.EINVAL:
                raise ValueError(
                    "2**64 - 1 cannot be written to an eventfd (the kernel "
                    "reserves it to mark an overflow)"
                )
            _core.raise_errno(-result)

    def try_read(self) -> int:
        """The count (1 in semaphore mode), or 0 if there is none; never
        blocks, never raises for an empty counter."""
        fd = self._fd
        if fd < 0:
            self._raise_closed()
        if not self._watching:
            return _take1(self._bell)  # the hot path: one CAS, no syscall
        out = ffi.new("uint64_t *")
        result = self._take(out)
        if result == -errno.EAGAIN:
            return 0
        if result:
            self._check_open(fd)
            _core.raise_errno(-result)
        return int(out[0])

    def read(self, timeout: float | None = None) -> int:
        """Take the count (1 in semaphore mode) and return it.

        With no *timeout*, waits while the count is zero (BlockingIOError if
        non-blocking); with one, waits at most that long whatever the mode,
        and raises TimeoutError if nothing came.
        """
        if timeout is None and not self._nonblocking and not self._watching:
            if self._fd < 0:
                self._raise_closed()
            # A count found costs one METH_O call (~60 ns less than the
            # two-argument one); none: spin, then sleep, each one crossing,
            # and two calls so that a signal that came while C spun has its
            # handler run before the sleep (see efx_bell_spin).
            bell, spin = self._bell, self._spin
            value = _take1(bell) or (spin and _spin_take(bell, spin)) or _read(bell)
            if value:
                return value
            # It failed (EINTR, a close): the wait below says why, or waits on.
        return self._read_waiting(timeout)

    def _read_waiting(self, timeout: float | None) -> int:
        # Its own function: the closure's cells would be made on every call
        # of read(), the fast path included.
        if timeout is not None and self._fd >= 0:  # closed: try_read says so first
            _core.timeout_ms(timeout)  # a bad timeout takes nothing (as EventFD.read)
        value = self.try_read()
        if value:
            return value
        if timeout is None and self._nonblocking:
            _core.raise_errno(errno.EAGAIN)
        out = ffi.new("uint64_t *")  # per call: a signal handler may read too
        bell = self._bell
        if self._spin_first(timeout, out):
            return int(out[0])

        def wait_read(fd: int, ms: int) -> int:
            return lib.efx_bell_wait_read(bell, ms, 0, out)

        if not _core.wait_readable(self.fileno(), timeout, wait_read, self._check_open):
            raise TimeoutError(f"no count within {timeout} s")
        return int(out[0])

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the count is nonzero, without taking it: True, or
        False if *timeout* seconds passed first."""
        bell = self._bell
        if self._spin_first(timeout, ffi.NULL):
            return True

        def wait(fd: int, ms: int) -> int:
            return lib.efx_bell_wait(bell, ms, 0)

        return bool(_core.wait_readable(self.fileno(), timeout, wait, self._check_open))

    def _spin_first(self, timeout: float | None, out: Any) -> bool:
        """Spin (within *timeout*) before a wait sleeps: True if a count
        came (taken into *out*, or only seen when out is NULL).  Its own
        call, returning to Python before the sleep: see efx_bell_spin."""
        fd = self.fileno()  # a closed object says so before a bad timeout does
        ms = _core.timeout_ms(timeout)
        result = lib.efx_bell_spin(self._bell, ms, self._spin, out) if self._spin else 0
        if result < 0:
            self._check_open(fd)
            _core.raise_errno(-result)
        return result == 1

    def peek(self) -> int:
        """The current count, without taking it (one load, no syscall)."""
        return int(self._info()[_INFO_COUNT])

    # -- polling --------------------------------------------------------

    @contextlib.contextmanager
    def watch(self) -> Iterator[Doorbell]:
        """While inside, every write reaches the eventfd, and the fd is made
        readable at once if a count is pending: what a poller (select,
        poll, epoll, selectors, asyncio) needs to never miss a count.
        Reads inside take the eventfd's token before the count.  A child
        forked inside is covered by its parent's watch only while the
        parent stays inside: a child that polls enters its own."""
        self.fileno()
        result = lib.efx_bell_watch_enter(self._bell)
        if result:
            lib.efx_bell_watch_exit(self._bell)  # counted before its ring failed
            _core.raise_errno(-result)
        self._watching += 1
        pid = os.getpid()
        try:
            yield self
        finally:
            self._watching -= 1
            # Also when closed inside: the watchers count is shared, and a
            # watcher left behind makes every holder's write ring (a
            # syscall each).  The mapping lives as long as this object.
            # Only by the process that counted it: a child forked inside
            # would otherwise take away its parent's watcher.
            if os.getpid() == pid:
                lib.efx_bell_watch_exit(self._bell)

    def _take(self, out: Any) -> int:
        # A poller woken by the eventfd takes its token before the count, so
        # that a token whose count comes later is never swallowed.
        if self._watching:
            return lib.efx_bell_poll_take(self._bell, out)
        return lib.efx_bell_take(self._bell, out)

    async def aread(self) -> int:
        """Take the count in a coroutine, never blocking the loop; close()
        meanwhile raises ValueError here (as EventFD.aread)."""
        with self.watch():
            while True:
                value = self.try_read()
                if value:
                    return value
                await _aio._wait(self.fileno(), _aio._READ, self._check_open)

    async def await_readable(self) -> None:
        """Wait in the running loop until the count is nonzero, taking
        nothing."""
        with self.watch():  # rings at once if a count is pending
            while not self.peek():
                await _aio._wait(self.fileno(), _aio._READ, self._check_open)
                # The token before the count (a stale one would wake the
                # loop forever); a token drained while a count stays behind
                # is rung again, for the other pollers and sleepers.
                drained = self._drain_token()
                if drained and self.peek():
                    lib.efx_signal(self.fileno())

    def _drain_token(self) -> bool:
        # RWF_NOWAIT, not os.read: from_fds may have adopted a blocking
        # eventfd, and another awaiter may have taken the token first.
        return bool(lib.efx_take_nowait(self.fileno()))

    # -- internals --------------------------------------------------------

    def _info(self) -> list[int]:
        self.fileno()
        out = ffi.new("uint64_t[]", lib.EFX_BELL_INFO_N)
        filled = lib.efx_bell_info(self._bell, out, lib.EFX_BELL_INFO_N)
        return [int(out[i]) for i in range(filled)]
