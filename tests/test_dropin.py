"""eventfd_ext's drop-ins against the running interpreter's own os.eventfd*.

Every call is made twice, once with os's function and once with ours, on
twin fds (or the same kind of fd); the outcome (value, or exception type,
errno and message) and what it did (the count, the fds open, the warnings)
must be the same.  Nothing here says what os does: versions differ (3.14
takes __index__ objects, warns about a bool fd and words its errors anew),
and the drop-ins must follow whichever runs the suite.  Some lists are of
calls every version refuses; the tests only check that os refuses them.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import _kernel
import eventfd_ext
from eventfd_ext import EventFD

NAMES = ("eventfd", "eventfd_read", "eventfd_write")
START = 5  # a nonzero count, so that "unchanged" means something


class FilenoObj:
    """An object that is not an fd but has fileno(), like a socket."""

    def __init__(self, value: object) -> None:
        self.value = value

    def fileno(self) -> object:
        return self.value

    def __repr__(self) -> str:
        return f"FilenoObj({self.value!r})"


class Index:
    """Not an int, but converts to one through __index__."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"Index({self.value!r})"


class MyInt(int):
    pass


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call did, in a form two implementations can be compared by."""
    try:
        result = fn(*args)
    except Exception as e:
        return ("raised", type(e), getattr(e, "errno", None), str(e))
    return ("returned", result)


@pytest.fixture
def closed_fd() -> int:
    """An fd number that is not open, high enough not to be reused meanwhile."""
    fd = _kernel.high_fd(os.eventfd(0))
    os.close(fd)
    return fd


@pytest.fixture
def efd() -> Iterator[int]:
    """A non-blocking eventfd holding START."""
    fd = os.eventfd(START, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    yield fd
    os.close(fd)


def test_constants_are_the_kernels() -> None:
    for name in ("EFD_CLOEXEC", "EFD_NONBLOCK", "EFD_SEMAPHORE"):
        assert getattr(eventfd_ext, name) == getattr(os, name), name
    assert eventfd_ext.EFD_CLOEXEC == os.O_CLOEXEC
    assert eventfd_ext.EFD_NONBLOCK == os.O_NONBLOCK
    assert eventfd_ext.EFD_SEMAPHORE == 1
    assert eventfd_ext.EFD_MASK == 1 << 1


@pytest.mark.parametrize("name", NAMES)
def test_signature_is_cpythons(name: str) -> None:
    theirs = inspect.signature(getattr(os, name)).parameters
    ours = inspect.signature(getattr(eventfd_ext, name)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


def test_keyword_arguments_like_cpython() -> None:
    fd = eventfd_ext.eventfd(initval=3, flags=eventfd_ext.EFD_NONBLOCK)
    try:
        eventfd_ext.eventfd_write(fd=fd, value=4)
        assert eventfd_ext.eventfd_read(fd=fd) == 7
    finally:
        os.close(fd)


# -- eventfd() ---------------------------------------------------------------

GOOD_CREATE = [
    (0,),
    (7,),
    (2**32 - 1,),
    (True,),
    (MyInt(3),),
    (1, 0),
    (1, os.EFD_NONBLOCK | os.EFD_SEMAPHORE),
    (1, os.EFD_CLOEXEC | os.EFD_NONBLOCK | os.EFD_SEMAPHORE),
    (1, Index(os.EFD_CLOEXEC)),
    (1, MyInt(os.EFD_SEMAPHORE)),
    (1, True),  # a bool flag is EFD_SEMAPHORE
    (False, False),
]


def _describe(fd: int) -> tuple[Any, ...]:
    info = _kernel.fdinfo(fd)
    return (
        _kernel.count(fd),
        info.get("eventfd-semaphore"),
        os.get_blocking(fd),
        os.get_inheritable(fd),
    )


# Calls that versions take differently (3.14 converts initval through
# __index__; 3.13 and before refuse it): ours must do what the running os does.
EITHER_CREATE = [
    (Index(1),),
    (Index(2**32),),
    (Index(-1),),
    (Index(1), Index(os.EFD_NONBLOCK)),
    (MyInt(1), Index(os.EFD_SEMAPHORE)),
]


@pytest.mark.parametrize("args", GOOD_CREATE, ids=repr)
def test_eventfd_creates_what_os_creates(args: tuple[Any, ...]) -> None:
    theirs = os.eventfd(*args)
    ours = eventfd_ext.eventfd(*args)
    try:
        assert type(ours) is int
        assert _describe(ours) == _describe(theirs)
    finally:
        os.close(theirs)
        os.close(ours)


@pytest.mark.parametrize("args", EITHER_CREATE, ids=repr)
def test_eventfd_takes_or_refuses_what_the_running_os_does(args: tuple[Any, ...]) -> None:
    before = _kernel.open_fds()
    theirs = outcome(os.eventfd, *args)
    ours = outcome(eventfd_ext.eventfd, *args)
    try:
        if theirs[0] == "raised":
            assert ours == theirs
            assert _kernel.open_fds() == before, "a refused eventfd() left an fd open"
        else:
            assert ours[0] == "returned", ours
            assert type(ours[1]) is int
            assert _describe(ours[1]) == _describe(theirs[1])
    finally:
        for result in (theirs, ours):
            if result[0] == "returned":
                os.close(result[1])


def test_eventfd_default_flags_are_cloexec_only() -> None:
    fd = eventfd_ext.eventfd(0)
    try:
        assert not os.get_inheritable(fd)
        assert os.get_blocking(fd)
        assert _kernel.fdinfo(fd).get("eventfd-semaphore", "0") == "0"
    finally:
        os.close(fd)


BAD_CREATE = [
    (-1,),
    (-(2**100),),
    (2**32,),
    (2**64,),
    (2**100,),
    (1.0,),
    ("1",),
    (None,),
    (0, 0xFF),  # unknown flag bits: EINVAL
    (0, eventfd_ext.EFD_MASK),  # never merged: the kernel refuses it
    (0, os.O_APPEND),
    (0, -1),
    (0, 2**31),
    (0, -(2**31) - 1),
    (0, 2**100),
    (0, 1.0),
    (0, None),
    (0, "x"),
    (-1, "x"),  # both bad: the first argument is reported
    (1.5, 2**100),
]


@pytest.mark.parametrize("args", BAD_CREATE, ids=repr)
def test_eventfd_refuses_what_os_refuses(args: tuple[Any, ...]) -> None:
    before = _kernel.open_fds()
    theirs = outcome(os.eventfd, *args)
    ours = outcome(eventfd_ext.eventfd, *args)
    assert theirs[0] == "raised", theirs
    assert ours == theirs
    assert _kernel.open_fds() == before, "a refused eventfd() left an fd open"


def test_eventfd_missing_argument_is_typeerror() -> None:
    with pytest.raises(TypeError):
        eventfd_ext.eventfd()
    with pytest.raises(TypeError):
        eventfd_ext.eventfd(0, 0, 0)  # type: ignore[call-arg]


# -- eventfd_read() / eventfd_write() ------------------------------------------

# Each case is a function of (eventfd, closed fd number) giving the arguments.
BAD_FDS: list[tuple[str, Callable[[int, int], object]]] = [
    ("negative", lambda fd, closed: -1),
    ("huge negative", lambda fd, closed: -(2**70)),
    ("2**31", lambda fd, closed: 2**31),
    ("2**64", lambda fd, closed: 2**64),
    ("closed number", lambda fd, closed: closed),
    ("float", lambda fd, closed: float(fd)),
    ("str", lambda fd, closed: str(fd)),
    ("None", lambda fd, closed: None),
    ("__index__", lambda fd, closed: Index(fd)),
    ("fileno float", lambda fd, closed: FilenoObj(float(fd))),
    ("fileno str", lambda fd, closed: FilenoObj(str(fd))),
    ("fileno None", lambda fd, closed: FilenoObj(None)),
    ("fileno __index__", lambda fd, closed: FilenoObj(Index(fd))),
    ("fileno negative", lambda fd, closed: FilenoObj(-1)),
    ("fileno huge", lambda fd, closed: FilenoObj(2**40)),
    ("fileno huge negative", lambda fd, closed: FilenoObj(-(2**70))),
    ("fileno closed number", lambda fd, closed: FilenoObj(closed)),
]


@pytest.mark.parametrize("make", [m for _, m in BAD_FDS], ids=[i for i, _ in BAD_FDS])
def test_eventfd_read_bad_fd_like_os(
    make: Callable[[int, int], object], efd: int, closed_fd: int
) -> None:
    arg = make(efd, closed_fd)
    theirs = outcome(os.eventfd_read, arg)
    ours = outcome(eventfd_ext.eventfd_read, arg)
    assert theirs[0] == "raised", theirs
    assert ours == theirs
    assert _kernel.count(efd) == START


@pytest.mark.parametrize("make", [m for _, m in BAD_FDS], ids=[i for i, _ in BAD_FDS])
def test_eventfd_write_bad_fd_like_os(
    make: Callable[[int, int], object], efd: int, closed_fd: int
) -> None:
    arg = make(efd, closed_fd)
    theirs = outcome(os.eventfd_write, arg, 1)
    ours = outcome(eventfd_ext.eventfd_write, arg, 1)
    assert theirs[0] == "raised", theirs
    assert ours == theirs
    assert _kernel.count(efd) == START


BAD_VALUES = [
    -1,
    -(2**70),
    2**64,
    2**70,
    2**64 - 1,  # passes the conversion; the kernel refuses it (EINVAL)
    1.0,
    "1",
    b"\x01",
    None,
    2**64 - 1 - START,  # fine alone, but would pass 2**64 - 2: EAGAIN
]


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
@pytest.mark.parametrize("wrap", [False, True], ids=["int fd", "fileno obj"])
def test_eventfd_write_bad_value_like_os(value: object, wrap: bool, efd: int) -> None:
    fd: object = FilenoObj(efd) if wrap else efd
    theirs = outcome(os.eventfd_write, fd, value)
    assert _kernel.count(efd) == START
    ours = outcome(eventfd_ext.eventfd_write, fd, value)
    assert theirs[0] == "raised", theirs
    assert ours == theirs
    assert _kernel.count(efd) == START


# Values that versions take differently (3.14 converts them through
# __index__, 3.13 and before refuse them), and how far each would go.
EITHER_VALUES = [Index(1), Index(0), Index(2**64 - 1), Index(2**64), Index(-1), Index(MyInt(3))]


@pytest.fixture
def twins() -> Iterator[tuple[int, int]]:
    """Two non-blocking eventfds holding START: one for os, one for us."""
    fds = (os.eventfd(START, os.EFD_NONBLOCK), os.eventfd(START, os.EFD_NONBLOCK))
    yield fds
    for fd in fds:
        os.close(fd)


@pytest.mark.parametrize("value", EITHER_VALUES, ids=repr)
@pytest.mark.parametrize("wrap", [False, True], ids=["int fd", "fileno obj"])
def test_eventfd_write_takes_or_refuses_what_the_running_os_does(
    value: object, wrap: bool, twins: tuple[int, int]
) -> None:
    args = [FilenoObj(fd) if wrap else fd for fd in twins]
    theirs = outcome(os.eventfd_write, args[0], value)
    ours = outcome(eventfd_ext.eventfd_write, args[1], value)
    assert ours == theirs
    assert _kernel.count(twins[1]) == _kernel.count(twins[0])
    if theirs[0] == "raised":
        assert _kernel.count(twins[1]) == START


class Counting:
    """An fd (through fileno()) or a value (through __index__) that counts
    how often it is converted."""

    def __init__(self, value: object) -> None:
        self.value = value
        self.calls = 0

    def fileno(self) -> object:
        self.calls += 1
        return self.value

    def __index__(self) -> int:
        self.calls += 1
        assert isinstance(self.value, int)
        return self.value


CONVERSIONS: list[tuple[str, Callable[[int], tuple[Any, ...]]]] = [
    ("eventfd_read(fileno obj)", lambda fd: (Counting(fd),)),
    ("eventfd_read(fileno obj -> -1)", lambda fd: (Counting(-1),)),
    ("eventfd_write(fileno obj, 1)", lambda fd: (Counting(fd), 1)),
    ("eventfd_write(fileno obj, 'x')", lambda fd: (Counting(fd), "x")),
    ("eventfd_write(fd, __index__)", lambda fd: (fd, Counting(2))),
    ("eventfd_write(fileno obj, __index__)", lambda fd: (Counting(fd), Counting(2))),
    ("eventfd_write(fd, __index__ -> -1)", lambda fd: (fd, Counting(-1))),
]


@pytest.mark.parametrize(("name", "make"), CONVERSIONS, ids=[name for name, _ in CONVERSIONS])
def test_each_argument_is_converted_as_often_as_os_converts_it(
    name: str, make: Callable[[int], tuple[Any, ...]], twins: tuple[int, int]
) -> None:
    """No conversion twice (ours, then os's): a fileno() or __index__ with
    side effects sees what it sees under os."""
    fn = name.partition("(")[0]
    theirs_args, ours_args = make(twins[0]), make(twins[1])
    theirs = outcome(getattr(os, fn), *theirs_args)
    ours = outcome(getattr(eventfd_ext, fn), *ours_args)
    assert ours == theirs
    assert [a.calls for a in ours_args if isinstance(a, Counting)] == [
        a.calls for a in theirs_args if isinstance(a, Counting)
    ]
    assert _kernel.count(twins[1]) == _kernel.count(twins[0])


@pytest.mark.parametrize("name", ["eventfd_read", "eventfd_write"])
def test_a_bool_fd_warns_as_the_running_os_warns(name: str) -> None:
    """3.14 warns (RuntimeWarning) when a bool is used as an fd; before, a
    bool was fd 0 or 1 without a word.  The eventfd is put on fd 0 for the
    call, so that False reaches an eventfd whichever way os goes."""
    args: tuple[Any, ...] = (False,) if name == "eventfd_read" else (False, 2)
    saved = os.dup(0)
    results = []
    try:
        for fn in (getattr(os, name), getattr(eventfd_ext, name)):
            efd = os.eventfd(START, os.EFD_NONBLOCK)
            try:
                os.dup2(efd, 0, inheritable=False)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    result = outcome(fn, *args)
                warned = [(w.category, str(w.message)) for w in caught]
                results.append((result, warned, _kernel.count(efd)))
            finally:
                os.close(efd)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert results[1] == results[0]


@pytest.mark.parametrize(
    "args",
    [(-1, -1), ("x", "y"), (2**64, 2**64), (None, None)],
    ids=repr,
)
def test_eventfd_write_both_bad_reports_the_fd(args: tuple[Any, Any]) -> None:
    theirs = outcome(os.eventfd_write, *args)
    ours = outcome(eventfd_ext.eventfd_write, *args)
    assert theirs[0] == "raised"
    assert ours == theirs


def test_eventfd_write_bad_value_on_fileno_obj_reports_the_value(efd: int) -> None:
    theirs = outcome(os.eventfd_write, FilenoObj(efd), "1")
    ours = outcome(eventfd_ext.eventfd_write, FilenoObj(efd), "1")
    assert ours == theirs
    assert _kernel.count(efd) == START


def test_read_empty_nonblocking_is_blockingioerror_like_os() -> None:
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        theirs = outcome(os.eventfd_read, fd)
        ours = outcome(eventfd_ext.eventfd_read, fd)
        assert theirs[1] is BlockingIOError
        assert ours == theirs
        assert _kernel.count(fd) == 0
    finally:
        os.close(fd)


def test_write_past_max_nonblocking_is_blockingioerror_like_os() -> None:
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        os.eventfd_write(fd, _kernel.MAX)
        for value in (1, 2**63, _kernel.MAX):
            theirs = outcome(os.eventfd_write, fd, value)
            ours = outcome(eventfd_ext.eventfd_write, fd, value)
            assert theirs[1] is BlockingIOError
            assert ours == theirs
            assert _kernel.count(fd) == _kernel.MAX
        # write(0) changes nothing, even at the maximum
        assert outcome(eventfd_ext.eventfd_write, fd, 0) == ("returned", None)
        assert _kernel.count(fd) == _kernel.MAX
        assert eventfd_ext.eventfd_read(fd) == _kernel.MAX
    finally:
        os.close(fd)


def test_read_and_write_on_a_non_eventfd_like_os() -> None:
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        for fn, args in (
            ("eventfd_read", (r,)),  # empty pipe: EAGAIN
            ("eventfd_write", (r, 1)),  # read end: EBADF
        ):
            theirs = outcome(getattr(os, fn), *args)
            ours = outcome(getattr(eventfd_ext, fn), *args)
            assert theirs[0] == "raised"
            assert ours == theirs, fn
    finally:
        os.close(r)
        os.close(w)


def test_short_read_from_a_non_eventfd_raises() -> None:
    # CPython raises OSError with whatever errno was left (often 0).  Ours
    # never passes 3 stray bytes off as a count: the hot read says only that
    # it failed, so the read is made again (see csrc/eventfd_shim.h), and
    # that finds the (non-blocking) pipe empty.
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        for fn in (os.eventfd_read, eventfd_ext.eventfd_read):
            os.write(w, b"abc")
            with pytest.raises(OSError):
                fn(r)
    finally:
        os.close(r)
        os.close(w)


def test_closed_eventfd_object_like_os(efd: int) -> None:
    obj = EventFD()
    obj.close()
    for fn, args in (("eventfd_read", (obj,)), ("eventfd_write", (obj, 1))):
        theirs = outcome(getattr(os, fn), *args)
        ours = outcome(getattr(eventfd_ext, fn), *args)
        assert theirs[1] is ValueError
        assert ours == theirs


def test_fileno_exception_propagates_like_os() -> None:
    class Broken:
        def fileno(self) -> int:
            raise RuntimeError("no fd here")

    for fn, args in (("eventfd_read", (Broken(),)), ("eventfd_write", (Broken(), 1))):
        theirs = outcome(getattr(os, fn), *args)
        ours = outcome(getattr(eventfd_ext, fn), *args)
        assert theirs[1] is RuntimeError
        assert ours == theirs


# -- the good paths --------------------------------------------------------------

GOOD_VALUES = [0, 1, True, False, MyInt(9), 2**32, 2**63, _kernel.MAX - START]


@pytest.mark.parametrize("value", GOOD_VALUES, ids=repr)
@pytest.mark.parametrize("wrap", [False, True], ids=["int fd", "fileno obj"])
def test_write_then_read_like_os(value: int, wrap: bool) -> None:
    fds = [os.eventfd(START, os.EFD_NONBLOCK) for _ in range(2)]
    try:
        args = [FilenoObj(fd) if wrap else fd for fd in fds]
        assert outcome(os.eventfd_write, args[0], value) == outcome(
            eventfd_ext.eventfd_write, args[1], value
        )
        assert _kernel.count(fds[1]) == _kernel.count(fds[0]) == START + value
        theirs = outcome(os.eventfd_read, args[0])
        ours = outcome(eventfd_ext.eventfd_read, args[1])
        assert ours == theirs == ("returned", START + value)
        assert type(ours[1]) is int
        assert _kernel.count(fds[1]) == 0
    finally:
        for fd in fds:
            os.close(fd)


def test_semaphore_reads_like_os() -> None:
    fds = [os.eventfd(3, os.EFD_SEMAPHORE | os.EFD_NONBLOCK) for _ in range(2)]
    try:
        for _ in range(4):
            theirs = outcome(os.eventfd_read, fds[0])
            ours = outcome(eventfd_ext.eventfd_read, fds[1])
            assert ours == theirs
            assert _kernel.count(fds[1]) == _kernel.count(fds[0])
        assert theirs[1] is BlockingIOError
    finally:
        for fd in fds:
            os.close(fd)


def test_dropins_accept_an_eventfd_object() -> None:
    with EventFD(2) as efd:
        eventfd_ext.eventfd_write(efd, 3)
        assert efd.peek() == 5
        assert eventfd_ext.eventfd_read(efd) == 5
        assert efd.peek() == 0


# -- odd ints and odd objects --------------------------------------------------


class LyingInt(int):
    """An int subclass whose __int__, __index__-free conversions and repr lie:
    CPython's converters take its value, and so must ours."""

    def __int__(self) -> int:
        return 999

    def __repr__(self) -> str:
        return "LyingInt!"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "LyingInt!"


def test_int_subclass_value_is_its_value_like_os(efd: int) -> None:
    for fn in (os.eventfd_write, eventfd_ext.eventfd_write):
        fn(efd, LyingInt(2))
    assert _kernel.count(efd) == START + 4
    theirs = outcome(os.eventfd_read, LyingInt(efd))
    eventfd_ext.eventfd_write(efd, START + 4)
    ours = outcome(eventfd_ext.eventfd_read, LyingInt(efd))
    assert ours == theirs == ("returned", START + 4)


def test_int_subclass_initval_is_its_value_like_os() -> None:
    fds = [os.eventfd(LyingInt(3)), eventfd_ext.eventfd(LyingInt(3))]
    try:
        assert [_kernel.count(fd) for fd in fds] == [3, 3]
    finally:
        for fd in fds:
            os.close(fd)
    with EventFD(LyingInt(3)) as ev:
        ev.write(LyingInt(4))
        assert ev.read() == 7


@pytest.mark.parametrize(
    "arg",
    [LyingInt(-3), FilenoObj(LyingInt(-3))],
    ids=["int subclass", "fileno() int subclass"],
)
@pytest.mark.parametrize("name", ["eventfd_read", "eventfd_write"])
def test_negative_int_subclass_fd_message_like_os(arg: object, name: str) -> None:
    args = (arg,) if name == "eventfd_read" else (arg, 1)
    theirs = outcome(getattr(os, name), *args)
    ours = outcome(getattr(eventfd_ext, name), *args)
    assert theirs[0] == "raised"
    assert ours == theirs


class FilenoIsNone:
    fileno = None


@pytest.mark.parametrize("name", ["eventfd_read", "eventfd_write"])
def test_fileno_none_message_like_os(name: str) -> None:
    args = (FilenoIsNone(),) if name == "eventfd_read" else (FilenoIsNone(), 1)
    theirs = outcome(getattr(os, name), *args)
    ours = outcome(getattr(eventfd_ext, name), *args)
    assert theirs[0] == "raised"
    assert ours == theirs


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("eventfd", (), {}),
        ("eventfd", (), {"flags": 0}),
        ("eventfd_read", (), {}),
        ("eventfd_write", (), {}),
        ("eventfd_write", (3,), {}),
        ("eventfd_write", (), {"value": 1}),
    ],
    ids=repr,
)
def test_missing_argument_message_like_os(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    theirs = outcome(lambda: getattr(os, name)(*args, **kwargs))
    ours = outcome(lambda: getattr(eventfd_ext, name)(*args, **kwargs))
    assert theirs[0] == "raised"
    assert ours == theirs
