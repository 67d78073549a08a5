"""Doorbell: an eventfd whose counter lives in shared memory.

The count is a 64-bit word in a sealed memfd mapping that every holder
maps; the eventfd (``fileno()``) is only the wake-up channel.  A write makes
no syscall unless a reader sleeps or a poller watches; a read that finds a
count makes none; a read that finds none spins for a while, then sleeps on
the eventfd.  The protocol, and the orderings that keep a wake-up from
being lost, are docs/doorbell-protocol.md; the shared layout and the C
API, for C peers, are include/eventfd_ext/doorbell.h; the object's calls
are csrc/bell_owner.h.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import NoReturn

from . import _aio, _checks, _core
from ._constants import OVERFLOW
from ._eventfd import eventfd_fdinfo
from ._owner import FDOwner
from ._requirements import NOWAIT_READ
from ._shim import ffi, lib
from ._watchgate import WatchGated

__all__ = ["Doorbell"]

_take = lib.efx_db_take
_signal = lib.efx_db_signal
_spin_step = lib.efx_db_spin
_sleep_step = lib.efx_db_sleep
_INFO_COUNT, _INFO_FLAGS = 0, 10  # indices in efx_db_info's snapshot
# watch() tokens: one freed without an exit (an exception anywhere, even
# in a signal handler between two lines) exits as it is freed.
_new_watch = ffi.new_allocator(
    ffi.addressof(lib, "efx_db_watch_alloc"),
    ffi.addressof(lib, "efx_db_watch_free"),
    should_clear_after_alloc=False,
)


@contextlib.contextmanager
def bell_watched(owner: FDOwner) -> Iterator[None]:
    """The watch of an owner whose handle rings a Doorbell page (a Doorbell,
    a Channel's data page): while inside, every write reaches the eventfd,
    and the fd is made readable at once if a count is pending; reads inside
    take the eventfd's token before the count.  Leaving, by any exception
    (even one raised by a signal handler at any line), ends it."""
    token = _new_watch("struct efxd_watch *")
    result = lib.efx_db_watch_enter(owner._h, token)
    if result:
        lib.efx_db_watch_exit(token)  # counted even when its ring failed
        owner._fail(result)
    try:
        yield
    finally:
        lib.efx_db_watch_exit(token)


class Doorbell(WatchGated):
    """A counter with eventfd's rules in shared memory, an eventfd beside it.

    ``Doorbell(initval=0, *, semaphore=False, nonblocking=False, spin=None)``:
    the same interface and counter rules as :class:`EventFD`; *spin* is how
    long a read that finds no count spins before sleeping, in seconds (None:
    an adaptive budget that shrinks when spinning does not pay).  A poller
    of the eventfd polls inside :meth:`watch`, the only place ``fileno()``
    answers; ``aread()`` and ``await_readable()`` watch by themselves.
    """

    __slots__ = ("_nonblocking", "_spin")
    _needs = NOWAIT_READ

    _nonblocking: bool
    _spin: int
    _OTHER_WAYS = ", or send it over a UNIX socket with eventfd_ext.send_doorbell"

    def __init__(
        self,
        initval: int = 0,
        *,
        semaphore: bool = False,
        nonblocking: bool = False,
        spin: float | None = None,
    ) -> None:
        initval = _checks.check_initval(initval)
        self._spin = _checks.spin_ns(spin, adaptive=True)
        self._nonblocking = bool(nonblocking)
        out = ffi.new("efx_owner_t **")
        flags = lib.EFX_BELL_SEMAPHORE if semaphore else 0
        self._own(lib.efx_db_create(initval, flags, out), out)
        # Recorded in the page, so that from_fds can refuse another eventfd
        # (the fdinfo field is there since Linux 5.15).
        try:
            eventfd_id = self._fdinfo_id()
        except BaseException:
            self.close()  # nobody got the object: it says nothing
            raise
        if eventfd_id:
            lib.efx_db_set_eventfd_id(self._h, eventfd_id)

    def _fdinfo_id(self) -> int:
        buf = ffi.new("char[]", 1024)
        result = lib.efx_owner_fdinfo(self._h, buf, 1024)
        if result < 0:
            self._fail(result)
        for line in ffi.string(buf).decode("ascii").splitlines():
            key, _, value = line.partition(":")
            if key == "eventfd-id":
                return int(value)
        return 0

    @classmethod
    def from_fds(
        cls, memfd: int, efd: int, *, nonblocking: bool = False, spin: float | None = None
    ) -> Doorbell:
        """Adopt a Doorbell's two fds (its memfd and its eventfd) received
        from another process (``subprocess`` ``pass_fds``, SCM_RIGHTS): the
        object owns them and will close them.  Anything else is refused
        with ValueError (not a sealed Doorbell page, or not its eventfd; a
        memfd that cannot be mapped read-write gives the OSError of the
        mapping, e.g. PermissionError), and the fds are then left open.
        A blocking eventfd is made non-blocking (the open file's flag, which
        every holder shares; no Doorbell reads it in a way that could block
        either way), so that any kernel reads its wake-ups.  Only fd numbers are taken, as by
        ``EventFD.from_fd``: an object with ``fileno()`` still owns its fd."""
        memfd, efd = _checks.as_fd_numbers("from_fds() takes fd numbers", memfd, efd)
        spin_ns = _checks.spin_ns(spin, adaptive=True)
        # The wake-up channel is rung with write(2): anything but an eventfd
        # (a pipe, a file, the memfd itself) would have bytes written into it.
        info = eventfd_fdinfo(efd)
        if info is None:
            raise ValueError(f"fds {memfd}, {efd} are not a Doorbell's memfd and eventfd")
        self = cls.__new__(cls)
        self._spin = spin_ns
        self._nonblocking = bool(nonblocking)
        out = ffi.new("efx_owner_t **")
        result = lib.efx_db_adopt(memfd, efd, int(info.get("eventfd-id", 0)), out)
        if result == -errno.EINVAL:
            raise ValueError(f"fds {memfd}, {efd} are not a Doorbell's memfd and eventfd")
        if result == -errno.EXDEV:
            raise ValueError(
                f"fd {efd} is an eventfd, but not the one of the Doorbell whose memfd is {memfd}"
            )
        self._own(result, out)
        return self

    def _modes(self) -> dict[str, object]:
        return {"nonblocking": self._nonblocking, "spin": self.spin}

    def __repr__(self) -> str:
        try:
            info = self._info()
        except ValueError:
            return f"<{type(self).__name__} [closed]>"
        modes = "".join(
            f" {name}"
            for name, on in (
                ("semaphore", info[_INFO_FLAGS] & lib.EFX_BELL_SEMAPHORE),
                ("nonblocking", self._nonblocking),
            )
            if on
        )
        fd = lib.efx_owner_fd(self._h)
        return f"<{type(self).__name__} fd={fd} count={info[_INFO_COUNT]}{modes}>"

    # -- modes ----------------------------------------------------------

    @property
    def semaphore(self) -> bool:
        """Whether reads take 1 rather than the whole count (fixed at creation)."""
        return bool(self._info()[_INFO_FLAGS] & lib.EFX_BELL_SEMAPHORE)

    @property
    def nonblocking(self) -> bool:
        """Whether reads and writes raise BlockingIOError instead of waiting
        (this object's mode, not shared with other holders)."""
        self._check_open()
        return self._nonblocking

    @nonblocking.setter
    def nonblocking(self, value: bool) -> None:
        self._check_open()
        self._nonblocking = bool(value)

    @property
    def spin(self) -> float | None:
        """Seconds a read spins before sleeping; None: adaptive."""
        return None if self._spin == _checks.ADAPTIVE_SPIN else self._spin / 1e9

    @spin.setter
    def spin(self, value: float | None) -> None:
        self._spin = _checks.spin_ns(value, adaptive=True)

    # -- the counter ----------------------------------------------------

    def write(self, value: int = 1) -> None:
        """Add *value* (0 <= value < 2**64 - 1), waking a sleeping reader.

        Waits (BlockingIOError if non-blocking) while the count would pass
        2**64 - 2.  A refused value leaves the count as it was; a value
        added is added once, whatever happens after (an OSError then says
        that waking the sleepers failed, and that the value was added).
        """
        if type(value) is not int:
            value = _checks.check_value(value)
        elif value == 1:
            result: int = _signal(self._h)  # the hot path: one CAS, no syscall
            if not result:
                return
            if result > 0:  # added: never again
                self._ring_failed(result)
        elif not 0 <= value < OVERFLOW:
            _checks.check_value(value)
        # A value other than 1, or a 1 that found no room: waits for room
        # unless non-blocking.  A positive result added the value but failed
        # to wake the sleepers.
        h, timeout = self._h, 0 if self._nonblocking else -1
        result = lib.efx_db_write(h, value, timeout)
        if result < 0:
            result = _core.finish(result, self._fail, lib.efx_db_write, h, value, timeout)
        if result:
            self._ring_failed(result)

    def _ring_failed(self, err: int) -> NoReturn:
        raise OSError(err, f"{os.strerror(err)} (the value was added; waking sleepers failed)")

    def try_read(self) -> int:
        """The count (1 in semaphore mode), or 0 if there is none; never
        blocks, never raises for an empty counter."""
        value: int = _take(self._h)  # the hot path: one CAS, no syscall
        if not value:
            self._check_open()
        return value

    def read(self, timeout: float | None = None) -> int:
        """Take the count (1 in semaphore mode) and return it.

        With no *timeout*, waits while the count is zero (BlockingIOError if
        non-blocking); with one, waits at most that long whatever the mode,
        and raises TimeoutError if nothing came.  A close() from another
        thread wakes it with ValueError.
        """
        if timeout is None:
            value: int = _take(self._h)  # the hot path: one CAS, no syscall
            if value:
                return value
        return self._read_waiting(timeout)

    def _read_waiting(self, timeout: float | None) -> int:
        # Its own function, so that read() makes no cells on the fast path.
        self._check_open()  # a closed object says so before a bad timeout does
        deadline = _core.deadline(timeout)
        h, fail = self._h, self._failing("read()")
        while True:
            value: int = _take(h)
            if value:
                return value
            self._check_open()
            if timeout is None and self._nonblocking:
                _core.raise_errno(errno.EAGAIN)
            if not _core.wait_ready(h, fail, deadline, self._spin, _spin_step, _sleep_step):
                raise TimeoutError(f"no count within {timeout} s")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the count is nonzero, without taking it: True, or
        False if *timeout* seconds passed first.  A close() from another
        thread wakes it with ValueError."""
        self._check_open()
        deadline = _core.deadline(timeout)
        fail = self._failing("wait()")
        return _core.wait_ready(self._h, fail, deadline, self._spin, _spin_step, _sleep_step)

    def peek(self) -> int:
        """The current count, without taking it (one load, no syscall)."""
        return int(self._info()[_INFO_COUNT])

    # -- polling --------------------------------------------------------

    def _watched(self) -> contextlib.AbstractContextManager[None]:
        return bell_watched(self)

    async def aread(self) -> int:
        """Take the count in a task of asyncio (uvloop included), trio or
        anyio, never blocking the loop; inside its own watch(), so that the
        loop sees every write.  close() meanwhile raises ValueError here (as
        EventFD.aread)."""
        loop = _aio.running_loop()
        with self._watched():  # not the user's: fileno() stays shut
            while True:
                value = self.try_read()
                if value:
                    return value
                await _aio.wait(self._wake_fd(), _aio._READ, self._check_open, loop)

    async def await_readable(self) -> None:
        """Wait in the running loop until the count is nonzero, taking
        nothing; inside its own watch(), as aread()."""
        loop = _aio.running_loop()
        with self._watched():  # rings at once if a count is pending
            while not self.peek():
                await _aio.wait(self._wake_fd(), _aio._READ, self._check_open, loop)
                # The token before the count (a stale one would wake the
                # loop forever); a token drained while a count stays behind
                # is rung again, for the other pollers and sleepers.
                result = lib.efx_db_drain_token(self._h)
                if result < 0:
                    self._fail(result, "await_readable()")

    # -- internals --------------------------------------------------------

    def _info(self) -> list[int]:
        out = ffi.new("uint64_t[]", lib.EFX_BELL_INFO_N)
        filled = lib.efx_db_info(self._h, out, lib.EFX_BELL_INFO_N)
        if filled < 0:
            self._fail(filled)
        return [int(out[i]) for i in range(filled)]
