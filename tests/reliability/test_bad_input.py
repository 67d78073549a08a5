"""Bad input across the public API: each case asserts the exception type and
that nothing changed (the counters, the modes, the open fds, and the contents
and offsets of the foreign fds handed in).

Foreign fds are a pipe (both ends), a regular file (read-only and write-only),
a directory and a socket; they go to the drop-ins and to EventFD.from_fd.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import os
import pickle
import socket
import tempfile
import termios
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import pytest

from _kernel import open_fds, record
from eventfd_ext import (
    EFD_CLOEXEC,
    EFD_MASK,
    EFD_NONBLOCK,
    EFD_SEMAPHORE,
    EventFD,
    eventfd,
    eventfd_read,
    eventfd_write,
)

MAX = 2**64 - 2


@dataclass
class World:
    """Everything a bad call could disturb."""

    ev: EventFD  # count 5, blocking, normal mode
    nb: EventFD  # count 0, non-blocking
    full: EventFD  # count MAX, non-blocking
    sem: EventFD  # count 2, semaphore
    closed: EventFD
    pipe_r: int  # holds PIPE_DATA
    pipe_w: int
    empty_r: int  # an empty non-blocking pipe
    empty_w: int
    file_ro: int  # a regular file at EOF, read-only
    file_wo: int  # the same file, write-only
    dir_fd: int
    sock: socket.socket
    unused: int  # a number no fd has
    extra: list[int] = field(default_factory=list)


PIPE_DATA = b"abc"


def _pipe_bytes(fd: int) -> int:
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little")


def snapshot(w: World) -> tuple[object, ...]:
    return (
        w.ev.peek(),
        w.ev.nonblocking,
        w.ev.semaphore,
        w.nb.peek(),
        w.nb.nonblocking,
        w.full.peek(),
        w.sem.peek(),
        w.sem.semaphore,
        w.closed.closed,
        _pipe_bytes(w.pipe_r),
        _pipe_bytes(w.empty_r),
        os.lseek(w.file_ro, 0, os.SEEK_CUR),
        os.fstat(w.file_ro).st_size,
        open_fds(),
    )


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
    closed = EventFD()
    closed.close()
    full = EventFD(nonblocking=True)
    full.write(MAX)
    w = World(
        ev=EventFD(5),
        nb=EventFD(nonblocking=True),
        full=full,
        sem=EventFD(2, semaphore=True),
        closed=closed,
        pipe_r=pipe_r,
        pipe_w=pipe_w,
        empty_r=empty_r,
        empty_w=empty_w,
        file_ro=file_ro,
        file_wo=file_wo,
        dir_fd=os.open(tempfile.gettempdir(), os.O_RDONLY | os.O_DIRECTORY),
        sock=socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
        unused=-1,
    )
    w.unused = os.dup(0)
    os.close(w.unused)
    try:
        yield w
    finally:
        for obj in (w.ev, w.nb, w.full, w.sem, w.sock):
            obj.close()
        for fd in (pipe_r, pipe_w, empty_r, empty_w, file_ro, file_wo, w.dir_fd):
            os.close(fd)


class FilenoReturnsStr:
    def fileno(self) -> str:
        return "3"


class FilenoRaises:
    def fileno(self) -> int:
        raise RuntimeError("no fd")


Case = Callable[[World], object]


def _switch_nonblocking_and_overflow(w: World) -> None:
    w.ev.nonblocking = True
    w.ev.write(MAX)


# (id, the call, the exception it must raise, errno if an OSError)
CASES: list[tuple[str, Case, type[BaseException], int | None]] = [
    # EventFD(): values, types, signature
    ("EventFD(-1)", lambda w: EventFD(-1), ValueError, None),
    ("EventFD(2**32)", lambda w: EventFD(2**32), OverflowError, None),
    ("EventFD(1.5)", lambda w: EventFD(1.5), TypeError, None),  # type: ignore[arg-type]
    ("EventFD('1')", lambda w: EventFD("1"), TypeError, None),  # type: ignore[arg-type]
    ("EventFD(None)", lambda w: EventFD(None), TypeError, None),  # type: ignore[arg-type]
    ("EventFD(0, True) positional mode", lambda w: EventFD(0, True), TypeError, None),  # type: ignore[call-arg]
    ("EventFD(bogus=1)", lambda w: EventFD(bogus=1), TypeError, None),  # type: ignore[call-arg]
    # EventFD.write: values and types
    ("write(-1)", lambda w: w.ev.write(-1), ValueError, None),
    ("write(-2**70)", lambda w: w.ev.write(-(2**70)), ValueError, None),
    ("write(2**64-1)", lambda w: w.ev.write(2**64 - 1), ValueError, None),
    ("write(2**64)", lambda w: w.ev.write(2**64), OverflowError, None),
    ("write(1.0)", lambda w: w.ev.write(1.0), TypeError, None),  # type: ignore[arg-type]
    ("write('1')", lambda w: w.ev.write("1"), TypeError, None),  # type: ignore[arg-type]
    ("write(None)", lambda w: w.ev.write(None), TypeError, None),  # type: ignore[arg-type]
    ("write(bytes)", lambda w: w.ev.write(b"\1" * 8), TypeError, None),  # type: ignore[arg-type]
    ("write(Decimal)", lambda w: w.ev.write(Decimal(1)), TypeError, None),  # type: ignore[arg-type]
    ("write(Fraction(3, 2))", lambda w: w.ev.write(Fraction(3, 2)), TypeError, None),  # type: ignore[arg-type]
    ("write(1, 2)", lambda w: w.ev.write(1, 2), TypeError, None),  # type: ignore[call-arg]
    ("semaphore write(2**64-1)", lambda w: w.sem.write(2**64 - 1), ValueError, None),
    # read / wait: timeouts
    ("read(timeout='x')", lambda w: w.ev.read(timeout="x"), TypeError, None),  # type: ignore[arg-type]
    ("read(timeout=nan)", lambda w: w.ev.read(timeout=float("nan")), ValueError, None),
    ("read(1, 2)", lambda w: w.ev.read(1, 2), TypeError, None),  # type: ignore[call-arg]
    ("wait('x')", lambda w: w.ev.wait("x"), TypeError, None),  # type: ignore[arg-type]
    ("wait(nan)", lambda w: w.ev.wait(float("nan")), ValueError, None),
    # EAGAIN and timeouts
    ("nonblocking read at 0", lambda w: w.nb.read(), BlockingIOError, errno.EAGAIN),
    ("nonblocking write past max", lambda w: w.full.write(1), BlockingIOError, errno.EAGAIN),
    (
        "write(MAX) onto 5, non-blocking",
        _switch_nonblocking_and_overflow,
        BlockingIOError,
        errno.EAGAIN,
    ),
    ("read(timeout=0) at 0", lambda w: w.nb.read(timeout=0), TimeoutError, None),
    ("eventfd_read non-blocking at 0", lambda w: eventfd_read(w.nb), BlockingIOError, errno.EAGAIN),
    ("eventfd_write past max", lambda w: eventfd_write(w.full, 1), BlockingIOError, errno.EAGAIN),
    # closed objects
    ("closed read", lambda w: w.closed.read(), ValueError, None),
    ("closed read(timeout)", lambda w: w.closed.read(timeout=1), ValueError, None),
    ("closed write", lambda w: w.closed.write(1), ValueError, None),
    ("closed write(bad value)", lambda w: w.closed.write(-1), ValueError, None),
    ("closed peek", lambda w: w.closed.peek(), ValueError, None),
    ("closed wait", lambda w: w.closed.wait(0), ValueError, None),
    ("closed fileno", lambda w: w.closed.fileno(), ValueError, None),
    ("closed detach", lambda w: w.closed.detach(), ValueError, None),
    ("closed .nonblocking", lambda w: w.closed.nonblocking, ValueError, None),
    (
        "closed .nonblocking = True",
        lambda w: setattr(w.closed, "nonblocking", True),
        ValueError,
        None,
    ),
    ("closed .semaphore", lambda w: w.closed.semaphore, ValueError, None),
    ("closed as context manager", lambda w: w.closed.__enter__(), ValueError, None),
    ("eventfd_read(closed)", lambda w: eventfd_read(w.closed), ValueError, None),
    ("eventfd_write(closed, 1)", lambda w: eventfd_write(w.closed, 1), ValueError, None),
    ("from_fd(closed EventFD)", lambda w: EventFD.from_fd(w.closed), TypeError, None),  # type: ignore[arg-type]
    ("from_fd(open EventFD)", lambda w: EventFD.from_fd(w.ev), TypeError, None),  # type: ignore[arg-type]
    (
        "select.poll register closed",
        lambda w: __import__("select").poll().register(w.closed),
        ValueError,
        None,
    ),
    # pickling / copying an fd owner
    ("pickle.dumps", lambda w: pickle.dumps(w.ev), TypeError, None),
    ("copy.copy", lambda w: copy.copy(w.ev), TypeError, None),
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
    ("eventfd_write(ev, -1)", lambda w: eventfd_write(w.ev, -1), ValueError, None),
    ("eventfd_write(ev, 2**64-1)", lambda w: eventfd_write(w.ev, 2**64 - 1), OSError, errno.EINVAL),
    ("eventfd_write(ev, 2**64)", lambda w: eventfd_write(w.ev, 2**64), OverflowError, None),
    ("eventfd_write(ev, 1.0)", lambda w: eventfd_write(w.ev, 1.0), TypeError, None),  # type: ignore[arg-type]
    ("eventfd_write(ev, '1')", lambda w: eventfd_write(w.ev, "1"), TypeError, None),  # type: ignore[arg-type]
    (
        "eventfd_write(ev, Decimal('1.5'))",
        lambda w: eventfd_write(w.ev, Decimal("1.5")),  # type: ignore[arg-type]
        TypeError,
        None,
    ),
    ("eventfd_read(Decimal(fd))", lambda w: eventfd_read(Decimal(w.ev.fileno())), TypeError, None),  # type: ignore[arg-type]
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
    ("from_fd(unused fd)", lambda w: EventFD.from_fd(w.unused), OSError, errno.EBADF),
    ("from_fd(-1)", lambda w: EventFD.from_fd(-1), ValueError, None),
    ("from_fd('x')", lambda w: EventFD.from_fd("x"), TypeError, None),  # type: ignore[arg-type]
    ("from_fd(2**31)", lambda w: EventFD.from_fd(2**31), OverflowError, None),
]


def test_enough_distinct_cases() -> None:
    assert len({name for name, *_ in CASES}) == len(CASES) >= 40
    record("bad_input.cases", len(CASES))


@pytest.mark.parametrize("case,exc,err", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(world: World, case: Case, exc: type[BaseException], err: int | None) -> None:
    nonblocking_before = world.ev.nonblocking
    before = snapshot(world)
    with pytest.raises(exc) as info:
        case(world)
    if err is not None:
        assert isinstance(info.value, OSError) and info.value.errno == err
    world.ev.nonblocking = nonblocking_before  # a case may switch it on first
    assert snapshot(world) == before
    # Still fully usable afterwards.
    world.ev.write(1)
    assert world.ev.read() == 6
