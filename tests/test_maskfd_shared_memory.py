"""MaskFD's shared page against the other holders of its memfd: none can
resize it (a shrink would make every other holder die of SIGBUS), adopting
refuses a memfd that could be resized and fds that are not the state's own,
and ``fds()``/``from_fds`` carry a MaskFD to a ``subprocess``."""

from __future__ import annotations

import errno
import fcntl
import json
import mmap
import os
import random
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from _kernel import is_open
from eventfd_ext import MaskFD
from eventfd_ext._backings import Backing
from eventfd_ext._shim import ffi, lib
from maskfd_helpers import HUP, IN, OUT, by_poll

BACKINGS: list[Backing] = ["stream", "dgram", "pipe"]
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
F_SEAL_FUTURE_WRITE = 0x0010  # not in Python's fcntl module
PAGE = 4096
LIMIT = 60  # generous bound on a child process (seconds)


def memfd_of(m: MaskFD) -> int:
    return int(lib.mfx_memfd(m._m))


def peer_of(m: MaskFD) -> int:
    return int(lib.mfx_peer_fd(m._m))


@pytest.fixture(params=BACKINGS)
def mask(request: pytest.FixtureRequest) -> Iterator[MaskFD]:
    with MaskFD(backing=request.param) as m:
        yield m


def run_python(code: str, pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        pass_fds=pass_fds,
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )


# -- sealed at creation ------------------------------------------------------------


def test_memfd_is_sealed_against_resizing_from_creation(mask: MaskFD) -> None:
    seals = fcntl.fcntl(memfd_of(mask), fcntl.F_GET_SEALS)
    assert seals & SEALS == SEALS, f"seals {seals:#x}"
    assert os.fstat(memfd_of(mask)).st_size == PAGE


_RESIZER = """
    import errno, fcntl, json, os, sys
    fd = int(sys.argv[1])
    def attempt(call):
        try:
            call()
        except OSError as exc:
            return exc.errno
        return 0
    print(json.dumps({
        "shrink": attempt(lambda: os.ftruncate(fd, 0)),
        "shrink_some": attempt(lambda: os.ftruncate(fd, 100)),
        "grow": attempt(lambda: os.ftruncate(fd, 8192)),
        "fallocate": attempt(lambda: os.posix_fallocate(fd, 0, 8192)),
        "future_write_seal": attempt(lambda: fcntl.fcntl(fd, fcntl.F_ADD_SEALS, 0x10)),
        "size": os.fstat(fd).st_size,
    }))
"""


@pytest.mark.parametrize("backing", BACKINGS)
def test_a_holder_that_resizes_gets_eperm_and_the_maskfd_keeps_working(
    backing: Backing,
) -> None:
    """A pass_fds child holding the memfd tries to shrink it (which made
    every other holder die of SIGBUS at its next call), grow it and seal it
    further: each gets EPERM, the size stays, and the MaskFD works on."""
    with MaskFD(IN, 7, backing=backing) as m:
        held = os.dup(memfd_of(m))
        try:
            done = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(_RESIZER), str(held)],
                pass_fds=(held,),
                capture_output=True,
                text=True,
                timeout=LIMIT,
            )
        finally:
            os.close(held)
        assert done.returncode == 0, done.stderr
        tried = json.loads(done.stdout)
        assert tried == {
            "shrink": errno.EPERM,
            "shrink_some": errno.EPERM,
            "grow": errno.EPERM,
            "fallocate": errno.EPERM,
            "future_write_seal": errno.EPERM,
            "size": PAGE,
        }
        # and here, in this process, too
        with pytest.raises(PermissionError):
            os.ftruncate(memfd_of(m), 0)
        assert m.read() == (IN, 7)
        m.write(0, 8)
        assert by_poll(m.fileno()) == 0
        m.set(IN)
        assert by_poll(m.fileno()) == IN
        assert m.read() == (IN, 8)


# -- adopting: only a sealed memfd, only the state's own fds ---------------------


def _copy(m: MaskFD, flags: int, seals: int, size: int = PAGE) -> int:
    """A new memfd holding *m*'s page (its first *size* bytes)."""
    with mmap.mmap(memfd_of(m), PAGE) as page:
        content = bytes(page[:size])
    copy = os.memfd_create("copy", flags)
    os.write(copy, content)
    if seals:
        fcntl.fcntl(copy, fcntl.F_ADD_SEALS, seals)
    return copy


def _attach(memfd: int, a: int, b: int) -> int:
    out = ffi.new("struct mfx_handle **")
    result = int(lib.mfx_attach(memfd, a, b, out))
    if result == 0:
        lib.mfx_free(out[0])  # closes the three fds
    return result


def _ends(m: MaskFD) -> list[int]:
    """Duplicates of the ends a from_fds call passes (the peer if it travels)."""
    ends = [os.dup(m.fileno())]
    if m.backing != "pipe":
        ends.append(os.dup(peer_of(m)))
    return ends


@pytest.mark.parametrize(
    ("flags", "seals", "size"),
    [
        pytest.param(os.MFD_CLOEXEC, 0, PAGE, id="unsealed"),
        pytest.param(os.MFD_ALLOW_SEALING, 0, PAGE, id="sealable-not-sealed"),
        pytest.param(os.MFD_ALLOW_SEALING, fcntl.F_SEAL_SHRINK, PAGE, id="shrink-only"),
        pytest.param(os.MFD_ALLOW_SEALING, fcntl.F_SEAL_GROW, PAGE, id="grow-only"),
        pytest.param(
            os.MFD_ALLOW_SEALING,
            fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW,
            PAGE,
            id="no-seal-seal",
        ),
        pytest.param(os.MFD_ALLOW_SEALING, SEALS, 256, id="sealed-too-small"),
    ],
)
def test_adopting_a_memfd_that_could_be_resized_is_refused(
    mask: MaskFD, flags: int, seals: int, size: int
) -> None:
    """A memfd with the right content (a copy of a live MaskFD's page) but
    without every seal, or smaller than the state: the shim says EINVAL,
    from_fds ValueError, and every fd stays open."""
    copy = _copy(mask, flags, seals, size)
    ends = _ends(mask)
    try:
        assert _attach(copy, ends[0], ends[1] if len(ends) > 1 else -1) == -errno.EINVAL
        with pytest.raises(ValueError, match="sealed memfd"):
            MaskFD.from_fds(copy, *ends)
        assert all(is_open(fd) for fd in [copy, *ends])
    finally:
        for fd in [copy, *ends]:
            os.close(fd)
    mask.set(IN)
    assert by_poll(mask.fileno()) & IN


def test_adopting_a_sealed_copy_works(mask: MaskFD) -> None:
    """The control of the test above: the same copy, sealed as the shim
    seals, is adopted (so the refusals are the seals' doing)."""
    mask.write(IN, 5)
    copy = _copy(mask, os.MFD_ALLOW_SEALING, SEALS)
    adopted = MaskFD.from_fds(copy, *_ends(mask))
    with adopted:
        assert adopted.read() == (IN, 5)
        assert adopted.backing == mask.backing


@pytest.mark.parametrize("backing", ["stream", "dgram"])
def test_adopting_fds_that_are_not_the_states_own_is_refused(backing: Backing) -> None:
    """Another socket pair, the ends swapped, the memfd as an end, a pipe:
    ValueError, fds left open (a wrong end would have the shim send and
    receive on someone else's socket)."""
    kind = socket.SOCK_STREAM if backing == "stream" else socket.SOCK_DGRAM
    with MaskFD(backing=backing) as m:
        memfd, a, b = (os.dup(fd) for fd in m.fds())
        s1, s2 = socket.socketpair(socket.AF_UNIX, kind)
        r, w = os.pipe()
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        wrong = [
            (memfd, s1.fileno(), s2.fileno()),
            (memfd, b, a),
            (memfd, a, s2.fileno()),
            (memfd, memfd, b),
            (memfd, r, b),
            (memfd, other.fileno(), b),
            (a, memfd, b),
        ]
        try:
            for fds in wrong:
                if len(set(fds)) != len(fds):
                    with pytest.raises(ValueError, match="distinct"):
                        MaskFD.from_fds(*fds)
                    continue
                with pytest.raises(ValueError):
                    MaskFD.from_fds(*fds)
                assert all(is_open(fd) for fd in fds), fds
        finally:
            for fd in (memfd, a, b, r, w):
                os.close(fd)
            s1.close()
            s2.close()
            other.close()


def test_a_pipes_writer_is_not_adopted() -> None:
    """The pipe's writer stays with its creator (its last close is HUP): a
    from_fds that brings it is refused; without it, adopted."""
    with MaskFD(backing="pipe") as m:
        assert len(m.fds()) == 2
        memfd, a = (os.dup(fd) for fd in m.fds())
        writer = os.dup(peer_of(m))
        try:
            with pytest.raises(ValueError):
                MaskFD.from_fds(memfd, a, writer)
            assert is_open(memfd)
            assert is_open(a)
            assert is_open(writer)
        finally:
            os.close(writer)
        with MaskFD.from_fds(memfd, a) as adopted:
            adopted.set(IN)
            assert by_poll(m.fileno()) == IN


# -- fds() and from_fds across processes -------------------------------------------

_ADOPTER = """
    import json, select, sys
    from eventfd_ext import MaskFD
    fds = [int(x) for x in sys.argv[1:]]
    with MaskFD.from_fds(*fds) as m:
        before = tuple(m.read())
        m.update(set=select.POLLIN, data=99)
        print(json.dumps({"before": before, "backing": m.backing}))
"""


@pytest.mark.parametrize("backing", BACKINGS)
def test_fds_and_from_fds_carry_a_maskfd_to_a_subprocess(backing: Backing) -> None:
    with MaskFD(OUT if backing != "pipe" else HUP, 3, backing=backing) as m:
        fds = m.fds()
        assert all(fd >= 0 for fd in fds)
        assert fds[1] == m.fileno()
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_ADOPTER), *map(str, fds)],
            pass_fds=fds,
            capture_output=True,
            text=True,
            timeout=LIMIT,
        )
        assert done.returncode == 0, done.stderr
        got = json.loads(done.stdout)
        first = OUT if backing != "pipe" else HUP
        assert got == {"before": [first, 3], "backing": backing}
        assert m.read() == (first | IN, 99)
        assert by_poll(m.fileno()) & (first | IN) == first | IN


def test_fds_raises_once_closed_never_minus_one(mask: MaskFD) -> None:
    mask.close()
    with pytest.raises(ValueError, match="closed"):
        mask.fds()


def test_from_fds_takes_fd_numbers_only(mask: MaskFD) -> None:
    with pytest.raises(TypeError, match="fd numbers"):
        MaskFD.from_fds(memfd_of(mask), mask)  # type: ignore[arg-type]


# -- a peer that scribbles on the page ---------------------------------------------

_HOLDER = r"""
import ctypes, json, os, random, select, sys, time
from eventfd_ext import MaskFD

seed, fds = int(sys.argv[1]), [int(x) for x in sys.argv[2:]]
m = MaskFD.from_fds(*fds)

# PROT_NONE pages right below and above this process's mapping of the page,
# where the address space allows: a touch outside the page there is SIGSEGV.
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x02, 0x20, 0x100000
guards = 0
with open("/proc/self/maps") as maps:
    spans = [line.split()[0] for line in maps if "eventfd_ext-maskfd" in line]
for span in spans:
    lo, hi = (int(x, 16) for x in span.split("-"))
    for at in (lo - 4096, hi):
        got = libc.mmap(at, 4096, 0, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
        guards += got == at
print("ready", flush=True)

IN, PRI, OUT, ERR, HUP = (select.POLLIN, select.POLLPRI, select.POLLOUT,
                          select.POLLERR, select.POLLHUP)
rng = random.Random(seed)
ops = errors = adopted = refused = 0
kinds = {}
try:
    while True:
        op = rng.randrange(12)
        try:
            if op == 0:
                m.set(rng.choice([IN, PRI, OUT, ERR, HUP, IN | OUT]))
            elif op == 1:
                m.clear(rng.choice([IN, PRI, OUT, ERR, HUP, IN | OUT]))
            elif op == 2:
                m.write(rng.randrange(32), rng.getrandbits(64))
            elif op == 3:
                m.update(set=rng.randrange(32), clear=rng.randrange(32), data=ops)
            elif op == 4:
                events, data = m.read()
                assert 0 <= events <= 0x1F and 0 <= data < 2**64, (events, data)
            elif op == 5:
                m.limits()
            elif op == 6:
                repr(m)
            elif op == 7:
                assert len(m.read_bytes()) == 12
            elif op == 8:
                p = select.poll()
                p.register(m.fileno(), IN | PRI | OUT)
                p.poll(0)
            elif op == 9:
                m.syscalls
                m.backing
            elif op == 10:
                extra = [os.dup(fd) for fd in fds]
                try:
                    MaskFD.from_fds(*extra).close()
                    adopted += 1
                except ValueError:
                    refused += 1
                    for fd in extra:
                        os.close(fd)
            else:
                m.events, m.data
        except (OSError, ValueError) as exc:
            errors += 1
            name = type(exc).__name__ + ":" + str(getattr(exc, "errno", ""))
            kinds[name] = kinds.get(name, 0) + 1
        ops += 1
except KeyboardInterrupt:
    pass
m.close()
print(json.dumps({"ops": ops, "errors": errors, "kinds": kinds, "guards": guards,
                  "adopted": adopted, "refused": refused}), flush=True)
"""


def _scribble(page: mmap.mmap, rng: random.Random, holder: int) -> None:
    """One round: random bytes over the whole page, or over the state's
    first words, or a plausible lie in one word (a live pid as the lock
    holder, huge indices and counts)."""
    how = rng.randrange(4)
    if how == 0:
        page[:] = rng.randbytes(PAGE)
    elif how == 1:
        start = rng.randrange(256)
        end = rng.randrange(start, 257)
        page[start:end] = rng.randbytes(end - start)
    elif how == 2:
        at = rng.randrange(0, 256, 4)
        word = rng.choice([0, 1, 2, 3, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, holder, os.getpid()])
        page[at : at + 4] = word.to_bytes(4, sys.byteorder)
    else:
        page[0:4] = rng.choice([holder, os.getpid(), 0x80000000 | holder]).to_bytes(
            4, sys.byteorder
        )


SCRIBBLE_RUNS = [
    pytest.param(1.0, [1], id="ci"),
    pytest.param(3.0, [2, 3, 4, 5, 6], id="full", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("seconds", "seeds"), SCRIBBLE_RUNS)
@pytest.mark.parametrize("backing", BACKINGS)
def test_a_peer_scribbling_on_the_page_never_crashes_or_wedges_a_holder(
    backing: Backing, seconds: float, seeds: list[int]
) -> None:
    """A peer writes random bytes over the shared page, round after round,
    while a holder process calls every method.  The holder may see wrong
    state or get clear errors (OSError, ValueError), but must not die of a
    signal (SIGSEGV, SIGBUS, SIGABRT from a libc assertion), must keep
    making calls, and must leave within a bounded time at Ctrl-C.  PROT_NONE
    guard pages around its mapping catch a touch just outside the page."""
    for seed in seeds:
        with MaskFD(backing=backing) as m:
            fds = tuple(os.dup(fd) for fd in m.fds())  # this process holds no MaskFD
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _HOLDER, str(seed), *map(str, fds)],
                pass_fds=fds,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                assert proc.stdout is not None
                assert select.select([proc.stdout], [], [], LIMIT)[0], "holder did not start"
                assert proc.stdout.readline() == "ready\n"
                rng = random.Random(seed)
                rounds = 0
                with mmap.mmap(fds[0], PAGE) as page:
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline and proc.poll() is None:
                        _scribble(page, rng, proc.pid)
                        rounds += 1
                proc.send_signal(signal.SIGINT)
                asked = time.monotonic()
                out, err = proc.communicate(timeout=LIMIT)
                left = time.monotonic() - asked
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        finally:
            for fd in fds:
                os.close(fd)
        assert proc.returncode == 0, (
            f"{backing} seed {seed}: holder ended with {proc.returncode} "
            f"(negative: killed by that signal)\n{err[-3000:]}"
        )
        report = json.loads(out.splitlines()[-1])
        print(
            f"{backing} seed {seed}: {rounds} scribbles, {left * 1000:.0f} ms to leave "
            f"at Ctrl-C, {report}"
        )
        assert left < 2.0, f"{left:.2f} s to leave after Ctrl-C"
        assert report["ops"] >= 50, report  # it kept making calls


_EVERY_WORD = r"""
import json, mmap, os, select, sys
from eventfd_ext import MaskFD
from eventfd_ext._shim import lib

IN, PRI, OUT, ERR, HUP = (select.POLLIN, select.POLLPRI, select.POLLOUT,
                          select.POLLERR, select.POLLHUP)
backing = sys.argv[1]
baseline = len(os.listdir("/proc/self/fd"))
leaks, errors, cases = [], 0, 0
for at in range(0, 256, 4):
    for value in (1, 2, 3, 0xFFFFFFFF, 0x80000000):
        if at == 0 and value < 4:
            continue  # pids 1-3 live: a lock "held" by them is waited for
        m = MaskFD(backing=backing)
        with mmap.mmap(lib.mfx_memfd(m._m), 4096) as page:
            page[at:at + 4] = value.to_bytes(4, sys.byteorder)
        for step in (lambda: m.set(IN), lambda: m.set(HUP), lambda: m.clear(HUP),
                     lambda: m.set(OUT), lambda: m.clear(IN | OUT), lambda: m.set(PRI),
                     lambda: m.clear(PRI), lambda: m.set(ERR), lambda: m.clear(ERR),
                     lambda: m.write(IN, 1), m.read, m.limits, lambda: repr(m)):
            try:
                step()
            except (OSError, ValueError):
                errors += 1
        m.close()
        cases += 1
        now = len(os.listdir("/proc/self/fd"))
        if now != baseline:
            leaks.append((at, value, now - baseline))
            baseline = now
print(json.dumps({"cases": cases, "errors": errors, "leaks": leaks}))
"""


@pytest.mark.parametrize("backing", BACKINGS)
def test_every_shared_word_lied_about_in_the_creator(backing: Backing) -> None:
    """Deterministic beside the random scribbler, and in the creating
    process (the one that holds a pipe's writer): each of the state's first
    64 words set to 1, 2, 3, all ones or the waiters bit, then every change:
    no crash, no hang, and not one fd leaked (a pipe state claiming HUP
    while its writer was open made the shim open a second writer over it)."""
    done = subprocess.run(
        [sys.executable, "-c", _EVERY_WORD, backing],
        capture_output=True,
        text=True,
        timeout=LIMIT * 2,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["cases"] >= 300, report
    assert report["leaks"] == [], report
