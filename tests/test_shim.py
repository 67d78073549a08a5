"""The C shim's calling convention, called directly through cffi.

Every function reports failure in its own result (>= 0, or -errno; a count
through a pointer the caller passes), never through errno read afterwards;
the one exception is efx_take, the count or 0 for a failed read.
"""

from __future__ import annotations

import errno
import os
import select
from collections.abc import Iterator
from typing import Any

import pytest

import _kernel
from eventfd_ext._shim import ffi, lib

ALL_ONES = 2**64 - 1


@pytest.fixture
def fd() -> Iterator[int]:
    """A blocking eventfd with count 0."""
    fd = os.eventfd(0)
    yield fd
    os.close(fd)


@pytest.fixture
def nbfd() -> Iterator[int]:
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    yield fd
    os.close(fd)


@pytest.fixture
def closed_fd() -> int:
    fd = os.eventfd(0)
    os.close(fd)
    return fd


def bounded(call, release, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """Run call() in a thread; if it is still running after timeout, run
    release() to unblock it and fail (a hang becomes a failure)."""
    thread, out = _kernel.in_thread(call)
    thread.join(timeout)
    if thread.is_alive():
        release()
        thread.join(timeout)
        pytest.fail(f"{call} blocked; released after {timeout} s")
    if "error" in out:
        raise out["error"]
    return out["result"]


def test_constants() -> None:
    assert (lib.EFD_CLOEXEC, lib.EFD_NONBLOCK, lib.EFD_SEMAPHORE) == (
        os.EFD_CLOEXEC,
        os.EFD_NONBLOCK,
        os.EFD_SEMAPHORE,
    )
    for name in ("POLLIN", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL", "POLLPRI"):
        assert getattr(lib, name) == getattr(select, name), name


# -- efx_create: fd or -errno ------------------------------------------------


def test_create_returns_an_fd_with_the_flags() -> None:
    flags = lib.EFD_SEMAPHORE | lib.EFD_NONBLOCK | lib.EFD_CLOEXEC
    fd = lib.efx_create(2**32 - 1, flags)
    try:
        assert fd >= 0
        assert _kernel.count(fd) == 2**32 - 1
        assert _kernel.fdinfo(fd)["eventfd-semaphore"] == "1"
        assert not os.get_blocking(fd)
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("flags", [0xFF, 1 << 1, -1, os.O_APPEND], ids=hex)
def test_create_bad_flags_is_minus_einval(flags: int) -> None:
    before = _kernel.open_fds()
    assert lib.efx_create(0, flags) == -errno.EINVAL
    assert _kernel.open_fds() == before


# -- efx_read / efx_read_nowait: 0 or -errno, the count through a pointer ------


def _count() -> Any:
    return ffi.new("uint64_t *")


def test_read_returns_the_count_through_the_pointer(nbfd: int) -> None:
    os.eventfd_write(nbfd, 2**63 + 5)
    count = _count()
    assert lib.efx_read(nbfd, count) == 0
    assert count[0] == 2**63 + 5
    assert _kernel.count(nbfd) == 0


def test_read_semaphore_returns_one() -> None:
    fd = os.eventfd(3, os.EFD_SEMAPHORE)
    try:
        count = _count()
        assert lib.efx_read(fd, count) == 0
        assert count[0] == 1
        assert _kernel.count(fd) == 2
    finally:
        os.close(fd)


def test_read_empty_nonblocking_is_minus_eagain(nbfd: int) -> None:
    assert lib.efx_read(nbfd, _count()) == -errno.EAGAIN


def test_read_bad_fd_is_minus_ebadf(closed_fd: int) -> None:
    assert lib.efx_read(closed_fd, _count()) == -errno.EBADF
    assert lib.efx_read(-1, _count()) == -errno.EBADF


def test_read_blocks_until_a_write(fd: int) -> None:
    count = _count()
    thread, out = _kernel.in_thread(lambda: lib.efx_read(fd, count))
    assert _kernel.wait_in_syscall(thread, "read")
    assert "result" not in out
    os.eventfd_write(fd, 9)
    thread.join(10)
    assert not thread.is_alive(), "efx_read stayed blocked after a write"
    assert out == {"result": 0}
    assert count[0] == 9


def test_read_nowait_on_a_blocking_fd_is_minus_eagain(fd: int) -> None:
    result = bounded(lambda: lib.efx_read_nowait(fd, _count()), lambda: os.eventfd_write(fd, 1))
    if result == -errno.EOPNOTSUPP:
        pytest.skip("kernel lacks RWF_NOWAIT reads on eventfd")
    assert result == -errno.EAGAIN
    assert os.get_blocking(fd), "the fd's mode must not change"
    assert _kernel.count(fd) == 0


def test_read_nowait_takes_the_count(fd: int) -> None:
    os.eventfd_write(fd, 41)
    count = _count()
    assert lib.efx_read_nowait(fd, count) == 0
    assert count[0] == 41
    assert _kernel.count(fd) == 0


def test_read_nowait_bad_fd(closed_fd: int) -> None:
    assert lib.efx_read_nowait(closed_fd, _count()) == -errno.EBADF


def test_the_result_never_depends_on_errno_after_the_call(nbfd: int) -> None:
    # What a signal handler calling the shim does to errno between a call's
    # return and the caller's next line: the result must not care.
    count = _count()
    result = lib.efx_read(nbfd, count)
    ffi.errno = 0  # type: ignore[attr-defined]
    assert result == -errno.EAGAIN
    os.eventfd_write(nbfd, 2**64 - 2)
    result = lib.efx_read(nbfd, count)
    ffi.errno = errno.EAGAIN  # type: ignore[attr-defined]
    assert (result, count[0]) == (0, 2**64 - 2)


# -- efx_take: the count, or 0 for any failure (which took nothing) ----------------


def test_take_returns_the_count(nbfd: int) -> None:
    os.eventfd_write(nbfd, 2**64 - 2)
    assert lib.efx_take(nbfd) == 2**64 - 2
    assert _kernel.count(nbfd) == 0


def test_take_failure_is_zero_and_takes_nothing(nbfd: int) -> None:
    assert lib.efx_take(nbfd) == 0  # EAGAIN
    os.eventfd_write(nbfd, 5)
    assert lib.efx_take(-1) == 0  # EBADF
    assert _kernel.count(nbfd) == 5


# -- efx_write: 0 or -errno ------------------------------------------------------


def test_write_adds(nbfd: int) -> None:
    assert lib.efx_write(nbfd, 5) == 0
    assert lib.efx_write(nbfd, 2**63) == 0
    assert _kernel.count(nbfd) == 2**63 + 5


def test_write_all_ones_is_minus_einval(nbfd: int) -> None:
    os.eventfd_write(nbfd, 3)
    assert lib.efx_write(nbfd, ALL_ONES) == -errno.EINVAL
    assert _kernel.count(nbfd) == 3


def test_write_past_max_nonblocking_is_minus_eagain(nbfd: int) -> None:
    assert lib.efx_write(nbfd, _kernel.MAX) == 0
    assert lib.efx_write(nbfd, 1) == -errno.EAGAIN
    assert _kernel.count(nbfd) == _kernel.MAX
    assert lib.efx_write(nbfd, 0) == 0  # write(0) succeeds even at the maximum
    assert _kernel.count(nbfd) == _kernel.MAX


def test_write_bad_fd_is_minus_ebadf(closed_fd: int) -> None:
    assert lib.efx_write(closed_fd, 1) == -errno.EBADF
    assert lib.efx_write(-1, 1) == -errno.EBADF


def test_write_refuses_out_of_range_python_values(nbfd: int) -> None:
    # cffi's own conversion: these never reach C.
    with pytest.raises(OverflowError):
        lib.efx_write(nbfd, -1)
    with pytest.raises(OverflowError):
        lib.efx_write(nbfd, 2**64)
    with pytest.raises(TypeError):
        lib.efx_write(nbfd, 1.0)  # type: ignore[arg-type]
    assert _kernel.count(nbfd) == 0


# -- efx_poll: revents, 0 on timeout, -errno -------------------------------------


def test_poll_reports_the_kernels_states(nbfd: int) -> None:
    both = lib.POLLIN | lib.POLLOUT
    assert lib.efx_poll(nbfd, both, 0) == lib.POLLOUT
    os.eventfd_write(nbfd, 1)
    assert lib.efx_poll(nbfd, both, 0) == both
    os.eventfd_write(nbfd, _kernel.MAX - 1)
    assert lib.efx_poll(nbfd, both, 0) == lib.POLLIN
    assert _kernel.count(nbfd) == _kernel.MAX  # poll consumes nothing


def test_poll_times_out_with_zero(fd: int) -> None:
    assert lib.efx_poll(fd, lib.POLLIN, 0) == 0
    assert lib.efx_poll(fd, lib.POLLIN, 20) == 0


def test_poll_closed_fd_is_pollnval(closed_fd: int) -> None:
    assert lib.efx_poll(closed_fd, lib.POLLIN, 0) == lib.POLLNVAL


def test_poll_wakes_on_write(fd: int) -> None:
    thread, out = _kernel.in_thread(lambda: lib.efx_poll(fd, lib.POLLIN, -1))
    assert _kernel.wait_in_syscall(thread, "poll")
    os.eventfd_write(fd, 1)
    thread.join(10)
    assert not thread.is_alive(), "efx_poll stayed blocked after a write"
    assert out == {"result": lib.POLLIN}
    assert _kernel.count(fd) == 1


# -- the EventFD handle (owner.h): never blocks but in efx_efd_poll ---------------


def _owner(fd: int) -> Any:
    out = ffi.new("efx_owner_t **")
    assert lib.efx_efd_adopt(fd, out) == 0
    return ffi.gc(out[0], lib.efx_owner_free)


def test_efd_read_says_whether_to_wait() -> None:
    blocking, nonblocking = _owner(os.eventfd(0)), _owner(os.eventfd(0, os.EFD_NONBLOCK))
    count = _count()
    assert lib.efx_efd_read(blocking, count) == 1  # empty, blocking: the caller waits
    assert lib.efx_efd_read(nonblocking, count) == -errno.EAGAIN
    assert lib.efx_efd_write(blocking, 5) == 0
    assert lib.efx_efd_read(blocking, count) == 0
    assert count[0] == 5


def test_a_closed_owner_refuses_every_call_before_touching_its_fd() -> None:
    o = _owner(os.eventfd(3))
    fd = lib.efx_owner_fd(o)
    assert lib.efx_owner_close(o, 0) == fd
    closed = -lib.EFX_ECLOSED
    assert lib.efx_owner_fd(o) == closed
    assert lib.efx_efd_take(o) == 0
    assert lib.efx_efd_read(o, _count()) == closed
    assert lib.efx_efd_write(o, 1) == closed
    assert lib.efx_efd_poll(o, lib.POLLIN, -1) == closed  # no hang
    assert _kernel.count(fd) == 3  # close() holds the fd until it leaves
    assert lib.efx_owner_leave(o) == 0
    with pytest.raises(OSError):
        os.fstat(fd)
    assert lib.efx_owner_close(o, 0) == closed  # once


def test_efd_poll_waits_for_a_write() -> None:
    fd = os.eventfd(0)
    o = _owner(fd)
    thread, out = _kernel.in_thread(lambda: lib.efx_efd_poll(o, lib.POLLIN, -1))
    assert _kernel.wait_in_syscall(thread, "poll")
    os.eventfd_write(fd, 6)
    thread.join(10)
    assert out == {"result": lib.POLLIN}
    assert _kernel.count(fd) == 6  # looked, not taken


@pytest.mark.parametrize("name", ["efx_read", "efx_read_nowait", "efx_take"])
def test_short_read_from_a_non_eventfd_is_einval(name: str) -> None:
    # Fewer than 8 bytes (or EOF) can only come from something that is not
    # an eventfd.
    fn = getattr(lib, name)
    calls = {"efx_take": fn}
    call = calls.get(name, lambda fd: fn(fd, _count()))
    failed = 0 if name == "efx_take" else -errno.EINVAL
    r, w = os.pipe()
    try:
        os.write(w, b"abc")
        assert call(r) == failed
        os.close(w)
        w = -1
        assert call(r) == failed  # EOF
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
