"""Bad input across the public API: each case asserts the exception type and
that nothing changed (the counters, the modes, the open fds, the shared
mappings, and the contents and offsets of the foreign fds handed in).

The counter's cases (values, types, int subclasses, timeouts, spin budgets,
EAGAIN, closed objects) run on EventFD and on Doorbell alike, and both must
say the same thing.  Foreign fds are a pipe (both ends), regular files, a
directory, a socket, an unused number; they go to the drop-ins and to
EventFD.from_fd, and, with memfds that are not a Doorbell's (too small, a
wrong magic, version or flags, opened read-only) and a lone eventfd, to
Doorbell.from_fds.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import fcntl
import os
import pickle
import select
import socket
import struct
import tempfile
import termios
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from _kernel import MAX, count, open_fds, record, shared_mappings
from eventfd_ext import (
    EFD_CLOEXEC,
    EFD_MASK,
    EFD_NONBLOCK,
    EFD_SEMAPHORE,
    Doorbell,
    EventFD,
    eventfd,
    eventfd_read,
    eventfd_write,
)


class Lying(int):
    """An int subclass whose own conversions lie: it counts by its value."""

    def __index__(self) -> int:
        return 1

    def __int__(self) -> int:
        return 1


@dataclass
class Counters:
    """One class's objects: the shared cases run on EventFD's and Doorbell's."""

    cls: type[EventFD | Doorbell]
    ev: Any  # count 5, blocking, normal mode
    nb: Any  # count 0, non-blocking
    full: Any  # count MAX, non-blocking
    sem: Any  # count 2, semaphore
    closed: Any

    @classmethod
    def make(cls, kind: type[EventFD | Doorbell]) -> Counters:
        closed = kind()
        closed.close()
        full = kind(nonblocking=True)
        full.write(MAX)
        return cls(kind, kind(5), kind(nonblocking=True), full, kind(2, semaphore=True), closed)

    def snapshot(self) -> tuple[object, ...]:
        return (
            self.ev.peek(),
            self.ev.nonblocking,
            self.ev.semaphore,
            self.ev.spin,
            self.nb.peek(),
            self.nb.nonblocking,
            self.full.peek(),
            self.sem.peek(),
            self.sem.semaphore,
            self.closed.closed,
        )

    def close(self) -> None:
        for obj in (self.ev, self.nb, self.full, self.sem):
            obj.close()


@dataclass
class World:
    """Everything a bad call could disturb."""

    eventfd: Counters
    doorbell: Counters
    pipe_r: int  # holds PIPE_DATA
    pipe_w: int
    empty_r: int  # an empty non-blocking pipe
    empty_w: int
    file_ro: int  # a regular file at EOF, read-only
    file_wo: int  # the same file, write-only
    file_rw: int  # a page of b"x", read-write, at offset 3
    dir_fd: int
    sock: socket.socket
    unused: int  # a number no fd has
    efd: int  # a lone eventfd, count 7: no Doorbell's
    memfd: int  # the memfd of doorbell.ev
    memfd_ro: int  # the same memfd, opened read-only
    small_memfd: int  # smaller than a Doorbell's layout
    junk_memfd: int  # layout-sized, a wrong magic
    newer_memfd: int  # a Doorbell's layout, a later version
    flags_memfd: int  # a Doorbell's layout, an unknown flag
    extra: list[int] = field(default_factory=list)

    def counters(self) -> tuple[Counters, Counters]:
        return self.eventfd, self.doorbell


PIPE_DATA = b"abc"
_VERSION, _FLAGS = 8, 16  # offsets in a Doorbell's layout (eventfd_ext/doorbell.h)


def _pipe_bytes(fd: int) -> int:
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little")


def _contents(fd: int) -> bytes:
    return os.pread(fd, os.fstat(fd).st_size + 1, 0)


def snapshot(w: World) -> tuple[object, ...]:
    return (
        w.eventfd.snapshot(),
        w.doorbell.snapshot(),
        _pipe_bytes(w.pipe_r),
        _pipe_bytes(w.empty_r),
        os.lseek(w.file_ro, 0, os.SEEK_CUR),
        os.fstat(w.file_ro).st_size,
        os.lseek(w.file_rw, 0, os.SEEK_CUR),
        _contents(w.file_rw),
        count(w.efd),
        *(_contents(fd) for fd in (w.small_memfd, w.junk_memfd, w.newer_memfd, w.flags_memfd)),
        open_fds(),
    )


def _memfd(data: bytes) -> int:
    fd = os.memfd_create("eventfd_ext.test")
    os.write(fd, data)
    return fd


@pytest.fixture
def world() -> Iterator[World]:
    pipe_r, pipe_w = os.pipe()
    os.write(pipe_w, PIPE_DATA)
    empty_r, empty_w = os.pipe()
    os.set_blocking(empty_r, False)
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(b"12345678")
        tmp.flush()
        file_ro = os.open(tmp.name, os.O_RDONLY)
        os.lseek(file_ro, 0, os.SEEK_END)
        file_wo = os.open(tmp.name, os.O_WRONLY)
    with tempfile.TemporaryFile() as page:
        page.write(b"x" * 4096)
        page.flush()
        file_rw = os.dup(page.fileno())
    os.lseek(file_rw, 3, os.SEEK_SET)
    doorbell = Counters.make(Doorbell)
    memfd = doorbell.ev.fds()[0]
    layout = os.pread(memfd, 256, 0)
    newer = bytearray(layout)
    struct.pack_into("=I", newer, _VERSION, struct.unpack_from("=I", layout, _VERSION)[0] + 1)
    flagged = bytearray(layout)
    struct.pack_into("=I", flagged, _FLAGS, 0x2)
    w = World(
        eventfd=Counters.make(EventFD),
        doorbell=doorbell,
        pipe_r=pipe_r,
        pipe_w=pipe_w,
        empty_r=empty_r,
        empty_w=empty_w,
        file_ro=file_ro,
        file_wo=file_wo,
        file_rw=file_rw,
        dir_fd=os.open(tempfile.gettempdir(), os.O_RDONLY | os.O_DIRECTORY),
        sock=socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
        unused=-1,
        efd=os.eventfd(7),
        memfd=memfd,
        memfd_ro=os.open(f"/proc/self/fd/{memfd}", os.O_RDONLY),
        small_memfd=_memfd(layout[:100]),
        junk_memfd=_memfd(b"\xa5" * 256),
        newer_memfd=_memfd(bytes(newer)),
        flags_memfd=_memfd(bytes(flagged)),
    )
    w.unused = os.dup(0)
    os.close(w.unused)
    try:
        yield w
    finally:
        for counters in w.counters():
            counters.close()
        w.sock.close()
        for fd in (
            pipe_r,
            pipe_w,
            empty_r,
            empty_w,
            file_ro,
            file_wo,
            file_rw,
            w.dir_fd,
            w.efd,
            w.memfd_ro,
            w.small_memfd,
            w.junk_memfd,
            w.newer_memfd,
            w.flags_memfd,
        ):
            os.close(fd)


class FilenoReturnsStr:
    def fileno(self) -> str:
        return "3"


class FilenoRaises:
    def fileno(self) -> int:
        raise RuntimeError("no fd")


def _adopt(memfd: Any, efd: Any, **kwargs: Any) -> Doorbell:
    """Doorbell.from_fds; one that wrongly adopts gives the fds back, so
    that only its own case fails (not the fixture, closing them again)."""
    bell = Doorbell.from_fds(memfd, efd, **kwargs)
    bell._close(detach=True)
    return bell


def _switch_nonblocking_and_overflow(c: Counters) -> None:
    c.ev.nonblocking = True
    c.ev.write(MAX)


def _set(attr: str, value: object) -> Callable[[Any], object]:
    return lambda obj: setattr(obj, attr, value)


Case = Callable[[World], object]
SharedCase = Callable[[Counters], object]

# The counter's cases, for EventFD and Doorbell alike: "{cls}" in the id is
# the class.  (id, the call, the exception it must raise, errno if an OSError)
SHARED: list[tuple[str, SharedCase, type[BaseException], int | None]] = [
    # the constructor: values, types, signature, spin budgets
    ("{cls}(-1)", lambda c: c.cls(-1), ValueError, None),
    ("{cls}(-2**70)", lambda c: c.cls(-(2**70)), ValueError, None),
    ("{cls}(2**32)", lambda c: c.cls(2**32), OverflowError, None),
    ("{cls}(2**64)", lambda c: c.cls(2**64), OverflowError, None),
    ("{cls}(int subclass 2**32)", lambda c: c.cls(Lying(2**32)), OverflowError, None),
    ("{cls}(1.5)", lambda c: c.cls(1.5), TypeError, None),  # type: ignore[arg-type]
    ("{cls}('1')", lambda c: c.cls("1"), TypeError, None),  # type: ignore[arg-type]
    ("{cls}(None)", lambda c: c.cls(None), TypeError, None),  # type: ignore[arg-type]
    ("{cls}(Decimal(1))", lambda c: c.cls(Decimal(1)), TypeError, None),  # type: ignore[arg-type]
    ("{cls}(Fraction(1))", lambda c: c.cls(Fraction(1)), TypeError, None),  # type: ignore[arg-type]
    ("{cls}(0, True) positional mode", lambda c: c.cls(0, True), TypeError, None),  # type: ignore[call-arg]
    ("{cls}(bogus=1)", lambda c: c.cls(bogus=1), TypeError, None),  # type: ignore[call-arg]
    ("{cls}(spin=-1)", lambda c: c.cls(spin=-1), ValueError, None),
    ("{cls}(spin=nan)", lambda c: c.cls(spin=float("nan")), ValueError, None),
    ("{cls}(spin='1')", lambda c: c.cls(spin="1"), TypeError, None),  # type: ignore[arg-type]
    ("{cls}(spin=True)", lambda c: c.cls(spin=True), TypeError, None),
    ("{cls}(spin=Decimal)", lambda c: c.cls(spin=Decimal("0.1")), TypeError, None),  # type: ignore[arg-type]
    ("{cls}(spin=1e9)", lambda c: c.cls(spin=1e9), ValueError, None),
    ("{cls}(spin=inf)", lambda c: c.cls(spin=float("inf")), ValueError, None),
    ("{cls}(spin=2**2000)", lambda c: c.cls(spin=2**2000), ValueError, None),
    # write: values and types
    ("{cls}.write(-1)", lambda c: c.ev.write(-1), ValueError, None),
    ("{cls}.write(-2**70)", lambda c: c.ev.write(-(2**70)), ValueError, None),
    ("{cls}.write(2**64-1)", lambda c: c.ev.write(2**64 - 1), ValueError, None),
    ("{cls}.write(2**64)", lambda c: c.ev.write(2**64), OverflowError, None),
    ("{cls}.write(2**200)", lambda c: c.ev.write(2**200), OverflowError, None),
    ("{cls}.write(int subclass -1)", lambda c: c.ev.write(Lying(-1)), ValueError, None),
    ("{cls}.write(int subclass 2**64-1)", lambda c: c.ev.write(Lying(2**64 - 1)), ValueError, None),
    ("{cls}.write(int subclass 2**64)", lambda c: c.ev.write(Lying(2**64)), OverflowError, None),
    ("{cls}.write(1.0)", lambda c: c.ev.write(1.0), TypeError, None),
    ("{cls}.write('1')", lambda c: c.ev.write("1"), TypeError, None),
    ("{cls}.write(None)", lambda c: c.ev.write(None), TypeError, None),
    ("{cls}.write(bytes)", lambda c: c.ev.write(b"\1" * 8), TypeError, None),
    ("{cls}.write(Decimal)", lambda c: c.ev.write(Decimal(1)), TypeError, None),
    ("{cls}.write(Decimal('1.5'))", lambda c: c.ev.write(Decimal("1.5")), TypeError, None),
    ("{cls}.write(Fraction(3, 2))", lambda c: c.ev.write(Fraction(3, 2)), TypeError, None),
    ("{cls}.write(1, 2)", lambda c: c.ev.write(1, 2), TypeError, None),
    ("{cls} semaphore write(2**64-1)", lambda c: c.sem.write(2**64 - 1), ValueError, None),
    # read / wait: timeouts (refused before anything is taken: ev holds 5)
    ("{cls}.read(timeout='x')", lambda c: c.ev.read(timeout="x"), TypeError, None),
    ("{cls}.read(timeout=nan)", lambda c: c.ev.read(timeout=float("nan")), ValueError, None),
    ("{cls}.read(timeout=Decimal)", lambda c: c.ev.read(timeout=Decimal("0.1")), TypeError, None),
    ("{cls}.read(timeout=1j)", lambda c: c.ev.read(timeout=1j), TypeError, None),
    ("{cls}.read(timeout=-1)", lambda c: c.ev.read(timeout=-1), ValueError, None),
    ("{cls}.read(timeout=-1e-9)", lambda c: c.ev.read(timeout=-1e-9), ValueError, None),
    ("{cls}.read(timeout=-inf)", lambda c: c.ev.read(timeout=float("-inf")), ValueError, None),
    ("{cls}.read(timeout=-10**400)", lambda c: c.ev.read(timeout=-(10**400)), ValueError, None),
    ("{cls}.read(timeout=True)", lambda c: c.ev.read(timeout=True), TypeError, None),
    ("{cls}.read(1, 2)", lambda c: c.ev.read(1, 2), TypeError, None),
    ("{cls}.wait(-1)", lambda c: c.ev.wait(-1), ValueError, None),
    ("{cls}.wait('x')", lambda c: c.ev.wait("x"), TypeError, None),
    ("{cls}.wait(nan)", lambda c: c.ev.wait(float("nan")), ValueError, None),
    ("{cls}.wait(Decimal)", lambda c: c.ev.wait(Decimal("0.1")), TypeError, None),
    ("{cls}.try_read(0)", lambda c: c.ev.try_read(0), TypeError, None),
    ("{cls}.peek(0)", lambda c: c.ev.peek(0), TypeError, None),
    # the spin property
    ("{cls}.spin = -1", lambda c: _set("spin", -1)(c.ev), ValueError, None),
    ("{cls}.spin = nan", lambda c: _set("spin", float("nan"))(c.ev), ValueError, None),
    ("{cls}.spin = '1'", lambda c: _set("spin", "1")(c.ev), TypeError, None),
    ("{cls}.spin = True", lambda c: _set("spin", True)(c.ev), TypeError, None),
    ("{cls}.spin = 2", lambda c: _set("spin", 2)(c.ev), ValueError, None),
    # EAGAIN and timeouts
    ("{cls} nonblocking read at 0", lambda c: c.nb.read(), BlockingIOError, errno.EAGAIN),
    ("{cls} nonblocking write past max", lambda c: c.full.write(1), BlockingIOError, errno.EAGAIN),
    (
        "{cls} write(MAX) onto 5, non-blocking",
        _switch_nonblocking_and_overflow,
        BlockingIOError,
        errno.EAGAIN,
    ),
    ("{cls}.read(timeout=0) at 0", lambda c: c.nb.read(timeout=0), TimeoutError, None),
    # closed objects
    ("closed {cls} read", lambda c: c.closed.read(), ValueError, None),
    ("closed {cls} read(timeout)", lambda c: c.closed.read(timeout=1), ValueError, None),
    ("closed {cls} read(timeout='x')", lambda c: c.closed.read(timeout="x"), ValueError, None),
    ("closed {cls} try_read", lambda c: c.closed.try_read(), ValueError, None),
    ("closed {cls} write", lambda c: c.closed.write(1), ValueError, None),
    ("closed {cls} write(bad value)", lambda c: c.closed.write(-1), ValueError, None),
    ("closed {cls} peek", lambda c: c.closed.peek(), ValueError, None),
    ("closed {cls} wait", lambda c: c.closed.wait(0), ValueError, None),
    ("closed {cls} fileno", lambda c: c.closed.fileno(), ValueError, None),
    ("closed {cls} .nonblocking", lambda c: c.closed.nonblocking, ValueError, None),
    (
        "closed {cls} .nonblocking = True",
        lambda c: _set("nonblocking", True)(c.closed),
        ValueError,
        None,
    ),
    ("closed {cls} .semaphore", lambda c: c.closed.semaphore, ValueError, None),
    ("closed {cls} as context manager", lambda c: c.closed.__enter__(), ValueError, None),
    ("closed {cls} aread", lambda c: asyncio.run(c.closed.aread()), ValueError, None),
    (
        "select.poll register closed {cls}",
        lambda c: select.poll().register(c.closed),
        ValueError,
        None,
    ),
    ("eventfd_read(closed {cls})", lambda c: eventfd_read(c.closed), ValueError, None),
    ("eventfd_write(closed {cls}, 1)", lambda c: eventfd_write(c.closed, 1), ValueError, None),
    # pickling / copying an fd owner
    ("pickle.dumps({cls})", lambda c: pickle.dumps(c.ev), TypeError, None),
    ("copy.copy({cls})", lambda c: copy.copy(c.ev), TypeError, None),
    ("copy.deepcopy({cls})", lambda c: copy.deepcopy(c.ev), TypeError, None),
]

#: Shared cases whose messages differ between the classes, and why.
WORDED_APART = {
    "pickle.dumps({cls})": "EventFD's refusal also offers send_eventfd, which takes no Doorbell",
    "copy.copy({cls})": "the same refusal as pickle.dumps",
    "copy.deepcopy({cls})": "the same refusal as pickle.dumps",
}

# EventFD's own: from_fd, detach, spin=None, and the drop-ins on its fd.
EVENTFD_ONLY: list[tuple[str, Case, type[BaseException], int | None]] = [
    ("EventFD(spin=None)", lambda w: EventFD(spin=None), TypeError, None),  # type: ignore[arg-type]
    ("EventFD.spin = None", lambda w: _set("spin", None)(w.eventfd.ev), TypeError, None),
    ("closed EventFD detach", lambda w: w.eventfd.closed.detach(), ValueError, None),
    ("from_fd(closed EventFD)", lambda w: EventFD.from_fd(w.eventfd.closed), TypeError, None),
    ("from_fd(open EventFD)", lambda w: EventFD.from_fd(w.eventfd.ev), TypeError, None),
    (
        "eventfd_read non-blocking at 0",
        lambda w: eventfd_read(w.eventfd.nb),
        BlockingIOError,
        errno.EAGAIN,
    ),
    (
        "eventfd_write past max",
        lambda w: eventfd_write(w.eventfd.full, 1),
        BlockingIOError,
        errno.EAGAIN,
    ),
    # eventfd(): values, types, invalid flags
    ("eventfd(-1)", lambda w: eventfd(-1), ValueError, None),
    ("eventfd(2**32)", lambda w: eventfd(2**32), OverflowError, None),
    ("eventfd(0.5)", lambda w: eventfd(0.5), TypeError, None),  # type: ignore[arg-type]
    ("eventfd(0, 'x')", lambda w: eventfd(0, "x"), TypeError, None),  # type: ignore[arg-type]
    ("eventfd(0, 2**40)", lambda w: eventfd(0, 2**40), OverflowError, None),
    ("eventfd(0, 0xffff) unknown flags", lambda w: eventfd(0, 0xFFFF), OSError, errno.EINVAL),
    ("eventfd(0, EFD_MASK) not in kernel", lambda w: eventfd(0, EFD_MASK), OSError, errno.EINVAL),
    (
        "eventfd(0, all flags | 4)",
        lambda w: eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE | 4),
        OSError,
        errno.EINVAL,
    ),
    ("eventfd(0, -1)", lambda w: eventfd(0, -1), OSError, errno.EINVAL),
    # eventfd_read / eventfd_write: fds and values
    ("eventfd_read(-1)", lambda w: eventfd_read(-1), ValueError, None),
    ("eventfd_read(2**31)", lambda w: eventfd_read(2**31), OverflowError, None),
    ("eventfd_read('x')", lambda w: eventfd_read("x"), TypeError, None),  # type: ignore[arg-type]
    ("eventfd_read(1.0)", lambda w: eventfd_read(1.0), TypeError, None),  # type: ignore[arg-type]
    ("eventfd_read(None)", lambda w: eventfd_read(None), TypeError, None),  # type: ignore[arg-type]
    ("eventfd_read(fileno() -> str)", lambda w: eventfd_read(FilenoReturnsStr()), TypeError, None),  # type: ignore[arg-type]
    ("eventfd_read(fileno() raises)", lambda w: eventfd_read(FilenoRaises()), RuntimeError, None),
    ("eventfd_read(unused fd)", lambda w: eventfd_read(w.unused), OSError, errno.EBADF),
    ("eventfd_write(ev, -1)", lambda w: eventfd_write(w.eventfd.ev, -1), ValueError, None),
    (
        "eventfd_write(ev, 2**64-1)",
        lambda w: eventfd_write(w.eventfd.ev, 2**64 - 1),
        OSError,
        errno.EINVAL,
    ),
    ("eventfd_write(ev, 2**64)", lambda w: eventfd_write(w.eventfd.ev, 2**64), OverflowError, None),
    ("eventfd_write(ev, 1.0)", lambda w: eventfd_write(w.eventfd.ev, 1.0), TypeError, None),  # type: ignore[arg-type]
    ("eventfd_write(ev, '1')", lambda w: eventfd_write(w.eventfd.ev, "1"), TypeError, None),  # type: ignore[arg-type]
    (
        "eventfd_write(ev, Decimal('1.5'))",
        lambda w: eventfd_write(w.eventfd.ev, Decimal("1.5")),  # type: ignore[arg-type]
        TypeError,
        None,
    ),
    (
        "eventfd_read(Decimal(fd))",
        lambda w: eventfd_read(Decimal(w.eventfd.ev.fileno())),  # type: ignore[arg-type]
        TypeError,
        None,
    ),
    ("eventfd_write('x', 1)", lambda w: eventfd_write("x", 1), TypeError, None),  # type: ignore[arg-type]
    ("eventfd_write(-1, 1)", lambda w: eventfd_write(-1, 1), ValueError, None),
    ("eventfd_write(unused fd, 1)", lambda w: eventfd_write(w.unused, 1), OSError, errno.EBADF),
    # foreign fds given to the drop-ins
    ("eventfd_write(pipe read end)", lambda w: eventfd_write(w.pipe_r, 1), OSError, errno.EBADF),
    ("eventfd_read(pipe write end)", lambda w: eventfd_read(w.pipe_w), OSError, errno.EBADF),
    (
        "eventfd_read(empty non-blocking pipe)",
        lambda w: eventfd_read(w.empty_r),
        BlockingIOError,
        errno.EAGAIN,
    ),
    ("eventfd_read(file at EOF)", lambda w: eventfd_read(w.file_ro), OSError, errno.EINVAL),
    ("eventfd_write(read-only file)", lambda w: eventfd_write(w.file_ro, 1), OSError, errno.EBADF),
    ("eventfd_read(write-only file)", lambda w: eventfd_read(w.file_wo), OSError, errno.EBADF),
    ("eventfd_read(directory)", lambda w: eventfd_read(w.dir_fd), IsADirectoryError, errno.EISDIR),
    ("eventfd_read(unconnected socket)", lambda w: eventfd_read(w.sock), OSError, errno.EINVAL),
    # foreign fds given to EventFD.from_fd: refused, and left open
    ("from_fd(pipe)", lambda w: EventFD.from_fd(w.pipe_r), ValueError, None),
    ("from_fd(regular file)", lambda w: EventFD.from_fd(w.file_ro), ValueError, None),
    ("from_fd(directory)", lambda w: EventFD.from_fd(w.dir_fd), ValueError, None),
    ("from_fd(socket)", lambda w: EventFD.from_fd(w.sock.fileno()), ValueError, None),
    ("from_fd(a Doorbell's memfd)", lambda w: EventFD.from_fd(w.memfd), ValueError, None),
    ("from_fd(unused fd)", lambda w: EventFD.from_fd(w.unused), OSError, errno.EBADF),
    ("from_fd(-1)", lambda w: EventFD.from_fd(-1), ValueError, None),
    ("from_fd('x')", lambda w: EventFD.from_fd("x"), TypeError, None),  # type: ignore[arg-type]
    ("from_fd(2**31)", lambda w: EventFD.from_fd(2**31), OverflowError, None),
]

# The Doorbell's own: no cloexec choice, watch(), and from_fds given fds
# that are not a Doorbell's: refused, left open, nothing mapped or written.
DOORBELL_ONLY: list[tuple[str, Case, type[BaseException], int | None]] = [
    ("Doorbell(cloexec=False)", lambda w: Doorbell(cloexec=False), TypeError, None),  # type: ignore[call-arg]
    ("closed Doorbell watch()", lambda w: w.doorbell.closed.watch().__enter__(), ValueError, None),
    (
        "closed Doorbell await_readable",
        lambda w: asyncio.run(w.doorbell.closed.await_readable()),
        ValueError,
        None,
    ),
    ("from_fds(pipe read end, eventfd)", lambda w: _adopt(w.pipe_r, w.efd), ValueError, None),
    ("from_fds(pipe write end, eventfd)", lambda w: _adopt(w.pipe_w, w.efd), ValueError, None),
    ("from_fds(small regular file, eventfd)", lambda w: _adopt(w.file_ro, w.efd), ValueError, None),
    (
        "from_fds(regular file of a page, eventfd)",
        lambda w: _adopt(w.file_rw, w.efd),
        ValueError,
        None,
    ),
    ("from_fds(directory, eventfd)", lambda w: _adopt(w.dir_fd, w.efd), ValueError, None),
    ("from_fds(socket, eventfd)", lambda w: _adopt(w.sock.fileno(), w.efd), ValueError, None),
    ("from_fds(eventfd as memfd)", lambda w: _adopt(w.efd, w.efd), ValueError, None),
    ("from_fds(too-small memfd)", lambda w: _adopt(w.small_memfd, w.efd), ValueError, None),
    ("from_fds(memfd, wrong magic)", lambda w: _adopt(w.junk_memfd, w.efd), ValueError, None),
    ("from_fds(memfd, later version)", lambda w: _adopt(w.newer_memfd, w.efd), ValueError, None),
    ("from_fds(memfd, unknown flag)", lambda w: _adopt(w.flags_memfd, w.efd), ValueError, None),
    (
        "from_fds(memfd opened read-only)",
        lambda w: _adopt(w.memfd_ro, w.efd),
        PermissionError,
        errno.EACCES,
    ),
    ("from_fds(unused fd, eventfd)", lambda w: _adopt(w.unused, w.efd), OSError, errno.EBADF),
    ("from_fds(memfd, pipe write end)", lambda w: _adopt(w.memfd, w.pipe_w), ValueError, None),
    ("from_fds(memfd, regular file)", lambda w: _adopt(w.memfd, w.file_rw), ValueError, None),
    ("from_fds(memfd, directory)", lambda w: _adopt(w.memfd, w.dir_fd), ValueError, None),
    ("from_fds(memfd, socket)", lambda w: _adopt(w.memfd, w.sock.fileno()), ValueError, None),
    ("from_fds(memfd, the memfd again)", lambda w: _adopt(w.memfd, w.memfd), ValueError, None),
    ("from_fds(memfd, unused fd)", lambda w: _adopt(w.memfd, w.unused), OSError, errno.EBADF),
    ("from_fds(-1, eventfd)", lambda w: _adopt(-1, w.efd), ValueError, None),
    ("from_fds(memfd, -1)", lambda w: _adopt(w.memfd, -1), ValueError, None),
    ("from_fds(2**31, eventfd)", lambda w: _adopt(2**31, w.efd), OverflowError, None),
    ("from_fds('x', eventfd)", lambda w: _adopt("x", w.efd), TypeError, None),
    ("from_fds(1.0, eventfd)", lambda w: _adopt(1.0, w.efd), TypeError, None),
    ("from_fds(memfd, open Doorbell)", lambda w: _adopt(w.memfd, w.doorbell.ev), TypeError, None),
    (
        "from_fds(closed Doorbell, eventfd)",
        lambda w: _adopt(w.doorbell.closed, w.efd),
        TypeError,
        None,
    ),
    (
        "from_fds(memfd, eventfd, spin=-1)",
        lambda w: _adopt(w.memfd, w.efd, spin=-1),
        ValueError,
        None,
    ),
    (
        "from_fds(memfd, eventfd, bogus=1)",
        lambda w: _adopt(w.memfd, w.efd, bogus=1),
        TypeError,
        None,
    ),
    ("from_fds(memfd) one fd", lambda w: Doorbell.from_fds(w.memfd), TypeError, None),  # type: ignore[call-arg]
]


def _on(kind: str, case: SharedCase) -> Case:
    return lambda w: case(getattr(w, kind))


CASES: list[tuple[str, Case, type[BaseException], int | None]] = [
    *(
        (name.format(cls=kind), _on(kind.lower(), fn), exc, err)
        for kind in ("EventFD", "Doorbell")
        for name, fn, exc, err in SHARED
    ),
    *EVENTFD_ONLY,
    *DOORBELL_ONLY,
]


def test_enough_distinct_cases() -> None:
    assert len({name for name, *_ in CASES}) == len(CASES) >= 40
    record("bad_input.cases", len(SHARED) + len(EVENTFD_ONLY))
    record("bad_input.doorbell_cases", len(SHARED) + len(DOORBELL_ONLY))


@pytest.mark.parametrize(("case", "exc", "err"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(world: World, case: Case, exc: type[BaseException], err: int | None) -> None:
    before, mapped = snapshot(world), set(shared_mappings())
    with pytest.raises(exc) as info:
        case(world)
    if err is not None:
        assert isinstance(info.value, OSError)
        assert info.value.errno == err
    for counters in world.counters():
        counters.ev.nonblocking = False  # a case may switch it on first
    assert snapshot(world) == before
    # Nothing left mapped (earlier tests' Doorbells may be collected meanwhile).
    assert not set(shared_mappings()) - mapped
    # Still fully usable afterwards.
    for counters in world.counters():
        counters.ev.write(1)
        assert counters.ev.read() == 6


def _said(case: SharedCase, counters: Counters) -> tuple[object, ...]:
    with pytest.raises(Exception) as info:
        case(counters)
    exc = info.value
    return type(exc), str(exc).replace(counters.cls.__name__, "{cls}"), getattr(exc, "errno", None)


@pytest.mark.parametrize(
    "case",
    [fn for name, fn, *_ in SHARED if name not in WORDED_APART],
    ids=[name.format(cls="cls") for name, *_ in SHARED if name not in WORDED_APART],
)
def test_doorbell_says_what_eventfd_says(world: World, case: SharedCase) -> None:
    assert _said(case, world.doorbell) == _said(case, world.eventfd)


# Each bad input's whole message: it names the argument, what it must be,
# and what it was.  The drop-ins keep os's words (test_cpython_os.py).
_SPIN = "spin must be between 0 and 1.0 seconds, not {}"
_VALUE = "value must be between 0 and 2**64 - 2, not {}"
_INITVAL = "initval must be between 0 and 2**32 - 1, not {}"
_TIMEOUT = "timeout must be a number of seconds >= 0 or None, not {}"
_RESERVED = "2**64 - 1 cannot be written to an eventfd (the kernel reserves it to mark an overflow)"
MESSAGES: list[tuple[str, SharedCase, type[BaseException], str]] = [
    ("write(-1)", lambda c: c.ev.write(-1), ValueError, _VALUE.format(-1)),
    ("write(2**64)", lambda c: c.ev.write(2**64), OverflowError, _VALUE.format(2**64)),
    ("write(2**64 - 1)", lambda c: c.ev.write(2**64 - 1), ValueError, _RESERVED),
    (
        "write(int subclass 2**64 - 1)",
        lambda c: c.ev.write(Lying(2**64 - 1)),
        ValueError,
        _RESERVED,
    ),
    ("write(1.0)", lambda c: c.ev.write(1.0), TypeError, "value must be an integer, not 'float'"),
    ("cls(2**32)", lambda c: c.cls(2**32), OverflowError, _INITVAL.format(2**32)),
    ("cls(-1)", lambda c: c.cls(-1), ValueError, _INITVAL.format(-1)),
    ("cls(None)", lambda c: c.cls(None), TypeError, "initval must be an integer, not 'NoneType'"),  # type: ignore[arg-type]
    ("read(timeout=-1)", lambda c: c.ev.read(timeout=-1), ValueError, _TIMEOUT.format(-1)),
    ("wait(-0.5)", lambda c: c.ev.wait(-0.5), ValueError, _TIMEOUT.format(-0.5)),
    (
        "read(timeout=nan)",
        lambda c: c.ev.read(timeout=float("nan")),
        ValueError,
        _TIMEOUT.format("nan"),
    ),
    ("cls(spin=1e9)", lambda c: c.cls(spin=1e9), ValueError, _SPIN.format(1e9)),
    ("cls(spin=-1)", lambda c: c.cls(spin=-1), ValueError, _SPIN.format(-1)),
    ("spin = 1.5", lambda c: _set("spin", 1.5)(c.ev), ValueError, _SPIN.format(1.5)),
    (
        "cls(spin='1')",
        lambda c: c.cls(spin="1"),  # type: ignore[arg-type]
        TypeError,
        "spin must be a number of seconds, not 'str'",
    ),
]


@pytest.mark.parametrize("kind", ["eventfd", "doorbell"])
@pytest.mark.parametrize(
    ("case", "exc", "message"), [c[1:] for c in MESSAGES], ids=[c[0] for c in MESSAGES]
)
def test_bad_input_says_what_was_wrong(
    world: World, kind: str, case: SharedCase, exc: type[BaseException], message: str
) -> None:
    before = snapshot(world)
    with pytest.raises(exc) as info:
        case(getattr(world, kind))
    assert str(info.value) == message
    assert snapshot(world) == before  # ev still holds its count of 5
    assert getattr(world, kind).ev.read() == 5
