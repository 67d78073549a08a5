"""MaskFD: the API, bad input, the byte ABI, and the object's life cycle."""

from __future__ import annotations

import errno
import gc
import os
import pickle
import resource
import struct
from collections.abc import Callable, Iterator

import pytest

from eventfd_ext import (
    EFD_MASK_EVENTS,
    EFD_MASK_SIZE,
    MaskFD,
    MaskState,
    choose_backing,
    pack_mask,
    unpack_mask,
)
from maskfd_helpers import ALL, ERR, HUP, IN, OUT, PRI, assert_shows, by_poll

BACKINGS = ["stream", "dgram", "pipe"]


@pytest.fixture(params=BACKINGS)
def mask(request: pytest.FixtureRequest) -> Iterator[MaskFD]:
    with MaskFD(backing=request.param) as m:
        yield m


def test_starts_with_no_events_and_zero_data(mask: MaskFD) -> None:
    assert mask.read() == MaskState(0, 0)
    assert by_poll(mask.fileno()) == 0  # the patch: "no events" at creation


def test_constructor_writes_the_initial_pair() -> None:
    with MaskFD(IN | OUT, 2**64 - 1) as m:
        assert m.read() == (IN | OUT, 2**64 - 1)
        assert_shows(m)


def test_write_replaces_both_and_read_returns_them(mask: MaskFD) -> None:
    mask.write(IN, 0xDEADBEEF)
    assert mask.read() == MaskState(IN, 0xDEADBEEF)
    assert isinstance(mask.read(), tuple)
    assert mask.read().events == mask.events == IN
    assert mask.read().data == mask.data == 0xDEADBEEF
    mask.write(0)
    assert mask.read() == (0, 0)  # data defaults to 0, as the patch's write replaces it


def test_set_clear_update_touch_only_their_bits() -> None:
    with MaskFD(OUT, 7) as m:
        m.set(IN)
        assert m.read() == (IN | OUT, 7)
        m.clear(OUT)
        assert m.read() == (IN, 7)
        m.update(set=OUT, clear=IN, data=9)
        assert m.read() == (OUT, 9)
        m.update(set=IN, clear=IN)  # set wins
        assert m.read() == (IN | OUT, 9)
        m.update()
        assert m.read() == (IN | OUT, 9)
        assert_shows(m)


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda m: m.write(0x20), ValueError),
        (lambda m: m.write(EFD_MASK_EVENTS | 0x40), ValueError),
        (lambda m: m.write(-1), ValueError),
        (lambda m: m.write(2**32), ValueError),
        (lambda m: m.write(1.0), TypeError),
        (lambda m: m.write("1"), TypeError),
        (lambda m: m.write(None), TypeError),
        (lambda m: m.write(IN, -1), ValueError),
        (lambda m: m.write(IN, 2**64), OverflowError),
        (lambda m: m.write(IN, 1.5), TypeError),
        (lambda m: m.set(0x100), ValueError),
        (lambda m: m.set(-4), ValueError),
        (lambda m: m.set(b"x"), TypeError),
        (lambda m: m.clear(0x8000), ValueError),
        (lambda m: m.clear(-1), ValueError),
        (lambda m: m.clear(2.0), TypeError),
        (lambda m: m.update(set=0x20), ValueError),
        (lambda m: m.update(clear=-1), ValueError),
        (lambda m: m.update(data=2**64), OverflowError),
        (lambda m: m.update(data=-1), ValueError),
        (lambda m: m.update(set=IN, data="x"), TypeError),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    call: Callable[[MaskFD], object], exc: type[Exception]
) -> None:
    with MaskFD(IN, 5) as m:
        before, shown, calls = m.read(), by_poll(m.fileno()), m.syscalls
        with pytest.raises(exc):
            call(m)
        assert m.read() == before
        assert by_poll(m.fileno()) == shown
        assert m.syscalls == calls


def test_constructor_refuses_bad_arguments_without_leaking() -> None:
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError):
        MaskFD(0x20)
    with pytest.raises(OverflowError):
        MaskFD(0, 2**64)
    with pytest.raises(ValueError, match="backing"):
        MaskFD(backing="tcp")  # type: ignore[arg-type]
    with pytest.raises(OSError) as info:
        MaskFD(OUT, backing="pipe")  # the pipe cannot show OUT
    assert info.value.errno == errno.EOPNOTSUPP
    gc.collect()
    assert set(os.listdir("/proc/self/fd")) == fds


def test_creation_failure_closes_what_it_opened() -> None:
    """EMFILE half way (memfd opened, socketpair refused): nothing leaks."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    # room for the memfd alone (fds take the lowest free number): the
    # socket pair then fails with EMFILE
    free = [n for n in range(max(before) + 3) if n not in before]
    limit = free[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        with pytest.raises(OSError) as info:
            MaskFD()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert info.value.errno == errno.EMFILE
    after = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    assert after == before


@pytest.mark.parametrize(
    ("uses", "backing"),
    [
        (IN, "pipe"),
        (IN | HUP, "pipe"),
        (0, "pipe"),
        (IN | OUT, "stream"),
        (PRI, "stream"),
        (IN | PRI | ERR, "stream"),
        (ERR, "dgram"),
        (IN | OUT | ERR | HUP, "dgram"),
    ],
)
def test_backing_chosen_from_the_events_used(uses: int, backing: str) -> None:
    assert choose_backing(uses) == backing
    with MaskFD(uses=uses) as m:
        assert m.backing == backing


def test_default_backing_is_stream() -> None:
    with MaskFD() as m:
        assert m.backing == "stream"


def test_explicit_backing_wins_over_uses() -> None:
    with MaskFD(backing="dgram", uses=IN) as m:
        assert m.backing == "dgram"
    with pytest.raises(ValueError):
        MaskFD(backing="stream", uses=0x40)


# -- the byte ABI -----------------------------------------------------------


def test_pack_unpack_is_the_packed_native_struct() -> None:
    assert EFD_MASK_SIZE == struct.calcsize("=IQ") == 12
    raw = pack_mask(IN | HUP, 0x0102030405060708)
    assert raw == struct.pack("=IQ", IN | HUP, 0x0102030405060708)
    assert unpack_mask(raw) == (IN | HUP, 0x0102030405060708)
    assert unpack_mask(bytearray(raw) + b"tail") == (IN | HUP, 0x0102030405060708)
    with pytest.raises(ValueError):
        unpack_mask(raw[:11])
    with pytest.raises(ValueError):
        unpack_mask(struct.pack("=IQ", 0x20, 0))
    with pytest.raises(ValueError):
        pack_mask(0x40)
    with pytest.raises(TypeError):
        pack_mask(IN, "x")  # type: ignore[arg-type]


def test_write_bytes_and_read_bytes(mask: MaskFD) -> None:
    assert mask.write_bytes(pack_mask(IN, 42)) == 12
    assert mask.read() == (IN, 42)
    assert mask.read_bytes() == pack_mask(IN, 42)
    assert mask.read_bytes(100) == pack_mask(IN, 42)
    assert mask.write_bytes(memoryview(pack_mask(0, 1) + b"ignored")) == 12
    assert mask.read() == (0, 1)


@pytest.mark.parametrize(
    "buffer", [b"", b"\x01" * 11, struct.pack("=IQ", 0x20, 1), struct.pack("=IQ", 0xFFFFFFFF, 1)]
)
def test_bad_bytes_are_einval_and_change_nothing(buffer: bytes) -> None:
    with MaskFD(IN, 3) as m:
        shown = by_poll(m.fileno())
        with pytest.raises(OSError) as info:
            m.write_bytes(buffer)
        assert info.value.errno == errno.EINVAL
        assert m.read() == (IN, 3)
        assert by_poll(m.fileno()) == shown


def test_short_read_bytes_is_einval() -> None:
    with MaskFD() as m, pytest.raises(OSError) as info:
        m.read_bytes(11)
    assert info.value.errno == errno.EINVAL


# -- life cycle -------------------------------------------------------------


def test_repr_shows_events_by_name_and_data() -> None:
    with MaskFD(IN | OUT, 0x2A) as m:
        text = repr(m)
        assert f"fd={m.fileno()}" in text
        assert "eventfd-mask: 5" in text  # the patch's fdinfo line
        assert "POLLIN|POLLOUT" in text
        assert "data=0x2a" in text
        assert "backing=stream" in text
    assert "closed" in repr(m)


def test_close_is_idempotent_and_closed_refuses_everything() -> None:
    m = MaskFD()
    fd = m.fileno()
    assert not m.closed
    m.close()
    m.close()
    assert m.closed
    with pytest.raises(OSError):
        os.fstat(fd)
    for call in (
        m.fileno,
        m.read,
        lambda: m.write(IN),
        lambda: m.set(IN),
        lambda: m.clear(IN),
        m.read_bytes,
        lambda: m.syscalls,
    ):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_context_manager_closes() -> None:
    with MaskFD() as m:
        assert not m.closed
    assert m.closed
    with pytest.raises(ValueError), m:
        pass


def test_unclosed_is_closed_with_resource_warning() -> None:
    m = MaskFD(IN)
    fd = m.fileno()
    with pytest.warns(ResourceWarning, match="unclosed"):
        del m
        gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_plain_pickle_is_refused() -> None:
    with MaskFD() as m, pytest.raises(TypeError, match="pickle"):
        pickle.dumps(m)


def test_no_change_write_makes_no_syscall(mask: MaskFD) -> None:
    mask.write(IN, 1)
    before = mask.syscalls
    for data in range(50):
        mask.write(IN, data)  # only the data changes
        mask.set(IN)
        mask.clear(PRI | ERR if mask.backing != "pipe" else 0)
    assert mask.syscalls == before
    assert mask.read() == (IN, 49)


def test_in_set_and_clear_cost_one_syscall_each(mask: MaskFD) -> None:
    mask.set(IN)
    mask.clear(IN)
    before = mask.syscalls
    mask.set(IN)
    assert mask.syscalls == before + 1
    mask.clear(IN)
    assert mask.syscalls == before + 2


def test_all_bits_constant() -> None:
    assert EFD_MASK_EVENTS == ALL == 0x1F


# -- a refusal names exactly the bits it refused ------------------------------


def _message_bits(exc: OSError, verb: str) -> str:
    """The bit names after "cannot <verb> " in a refusal's message."""
    text = str(exc.strerror)
    assert f"cannot {verb} " in text, text
    return text.split(f"cannot {verb} ", 1)[1].split(":", 1)[0].split(" ", 1)[0]


def _stream_after_hup(out: bool) -> MaskFD:
    m = MaskFD(IN | (OUT if out else 0))
    m.set(HUP)
    return m


@pytest.mark.parametrize(
    ("backing", "setup", "call", "err", "verb", "named"),
    [
        (
            "pipe",
            0,
            lambda m: m.update(set=IN | PRI | OUT),
            errno.EOPNOTSUPP,
            "show",
            "POLLPRI|POLLOUT",
        ),
        ("pipe", IN, lambda m: m.write(IN | ERR), errno.EOPNOTSUPP, "show", "POLLERR"),
        ("dgram", 0, lambda m: m.set(IN | PRI), errno.EOPNOTSUPP, "show", "POLLPRI"),
        (
            "stream",
            IN | OUT | HUP,
            lambda m: m.write(IN),
            errno.ENOTRECOVERABLE,
            "clear",
            "POLLOUT|POLLHUP",
        ),
        ("stream", IN | HUP, lambda m: m.write(IN), errno.ENOTRECOVERABLE, "clear", "POLLHUP"),
        ("dgram", IN | HUP, lambda m: m.clear(HUP | IN), errno.ENOTRECOVERABLE, "clear", "POLLHUP"),
    ],
)
def test_refusal_names_exactly_the_refused_bits(
    backing: str, setup: int, call: Callable[[MaskFD], None], err: int, verb: str, named: str
) -> None:
    with MaskFD(backing=backing) as m:  # type: ignore[arg-type]
        m.write(setup, 9)
        with pytest.raises(OSError) as info:
            call(m)
        assert info.value.errno == err
        assert _message_bits(info.value, verb) == named
        assert m.read() == (setup, 9)


def _in_another_thread_after_next_crossing(action: Callable[[], None]) -> None:
    """Arm a hook: as soon as this thread's next call into the shim returns
    (before any Python line looks at its result), run *action* in another
    thread and wait for it.  The worst interleaving a concurrent writer can
    produce, made deterministic (cffi releases the GIL around every call, so
    a real thread can land exactly there)."""
    import sys
    import threading

    def hook(frame: object, event: str, arg: object) -> None:
        if event == "c_return" and getattr(arg, "__name__", "").startswith("mfx_"):
            sys.setprofile(None)
            thread = threading.Thread(target=action)
            thread.start()
            thread.join()

    sys.setprofile(hook)


def _refused_while_another_thread_sets_out(
    call: Callable[[MaskFD], None], verb: str
) -> tuple[str, MaskState]:
    # stream after HUP, OUT not stored: HUP (and OUT once set) can no longer
    # be cleared; PRI can no longer be set, nor can ERR once OUT is set.
    with _stream_after_hup(out=False) as m:
        _in_another_thread_after_next_crossing(lambda: m.set(OUT))
        try:
            with pytest.raises(OSError) as info:
                call(m)
        finally:
            import sys

            sys.setprofile(None)
        return _message_bits(info.value, verb), m.read()


def test_refusal_names_its_own_bits_while_another_thread_changes_the_mask() -> None:
    # Refused for HUP alone; the other thread's OUT lands just after.
    named, after = _refused_while_another_thread_sets_out(lambda m: m.write(IN), "clear")
    assert after == (IN | OUT | HUP, 0)  # the other thread's change did land
    assert named == "POLLHUP"  # not POLLOUT|POLLHUP: OUT was not stored when refused


def test_refusal_to_show_names_its_own_bits_while_another_thread_changes_the_mask() -> None:
    # Refused for PRI alone (ERR could still be set); the other thread's OUT
    # drains the fill that ERR needs after HUP, just after the refusal.
    named, after = _refused_while_another_thread_sets_out(lambda m: m.update(set=PRI | ERR), "show")
    assert after == (IN | OUT | HUP, 0)
    assert named == "POLLPRI"  # not POLLPRI|POLLERR
