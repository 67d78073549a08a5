"""Helpers shared by the reliability and concurrency tests.

- ``blocked_in``: wait until a thread sleeps in a given syscall, read from
  /proc (the kernel's own word, so no sleep stands in for synchronisation).
- ``fork_call`` / ``Child``: run a function in a forked child that can never
  return into pytest, and join it with a deadline (a hang becomes a failure).
- ``record``: note a figure for docs/reliability.md; figures.py collects them.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable

import pytest

#: Generous bound on any single wait: past it, the test fails (a lost wakeup
#: or a hang), never the whole suite.
TIMEOUT = 30.0

# Syscall numbers a thread blocked in eventfd_ext sits in, per architecture.
_SYSCALLS = {
    "x86_64": {"read": 0, "write": 1, "poll": 7, "ppoll": 271, "epoll_wait": 232,
               "epoll_pwait": 281, "pselect6": 270, "select": 23},
    "aarch64": {"read": 63, "write": 64, "ppoll": 73, "epoll_pwait": 22,
                "pselect6": 72},
}


def syscall_numbers(*names: str) -> set[int]:
    """The numbers of the named syscalls here (skips on an unknown arch)."""
    table = _SYSCALLS.get(platform.machine())
    if table is None:
        pytest.skip(f"syscall numbers unknown for {platform.machine()}")
    return {table[n] for n in names if n in table}


_GONE = -1


def _current_syscall(tid: int, pid: int | str) -> int | None:
    """The syscall thread *tid* of process *pid* sleeps in, None if it is
    not asleep in one, _GONE if it has exited."""
    if not os.path.exists(f"/proc/{pid}/task/{tid}"):
        return _GONE
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return None
    if state != "S" or not fields or fields[0] == "running":
        return None
    return int(fields[0])


def blocked_in(
    tid: int,
    names: tuple[str, ...],
    timeout: float = TIMEOUT,
    pid: int | str = "self",
    stop: threading.Event | None = None,
) -> bool:
    """Return True once thread *tid* (of process *pid*) sleeps in one of the
    syscalls *names*; False at once if *stop* gets set (the caller is done,
    e.g. the call failed).  Fails the test if neither within *timeout* s.
    """
    wanted = syscall_numbers(*names)
    deadline = time.monotonic() + timeout
    while (now := _current_syscall(tid, pid)) not in wanted:
        if stop is not None and stop.is_set():
            return False
        if now == _GONE:
            pytest.fail(f"thread {tid} exited before blocking in {names}")
        if time.monotonic() > deadline:
            pytest.fail(f"thread {tid} not blocked in {names} after {timeout} s")
        time.sleep(0.0005)  # polling the kernel's state; there is no event for it
    return True


def open_fds() -> set[int]:
    """The fd numbers open in this process (also when none is free)."""
    try:
        return {int(n) for n in os.listdir("/proc/self/fd")}
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            raise
    # Listing needs an fd; fstat needs none.
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    found = set()
    for fd in range(limit):
        try:
            os.fstat(fd)
        except OSError:
            continue
        found.add(fd)
    return found


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def c_heap_in_use() -> int | None:
    """Bytes malloc() has handed out and not had back (glibc mallinfo2), or
    None where that is unknown.  Unlike RSS, it moves with every leak, even
    one that fits in memory freed earlier."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except AttributeError:  # not glibc >= 2.33
        return None
    mallinfo2.restype = _Mallinfo2
    return int(mallinfo2().uordblks)


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Child:
    """A forked child running one function; exit status 0 means it returned.

    The child reports a failure's traceback through a pipe, so that the
    parent's assertion shows it.
    """

    def __init__(self, fn: Callable[[], object]) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 0
            try:
                os.close(r)
                fn()
            except BaseException:
                code = 1
                try:
                    os.write(w, traceback.format_exc().encode())
                except BaseException:
                    pass
            finally:
                os._exit(code)
        os.close(w)
        self.pid = pid
        self._report = r
        self.status: int | None = None

    def join(self, timeout: float = TIMEOUT) -> int:
        """Wait for the child; kill it and fail if it outlives *timeout*."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                break
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"child {self.pid} still running after {timeout} s")
            time.sleep(0.001)  # waitpid has no timeout; the child's exit is the event
        return self.status

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send *sig* and reap the child (reaping only for SIGKILL)."""
        if self.status is not None:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            self.status = os.waitpid(self.pid, 0)[1]

    def check(self, timeout: float = TIMEOUT) -> None:
        """Join, and fail with the child's traceback unless it exited 0."""
        status = self.join(timeout)
        with os.fdopen(self._report, "rb") as f:
            self._report = -1
            report = f.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0:
            pytest.fail(f"child failed ({os.waitstatus_to_exitcode(status)}):\n{report}")

    def close(self) -> None:
        """Kill the child if still running and close the report pipe."""
        self.kill()
        if self._report >= 0:
            os.close(self._report)
            self._report = -1


def run_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Start *fn* in a daemon thread; exceptions land in the returned list."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # reported to the test, not lost
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, errors


def join_thread(t: threading.Thread, timeout: float = TIMEOUT) -> None:
    """Join *t*, failing the test if it is still alive after *timeout*."""
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"thread {t.name} still running after {timeout} s")


def record(name: str, value: object) -> None:
    """Note figure *name* when figures.py runs the tests (EFX_FIGURES set)."""
    path = os.environ.get("EFX_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"name": name, "value": value}) + "\n")
