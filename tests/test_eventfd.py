"""EventFD: the object API, its errors, and what it does with its fd."""

from __future__ import annotations

import copy
import errno
import functools
import gc
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import pytest

import _kernel
import eventfd_ext
from eventfd_ext import EventFD

START = 5


@pytest.fixture
def efd() -> Iterator[EventFD]:
    """A non-blocking EventFD holding START."""
    with EventFD(START, nonblocking=True) as efd:
        yield efd


@pytest.fixture
def blocking() -> Iterator[EventFD]:
    with EventFD() as efd:
        yield efd


high_fd = _kernel.high_fd


def assert_fd_closed(fd: int) -> None:
    """fd (a high number, see high_fd, so not reused meanwhile) is closed."""
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF, f"fd {fd} is still open"


# -- creation ------------------------------------------------------------------


@pytest.mark.parametrize("semaphore", [False, True])
@pytest.mark.parametrize("nonblocking", [False, True])
@pytest.mark.parametrize("cloexec", [False, True])
def test_create_modes(semaphore: bool, nonblocking: bool, cloexec: bool) -> None:
    with EventFD(7, semaphore=semaphore, nonblocking=nonblocking, cloexec=cloexec) as efd:
        fd = efd.fileno()
        assert _kernel.count(fd) == 7
        assert (_kernel.fdinfo(fd)["eventfd-semaphore"] == "1") is semaphore
        assert os.get_blocking(fd) is not nonblocking
        assert os.get_inheritable(fd) is not cloexec
        assert efd.semaphore is semaphore
        assert efd.nonblocking is nonblocking


def test_defaults() -> None:
    with EventFD() as efd:
        assert efd.peek() == 0
        assert not efd.semaphore
        assert not efd.nonblocking
        assert not os.get_inheritable(efd.fileno())


def test_modes_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        EventFD(0, True)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("initval", "exc"),
    [
        (-1, ValueError),
        (-(2**100), ValueError),
        (2**32, OverflowError),
        (2**64, OverflowError),
        (1.0, TypeError),
        ("1", TypeError),
        (None, TypeError),
        (b"1", TypeError),
    ],
    ids=repr,
)
def test_bad_initval(initval: object, exc: type[Exception]) -> None:
    before = _kernel.open_fds()
    # A half-built object must not warn.
    with _kernel.nothing_warned(), pytest.raises(exc):
        EventFD(initval)  # type: ignore[arg-type]
    assert _kernel.open_fds() == before
    # The same exception type as os.eventfd.  Not its message: that is the
    # running interpreter's (3.14 words it anew), EventFD's is its own.
    with pytest.raises(exc) as theirs:
        os.eventfd(initval)  # type: ignore[arg-type]
    with pytest.raises(exc) as ours:
        EventFD(initval)  # type: ignore[arg-type]
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value)


def test_largest_initval() -> None:
    with EventFD(2**32 - 1) as efd:
        assert efd.peek() == 2**32 - 1


# -- read / write / peek ---------------------------------------------------------


def test_write_read_peek(efd: EventFD) -> None:
    assert efd.peek() == START
    efd.write()
    assert efd.peek() == START + 1
    efd.write(2**63)
    assert efd.peek() == START + 1 + 2**63
    assert efd.peek() == START + 1 + 2**63  # peek does not consume
    value = efd.read()
    assert value == START + 1 + 2**63
    assert type(value) is int
    assert efd.peek() == 0
    efd.write(0)
    assert efd.peek() == 0


def test_write_bool_and_int_subclass(efd: EventFD) -> None:
    class MyInt(int):
        pass

    efd.write(True)
    efd.write(MyInt(4))
    assert efd.peek() == START + 5


def test_semaphore_reads_one() -> None:
    with EventFD(3, semaphore=True, nonblocking=True) as efd:
        assert [efd.read() for _ in range(3)] == [1, 1, 1]
        with pytest.raises(BlockingIOError):
            efd.read()
        assert efd.peek() == 0


@pytest.mark.parametrize(
    ("value", "exc"),
    [
        (-1, ValueError),
        (-(2**70), ValueError),
        (2**64, OverflowError),
        (2**70, OverflowError),
        (2**64 - 1, ValueError),  # refused: the kernel reserves it
        (1.0, TypeError),
        (1.5, TypeError),
        ("1", TypeError),
        (b"\x01", TypeError),
        (None, TypeError),
        ([1], TypeError),
        (1 + 0j, TypeError),
    ],
    ids=repr,
)
def test_bad_write_value(efd: EventFD, value: object, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        efd.write(value)  # type: ignore[arg-type]
    assert type(info.value) is exc
    assert efd.peek() == START
    assert _kernel.count(efd.fileno()) == START


@pytest.mark.parametrize("value", [-1, 2**64, 1.0, "1", None], ids=repr)
def test_bad_write_value_matches_os_eventfd_write(efd: EventFD, value: object) -> None:
    """The exception type os.eventfd_write gives; the message is EventFD's
    own, not the running interpreter's (3.14 words it anew)."""
    with pytest.raises(Exception) as theirs:
        os.eventfd_write(efd.fileno(), value)  # type: ignore[arg-type]
    with pytest.raises(Exception) as ours:
        efd.write(value)  # type: ignore[arg-type]
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value)
    assert efd.peek() == START


def test_read_empty_nonblocking_is_blockingioerror() -> None:
    with EventFD(nonblocking=True) as efd:
        with pytest.raises(BlockingIOError) as info:
            efd.read()
        assert info.value.errno == errno.EAGAIN
        assert efd.peek() == 0


@pytest.mark.parametrize("api", ["EventFD.read", "eventfd_read"])
def test_read_waits_for_a_write(blocking: EventFD, api: str) -> None:
    reader: Callable[[], int] = (
        blocking.read if api == "EventFD.read" else lambda: eventfd_ext.eventfd_read(blocking)
    )
    thread, out = _kernel.in_thread(reader)
    # EventFD sleeps in poll(2), beside its thread's wake-up fd (so that
    # close() can wake it); the drop-in blocks in read(2), as os's does.
    assert _kernel.wait_in_syscall(thread, "poll" if api == "EventFD.read" else "read")
    assert not out
    blocking.write(11)
    thread.join(10)
    assert not thread.is_alive(), "read() stayed blocked after a write"
    assert out == {"result": 11}


# -- the overflow edge -------------------------------------------------------------


def test_count_reaches_max_and_stops_nonblocking(efd: EventFD) -> None:
    efd.write(_kernel.MAX - START)
    assert efd.peek() == _kernel.MAX
    for value in (1, 2**63, _kernel.MAX):
        with pytest.raises(BlockingIOError) as info:
            efd.write(value)
        assert info.value.errno == errno.EAGAIN
        assert efd.peek() == _kernel.MAX
    efd.write(0)  # still fine at the maximum
    assert efd.peek() == _kernel.MAX
    assert efd.read() == _kernel.MAX
    efd.write(1)
    assert efd.peek() == 1


@pytest.mark.parametrize("api", ["EventFD.write", "eventfd_write"])
def test_write_past_max_blocks_until_a_read(api: str) -> None:
    with EventFD(0) as efd:
        efd.write(_kernel.MAX)
        if api == "EventFD.write":
            writer: Callable[[], Any] = functools.partial(efd.write, 7)
        else:
            writer = functools.partial(eventfd_ext.eventfd_write, efd.fileno(), 7)
        thread, out = _kernel.in_thread(writer)
        try:
            assert _kernel.wait_in_syscall(thread, "write")
            assert not out, f"the write past the maximum did not block: {out}"
            assert efd.peek() == _kernel.MAX
            # The blocked write cannot have landed before this read.
            assert efd.read() == _kernel.MAX
            thread.join(10)
            assert not thread.is_alive(), "the blocked write was not released by a read"
            assert out == {"result": None}
            assert efd.peek() == 7
        finally:
            if thread.is_alive():  # make room so that the thread can end
                os.eventfd_read(efd.fileno())
                thread.join(10)


# -- read(timeout) and wait(timeout) ---------------------------------------------


@pytest.mark.parametrize("nonblocking", [False, True])
def test_read_timeout_takes_a_waiting_count(nonblocking: bool) -> None:
    with EventFD(3, nonblocking=nonblocking) as efd:
        assert efd.read(timeout=0) == 3
        assert efd.peek() == 0
        efd.write(4)
        assert efd.read(timeout=10) == 4
        efd.write(5)
        assert efd.read(timeout=None) == 5


@pytest.mark.parametrize("nonblocking", [False, True])
@pytest.mark.parametrize("timeout", [0, -0.0, 0.001, 0.02])
def test_read_timeout_expires_with_timeouterror(nonblocking: bool, timeout: float) -> None:
    with EventFD(nonblocking=nonblocking) as efd:
        with pytest.raises(TimeoutError):
            efd.read(timeout=timeout)
        assert efd.peek() == 0


def test_read_timeout_semaphore_takes_one() -> None:
    with EventFD(2, semaphore=True) as efd:
        assert efd.read(timeout=0) == 1
        assert efd.peek() == 1


def test_read_timeout_is_woken_by_a_write(blocking: EventFD) -> None:
    thread, out = _kernel.in_thread(lambda: blocking.read(timeout=30))
    assert _kernel.wait_in_syscall(thread, "poll")
    blocking.write(8)
    thread.join(10)
    assert not thread.is_alive()
    assert out == {"result": 8}


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, 10**30, 2**31 / 1000 + 0.5])
def test_huge_timeouts_wait_like_none(efd: EventFD, timeout: float) -> None:
    # Longer than poll(2) can express (inf included): waited in slices.
    assert efd.wait(timeout) is True
    assert efd.read(timeout) == START


def test_read_timeout_nan_is_valueerror(efd: EventFD) -> None:
    with pytest.raises(ValueError):
        efd.read(timeout=float("nan"))
    assert efd.peek() == START


@pytest.mark.parametrize("timeout", ["1", b"1", [1], 1j])
@pytest.mark.parametrize("call", ["wait", "read"])
def test_timeout_that_is_not_a_number_is_typeerror(
    efd: EventFD, call: str, timeout: object
) -> None:
    with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
        getattr(efd, call)(timeout)
    assert efd.peek() == START


@pytest.mark.parametrize("timeout", [Fraction(1, 2), 1, 0.5])
def test_timeout_takes_any_real_number(efd: EventFD, timeout: object) -> None:
    assert efd.wait(timeout) is True  # type: ignore[arg-type]


def test_wait_does_not_consume(efd: EventFD) -> None:
    assert efd.wait(0) is True
    assert efd.wait(timeout=1) is True
    assert efd.wait() is True
    assert efd.peek() == START


@pytest.mark.parametrize("timeout", [0, -0.0, 0.001, 0.02])
def test_wait_times_out_with_false(blocking: EventFD, timeout: float) -> None:
    assert blocking.wait(timeout) is False
    assert blocking.peek() == 0


def test_wait_is_woken_by_a_write(blocking: EventFD) -> None:
    thread, out = _kernel.in_thread(blocking.wait)
    assert _kernel.wait_in_syscall(thread, "poll")
    blocking.write(2)
    thread.join(10)
    assert not thread.is_alive()
    assert out == {"result": True}
    assert blocking.peek() == 2


def test_wait_true_at_max(efd: EventFD) -> None:
    efd.write(_kernel.MAX - START)
    assert efd.wait(0) is True


# -- modes ------------------------------------------------------------------------


def test_nonblocking_property_toggles_the_fd(blocking: EventFD) -> None:
    blocking.nonblocking = True
    assert blocking.nonblocking is True
    assert not os.get_blocking(blocking.fileno())
    with pytest.raises(BlockingIOError):
        blocking.read()
    blocking.nonblocking = False
    assert blocking.nonblocking is False
    assert os.get_blocking(blocking.fileno())


def test_nonblocking_is_shared_with_dups(blocking: EventFD) -> None:
    dup = os.dup(blocking.fileno())
    try:
        os.set_blocking(dup, False)
        assert blocking.nonblocking is True
    finally:
        os.close(dup)


def test_semaphore_property_reads_the_kernel() -> None:
    fd = os.eventfd(0, os.EFD_SEMAPHORE)
    with EventFD.from_fd(fd) as efd:
        assert efd.semaphore is True
    with EventFD() as efd:
        assert efd.semaphore is False


# -- closing ------------------------------------------------------------------------

CLOSED_USES: list[tuple[str, Callable[[EventFD], object]]] = [
    ("fileno", lambda e: e.fileno()),
    ("read", lambda e: e.read()),
    ("read timeout", lambda e: e.read(timeout=0)),
    ("read timeout None", lambda e: e.read(timeout=None)),
    ("write", lambda e: e.write()),
    ("write 0", lambda e: e.write(0)),
    ("write max", lambda e: e.write(_kernel.MAX)),
    ("write all ones", lambda e: e.write(2**64 - 1)),
    ("peek", lambda e: e.peek()),
    ("wait", lambda e: e.wait()),
    ("wait 0", lambda e: e.wait(0)),
    ("detach", lambda e: e.detach()),
    ("get nonblocking", lambda e: e.nonblocking),
    ("set nonblocking", lambda e: setattr(e, "nonblocking", True)),
    ("semaphore", lambda e: e.semaphore),
    ("enter", lambda e: e.__enter__()),
    ("eventfd_read", lambda e: eventfd_ext.eventfd_read(e)),
    ("eventfd_write", lambda e: eventfd_ext.eventfd_write(e, 1)),
]


@pytest.mark.parametrize("use", [u for _, u in CLOSED_USES], ids=[i for i, _ in CLOSED_USES])
def test_any_use_of_a_closed_object_is_valueerror(use: Callable[[EventFD], object]) -> None:
    efd = EventFD(START)
    fd = efd.fileno()
    # Another eventfd now holds the number, so that a use of the stale fd
    # would show up as a change to its count.
    efd.close()
    other = os.eventfd(START)
    try:
        with pytest.raises(ValueError):
            use(efd)
        if other == fd:
            assert _kernel.count(other) == START
    finally:
        os.close(other)
    assert efd.closed


EXTERNALLY_CLOSED_USES: list[tuple[str, Callable[[EventFD], object]]] = [
    ("read", lambda e: e.read()),
    ("read timeout", lambda e: e.read(timeout=0)),
    ("write", lambda e: e.write()),
    ("peek", lambda e: e.peek()),
    ("wait", lambda e: e.wait(0)),
    ("wait forever", lambda e: e.wait()),  # POLLNVAL: no hang
    ("get nonblocking", lambda e: e.nonblocking),
    ("semaphore", lambda e: e.semaphore),
]


@pytest.mark.parametrize(
    "use", [u for _, u in EXTERNALLY_CLOSED_USES], ids=[i for i, _ in EXTERNALLY_CLOSED_USES]
)
def test_fd_closed_behind_the_objects_back_is_ebadf(use: Callable[[EventFD], object]) -> None:
    # The object is still open, so this is not ValueError but the kernel's
    # EBADF, the same for every method.
    efd = EventFD.from_fd(high_fd(os.eventfd(1, os.EFD_NONBLOCK)))
    os.close(efd.fileno())
    try:
        with pytest.raises(OSError) as info:
            use(efd)
        assert info.value.errno == errno.EBADF, info.value
        assert not efd.closed
    finally:
        with pytest.raises(OSError):
            efd.close()
    assert efd.closed


def test_closed_and_close_twice() -> None:
    efd = EventFD.from_fd(high_fd(os.eventfd(0)))
    fd = efd.fileno()
    assert efd.closed is False
    efd.close()
    assert efd.closed is True
    assert_fd_closed(fd)
    efd.close()
    assert efd.closed is True


def test_close_closes_the_fd() -> None:
    efd = EventFD.from_fd(high_fd(os.eventfd(0)))
    fd = efd.fileno()
    efd.close()
    assert_fd_closed(fd)


def test_context_manager() -> None:
    original = EventFD.from_fd(high_fd(os.eventfd(1)))
    with original as efd:
        assert efd is original
        fd = efd.fileno()
        assert efd.read() == 1
    assert efd.closed
    assert_fd_closed(fd)
    with pytest.raises(RuntimeError), EventFD.from_fd(high_fd(os.eventfd(0))) as efd:
        fd = efd.fileno()
        raise RuntimeError("boom")  # propagates, and the fd is closed
    assert efd.closed
    assert_fd_closed(fd)


def test_close_from_many_threads_closes_once() -> None:
    # Only one of the racing close() calls may close the number: a second
    # os.close of it would fail with EBADF here (or, in a real program, close
    # whatever had reused the number).
    def closer(efd: EventFD, barrier: threading.Barrier, errors: list[BaseException]) -> None:
        try:
            barrier.wait(10)
            efd.close()
        except BaseException as e:
            errors.append(e)

    for _ in range(50):
        efd = EventFD()
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=closer, args=(efd, barrier, errors)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors
        assert efd.closed


# -- repr ---------------------------------------------------------------------------


def test_repr_shows_fd_count_and_modes() -> None:
    with EventFD(42, semaphore=True, nonblocking=True) as efd:
        text = repr(efd)
        assert f"fd={efd.fileno()}" in text
        assert "count=42" in text
        assert "semaphore" in text
        assert "nonblocking" in text
        efd.read()
        assert "count=41" in repr(efd)
    with EventFD(2**32 - 1) as efd:
        text = repr(efd)
        assert str(2**32 - 1) in text
        assert "semaphore" not in text
        assert "nonblocking" not in text
        assert text.startswith("<EventFD")
    assert "closed" in repr(efd)


def test_repr_of_a_subclass_names_it() -> None:
    class Sub(EventFD):
        pass

    with Sub() as efd:
        assert repr(efd).startswith("<Sub ")


# -- adopting and detaching ------------------------------------------------------


def test_from_fd_adopts_and_owns() -> None:
    fd = high_fd(os.eventfd(3, os.EFD_SEMAPHORE | os.EFD_NONBLOCK))
    efd = EventFD.from_fd(fd)
    assert isinstance(efd, EventFD)
    assert efd.fileno() == fd
    assert efd.semaphore
    assert efd.nonblocking
    assert efd.read() == 1
    assert efd.peek() == 2
    efd.close()
    assert_fd_closed(fd)


def test_from_fd_refuses_an_object_that_owns_its_fd(tmp_path: Any) -> None:
    # Adopting the fd of an object that keeps owning it would close it twice.
    with EventFD(3) as owner, open(tmp_path / "f", "wb") as f:
        for obj in (owner, f):
            with pytest.raises(TypeError, match=r"os.dup"):
                EventFD.from_fd(obj)  # type: ignore[arg-type]
        assert owner.peek() == 3
        with EventFD.from_fd(os.dup(owner.fileno())) as twin:
            twin.write(1)
        assert owner.read() == 4  # the twin's close left the original open
        f.write(b"x")  # still open


def test_from_fd_on_a_subclass_returns_the_subclass() -> None:
    class Sub(EventFD):
        pass

    with Sub.from_fd(os.eventfd(0)) as efd:
        assert type(efd) is Sub


def test_from_fd_refuses_a_pipe_and_leaves_it_open() -> None:
    r, w = os.pipe()
    try:
        with _kernel.nothing_warned():
            for fd in (r, w):
                with pytest.raises(ValueError):
                    EventFD.from_fd(fd)
        os.fstat(r)
        os.fstat(w)
        os.write(w, b"still open")
        assert os.read(r, 100) == b"still open"
    finally:
        os.close(r)
        os.close(w)


def test_from_fd_refuses_a_regular_file(tmp_path: Any) -> None:
    with open(tmp_path / "f", "wb") as f:
        with pytest.raises(ValueError):
            EventFD.from_fd(f.fileno())
        f.write(b"x")  # still open


@pytest.mark.parametrize(
    ("bad", "exc"),
    [(-1, ValueError), (2**40, OverflowError), (1.5, TypeError), (None, TypeError)],
    ids=repr,
)
def test_from_fd_bad_argument(bad: object, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        EventFD.from_fd(bad)  # type: ignore[arg-type]


def test_from_fd_closed_number_is_ebadf() -> None:
    fd = high_fd(os.eventfd(0))
    os.close(fd)
    with pytest.raises(OSError) as info:
        EventFD.from_fd(fd)
    assert info.value.errno == errno.EBADF


def test_detach_gives_up_ownership() -> None:
    efd = EventFD(9)
    fd = efd.fileno()
    assert efd.detach() == fd
    assert efd.closed
    with pytest.raises(ValueError):
        efd.detach()
    efd.close()  # does not close the detached fd
    try:
        assert _kernel.count(fd) == 9
        assert os.eventfd_read(fd) == 9
    finally:
        os.close(fd)


def test_detach_then_collect_does_not_warn_or_close() -> None:
    efd = EventFD(1)
    with _kernel.nothing_warned():
        fd = efd.detach()
        del efd
    try:
        assert os.eventfd_read(fd) == 1
    finally:
        os.close(fd)


# -- garbage collection, pickling, leaks ----------------------------------------------


def test_unclosed_object_warns_and_closes_its_fd() -> None:
    efd = EventFD.from_fd(high_fd(os.eventfd(0)))
    fd = efd.fileno()
    with pytest.warns(ResourceWarning, match=f"unclosed <EventFD fd={fd}"):
        del efd
        gc.collect()
    assert_fd_closed(fd)


def test_unclosed_object_in_a_cycle_warns_and_closes_its_fd() -> None:
    class Sub(EventFD):
        __slots__ = ("me",)
        me: EventFD

    efd = Sub.from_fd(high_fd(os.eventfd(0)))
    efd.me = efd
    fd = efd.fileno()
    with pytest.warns(ResourceWarning):
        del efd
        gc.collect()
    assert_fd_closed(fd)


def test_unclosed_object_closes_its_fd_when_the_warning_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under -W error::ResourceWarning warn() raises inside __del__; the fd
    # must be closed all the same (the exception goes to sys.unraisablehook).
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    efd = EventFD.from_fd(high_fd(os.eventfd(0)))
    fd = efd.fileno()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del efd
        gc.collect()
    assert [type(u.exc_value) for u in seen] == [ResourceWarning]
    assert_fd_closed(fd)


@pytest.mark.parametrize("cls", ["EventFD", "MaskFD"])
@pytest.mark.parametrize(
    ("holder", "warns"),
    [
        ("keep = eventfd_ext.{cls}()", True),  # a __main__ global: collected early
        # Collected so late that the warning may have nowhere to go: no failure.
        ("sys.keep = [eventfd_ext.{cls}()]", False),
    ],
)
def test_unclosed_object_at_interpreter_exit_is_quiet(cls: str, holder: str, warns: bool) -> None:
    # At exit the codecs that repr() needs for /proc may be gone already, and
    # the module's own globals (os, warnings, lib) may have been set to None.
    package_root = os.path.dirname(os.path.dirname(eventfd_ext.__file__))
    env = dict(os.environ, PYTHONPATH=package_root)
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "always",
            "-c",
            "import sys, eventfd_ext\n" + holder.format(cls=cls),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
    if warns:
        assert f"ResourceWarning: unclosed <{cls} fd=" in proc.stderr, proc.stderr


_OWNER_GLOBALS = ["_core", "_aio", "lib", "_owner_fd", "_ECLOSED"]


@pytest.mark.parametrize(
    ("cls", "modules"),
    [
        ("EventFD", {"_owner": _OWNER_GLOBALS, "_eventfd": ["os", "_core", "lib"]}),
        ("MaskFD", {"_owner": _OWNER_GLOBALS, "_maskfd": ["lib", "_core", "event_names"]}),
    ],
)
def test_unclosed_object_closes_its_fd_after_module_teardown(
    monkeypatch: pytest.MonkeyPatch, cls: str, modules: dict[str, list[str]]
) -> None:
    # What interpreter exit does to a module before its last objects go.
    obj = getattr(eventfd_ext, cls)()
    fd = obj.fileno()
    for module, names in modules.items():
        mod = sys.modules[f"eventfd_ext.{module}"]
        for name in names:
            monkeypatch.setattr(mod, name, None)
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    with pytest.warns(ResourceWarning, match=f"unclosed <{cls} fd={fd}"):
        del obj
        gc.collect()
    assert seen == []
    assert_fd_closed(fd)


def test_closed_object_collects_silently() -> None:
    with _kernel.nothing_warned():
        efd = EventFD()
        efd.close()
        del efd


def test_nothing_warned_sees_a_warning_raised_in_del() -> None:
    # The check above would pass a finalizer that always warns if it only
    # turned warnings into errors: those go to sys.unraisablehook.
    class AlwaysWarns(EventFD):
        __slots__ = ()

        def __del__(self, _warn_unclosed: object = None, _lib: object = None) -> None:
            warnings.warn("from __del__", ResourceWarning, stacklevel=1)

    with (
        pytest.raises(AssertionError, match="ResourceWarning: from __del__"),
        _kernel.nothing_warned(),
    ):
        efd = AlwaysWarns()
        efd.close()
        del efd


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_is_refused(protocol: int, efd: EventFD) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(efd, protocol)
    assert efd.peek() == START


@pytest.mark.parametrize("fn", [copy.copy, copy.deepcopy])
def test_copying_is_refused(fn: Callable[[Any], Any], efd: EventFD) -> None:
    # A copy would own the same fd number twice.
    with pytest.raises(TypeError):
        fn(efd)


def test_weak_references_work(efd: EventFD) -> None:
    ref = weakref.ref(efd)
    assert ref() is efd


def test_no_attribute_dict(efd: EventFD) -> None:
    with pytest.raises(AttributeError):
        efd.extra = 1  # type: ignore[attr-defined]


CYCLES = 3000


def test_no_fd_leak_over_create_close_cycles() -> None:
    before = _kernel.open_fds()
    for i in range(CYCLES):
        efd = EventFD(i % 7, semaphore=bool(i & 1), nonblocking=bool(i & 2))
        efd.write(1)
        efd.close()
        with EventFD() as efd:
            efd.write()
        EventFD.from_fd(eventfd_ext.eventfd(0)).close()
        os.close(EventFD().detach())
        os.close(eventfd_ext.eventfd(i % 3, eventfd_ext.EFD_NONBLOCK))
        with pytest.raises(OSError):
            eventfd_ext.eventfd(0, 0xFF)
        with pytest.raises(ValueError):
            EventFD(-1)
    gc.collect()
    assert _kernel.open_fds() == before


# -- spin and try_read ---------------------------------------------------------


def test_try_read_never_blocks_and_returns_zero_for_none() -> None:
    with EventFD() as efd, EventFD(3, semaphore=True) as sem:
        assert efd.try_read() == 0  # a blocking fd: still returns at once
        efd.write(5)
        assert efd.try_read() == 5
        assert [sem.try_read() for _ in range(4)] == [1, 1, 1, 0]
    with pytest.raises(ValueError, match="closed"):
        efd.try_read()


@pytest.mark.parametrize("spin", [-1, float("nan"), "0.1", None, True])
def test_bad_spin_is_refused_and_changes_nothing(spin: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        EventFD(spin=spin)  # type: ignore[arg-type]
    with EventFD(spin=1e-3) as efd:
        with pytest.raises((TypeError, ValueError)):
            efd.spin = spin  # type: ignore[assignment]
        assert efd.spin == 1e-3


# With or without a timeout the spin ends in poll(2), as a plain read's sleep.
@pytest.mark.parametrize(("timeout", "sleeps_in"), [(None, "poll"), (10.0, "poll")])
def test_spinning_read_gets_a_count_written_later(timeout: float | None, sleeps_in: str) -> None:
    with EventFD(spin=50e-6) as efd:
        thread, out = _kernel.in_thread(lambda: efd.read(timeout=timeout))
        assert _kernel.wait_in_syscall(thread, sleeps_in)  # spun, then slept
        efd.write(4)
        thread.join(10)
        assert out == {"result": 4}


def test_spinning_read_on_a_nonblocking_fd_raises_at_once() -> None:
    with EventFD(nonblocking=True, spin=1.0) as efd:
        start = time.monotonic()
        with pytest.raises(BlockingIOError):
            efd.read()
        assert time.monotonic() - start < 0.5, "a non-blocking fd spun its 1 s budget"
        with pytest.raises(TimeoutError):
            efd.read(timeout=0)
