"""The kernel features the package needs beyond eventfd2, each checked at
first use with an error that names it (eventfd_ext/_requirements.py holds
the table; README's Requirements section states it).

An older kernel is simulated in a child process: a seccomp filter makes the
syscall behind a feature fail the way a kernel without it fails.  Here:
preadv2 on an eventfd gives EOPNOTSUPP, as before Linux 5.10, when eventfds
did not accept RWF_NOWAIT.
"""

from __future__ import annotations

import errno
import platform
import subprocess
import sys
import textwrap

import pytest

from _kernel import TIMEOUT

# (AUDIT_ARCH_*, __NR_preadv2) of the architectures the wheels are built for.
SECCOMP_ARCH = {"x86_64": (0xC000003E, 327), "aarch64": (0xC00000B7, 286)}

REFUSE_PREADV2 = """
import ctypes, errno, struct

def refuse(arch, nr, err):
    # A classic BPF program: this architecture's syscall nr fails with err.
    program = [
        (0x20, 0, 0, 4),                    # A = seccomp_data.arch
        (0x15, 0, 3, arch),                 # another arch: allow
        (0x20, 0, 0, 0),                    # A = seccomp_data.nr
        (0x15, 0, 1, nr),                   # another syscall: allow
        (0x06, 0, 0, 0x00050000 | err),     # SECCOMP_RET_ERRNO | err
        (0x06, 0, 0, 0x7FFF0000),           # SECCOMP_RET_ALLOW
    ]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(program), ctypes.addressof(code))
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(
        PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0
    ):
        raise OSError(ctypes.get_errno(), "seccomp")
"""


def run_on_an_old_kernel(body: str) -> str:
    """Run *body* in a child whose preadv2 fails with EOPNOTSUPP."""
    if platform.machine() not in SECCOMP_ARCH:
        pytest.skip(f"no seccomp syscall table here for {platform.machine()}")
    arch, nr = SECCOMP_ARCH[platform.machine()]
    code = REFUSE_PREADV2 + f"refuse({arch}, {nr}, {errno.EOPNOTSUPP})\n" + textwrap.dedent(body)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def assert_names_the_feature(out: str, count: str, call: str) -> None:
    """*out*: the refusal's errno and text, then the count left behind; the
    text names *call*, the call refused."""
    refusal, left = out.splitlines()
    assert refusal.startswith(f"{errno.EOPNOTSUPP} {call} needs "), refusal
    assert "RWF_NOWAIT" in refusal, refusal
    assert "Linux >= 5.10" in refusal, refusal
    assert left == count, "the refused read took the count"


def test_the_simulation_is_an_old_kernel() -> None:
    """Without the package: a RWF_NOWAIT read of an eventfd is refused as
    Linux < 5.10 refuses it, and a plain read still works."""
    out = run_on_an_old_kernel(
        """
        import os
        fd = os.eventfd(1)
        try:
            os.preadv(fd, [bytearray(8)], -1, os.RWF_NOWAIT)
        except OSError as exc:
            print(exc.errno)
        print(os.eventfd_read(fd))
        """
    )
    assert out.split() == [str(errno.EOPNOTSUPP), "1"]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ("efd.read()", "read()"),
        ("efd.try_read()", "try_read()"),
        ("efd.read(timeout=1)", "read()"),
        ("asyncio.run(efd.aread())", "aread()"),
    ],
)
@pytest.mark.parametrize("modes", ["", "nonblocking=True", "semaphore=True, nonblocking=True"])
def test_an_eventfd_read_names_what_the_kernel_lacks(call: str, named: str, modes: str) -> None:
    """With a count to take, in every mode: a non-blocking EventFD's read()
    names the feature too, not "would block"."""
    out = run_on_an_old_kernel(
        f"""
        import asyncio
        from eventfd_ext import EventFD
        with EventFD(5, {modes}) as efd:
            try:
                {call}
            except OSError as exc:
                print(exc.errno, exc.strerror)
            print(efd.peek())   # nothing taken
        """
    )
    assert_names_the_feature(out, count="5", call=f"EventFD.{named}")


# The child's helper: write *value* once *n* readers sleep in *bell* (the
# page's sleepers count), so that each call below sleeps before it is woken.
RING_WHEN_ASLEEP = """
import os, threading

def ring_when_asleep(bell, n=1, value=2):
    def ring():
        while bell._info()[1] < n:  # the page's sleepers
            os.sched_yield()
        bell.write(value)
    threading.Thread(target=ring, daemon=True).start()
"""

# Each sleeps in the Doorbell until a write wakes it, and prints what it
# got.  On this kernel the eventfd's tokens are read with read(2).
DOORBELL_SLEEPS = {
    "read": "ring_when_asleep(bell); print(bell.read())",
    "read(timeout)": "ring_when_asleep(bell); print(bell.read(timeout=60))",
    "wait": "ring_when_asleep(bell); print(bell.wait(60), bell.read())",
    # The write runs once the task awaits the eventfd.
    "await_readable": "asyncio.run(main(bell)); print(bell.read())",
}


@pytest.mark.parametrize("sleeps", DOORBELL_SLEEPS)
@pytest.mark.parametrize("adopt", [False, True])
def test_a_doorbell_sleeps_on_an_old_kernel(sleeps: str, adopt: bool) -> None:
    """The Doorbell's eventfd is non-blocking (made so by from_fds when it
    adopts a blocking one), so its wake-ups are read with read(2): its
    sleeping calls need no RWF_NOWAIT."""
    out = run_on_an_old_kernel(
        RING_WHEN_ASLEEP
        + f"""
import asyncio
from eventfd_ext import Doorbell

async def main(bell):
    asyncio.get_running_loop().call_soon(bell.write, 2)
    await bell.await_readable()

bell = Doorbell(spin=0)
if {adopt}:  # a blocking eventfd, as another holder may pass it on
    memfd, efd = (os.dup(fd) for fd in bell.fds())
    bell.close()
    os.set_blocking(efd, True)
    bell = Doorbell.from_fds(memfd, efd, spin=0)
with bell:
    {DOORBELL_SLEEPS[sleeps]}
    print(bell.peek())
"""
    )
    got = "True 2" if sleeps == "wait" else "2"
    assert out.splitlines() == [got, "0"]


def test_a_semaphore_doorbell_wakes_two_sleeping_threads_on_an_old_kernel() -> None:
    out = run_on_an_old_kernel(
        RING_WHEN_ASLEEP
        + """
from eventfd_ext import Doorbell
got = []
with Doorbell(semaphore=True, spin=0) as bell:
    readers = [threading.Thread(target=lambda: got.append(bell.read())) for _ in range(2)]
    for reader in readers:
        reader.start()
    ring_when_asleep(bell, n=2)
    for reader in readers:
        reader.join()
    print(got, bell.peek())
"""
    )
    assert out.split() == ["[1,", "1]", "0"]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ("ring_when_asleep(bell, value=1); bell.read()", "read()"),
        ("ring_when_asleep(bell, value=1); bell.read(timeout=60)", "read()"),
        ("ring_when_asleep(bell, value=1); bell.wait(60)", "wait()"),
        ("asyncio.run(main(bell))", "await_readable()"),
    ],
)
def test_a_doorbell_whose_eventfd_was_made_blocking_names_what_the_kernel_lacks(
    call: str, named: str
) -> None:
    """A holder that makes the eventfd blocking (fcntl) leaves read(2) able
    to block: the sleeping call is refused, naming itself and the feature."""
    out = run_on_an_old_kernel(
        RING_WHEN_ASLEEP
        + f"""
import asyncio
from eventfd_ext import Doorbell

async def main(bell):
    asyncio.get_running_loop().call_soon(bell.write, 1)
    await bell.await_readable()

with Doorbell(spin=0) as bell:
    os.set_blocking(bell.fds()[1], True)
    try:
        {call}
    except OSError as exc:
        print(exc.errno, exc.strerror)
    print(bell.read())              # nothing taken
"""
    )
    assert_names_the_feature(out, count="1", call=f"Doorbell.{named}")


def test_what_needs_no_more_than_eventfd2_works_on_an_old_kernel() -> None:
    """The drop-ins read with read(2), and a Doorbell takes a count from its
    shared page: neither needs the feature."""
    out = run_on_an_old_kernel(
        """
        from eventfd_ext import Doorbell, eventfd, eventfd_read, eventfd_write
        fd = eventfd(0)
        eventfd_write(fd, 2)
        print(eventfd_read(fd))
        with Doorbell(3) as bell:
            print(bell.read())
        """
    )
    assert out.split() == ["2", "3"]
