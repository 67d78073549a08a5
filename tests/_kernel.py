"""What the tests share: the kernel as the oracle, read without going
through eventfd_ext, and the helpers that make a hang a failure.

- the oracle: an eventfd's counter straight from /proc/self/fdinfo, raw
  reads and writes, raw SCM_RIGHTS messages, the process's open fds and
  shared mappings, the C heap and the RSS;
- blocking: ``blocked_in`` / ``wait_in_syscall`` wait until a thread sleeps
  in a given syscall, read from /proc (the kernel's own word, so no sleep
  stands in for synchronisation); ``in_thread`` and ``Child`` run a function
  in a thread or a forked child, joined with a deadline;
- ``handshakes``: the wake-up tests' harness; ``nothing_warned``: no warning
  escapes, finalizers' included; ``record``: a figure for
  docs/reliability.md (figures.py collects them).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import gc
import json
import os
import pathlib
import platform
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

_T = TypeVar("_T")

#: The largest count userspace can give the counter.
MAX = 2**64 - 2


def fdinfo(fd: int) -> dict[str, str]:
    """The kernel's fields for fd (raises FileNotFoundError if it is closed)."""
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def count(fd: int) -> int:
    """The eventfd's counter, not consumed."""
    return int(fdinfo(fd)["eventfd-count"], 16)


def eventfd_id(fd: int) -> str | None:
    """The system-wide id of the eventfd behind fd (None: not an eventfd)."""
    try:
        return fdinfo(fd).get("eventfd-id")
    except FileNotFoundError:
        return None


def raw_read_nowait(fd: int) -> int | None:
    """One read(2) of the counter that never blocks: the value, or None on EAGAIN."""
    blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)
    try:
        return int(struct.unpack("=Q", os.read(fd, 8))[0])
    except BlockingIOError:
        return None
    finally:
        os.set_blocking(fd, blocking)


def raw_write(fd: int, value: int) -> None:
    """One write(2) of value (any 64-bit pattern) to the counter."""
    os.write(fd, struct.pack("=Q", value))


def send_raw(sock: socket.socket, fds: list[int], data: bytes = b"E") -> None:
    """Send one message of *data* carrying *fds* (SCM_RIGHTS), or none:
    what eventfd_ext's receivers must cope with, made without its senders."""
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def high_fd(fd: int) -> int:
    """Move fd to a number near the fd limit and return it.

    fds are allocated lowest first, so once such a number is freed nothing
    else takes it while a test checks that it was closed.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, soft - 16)
    os.close(fd)
    return high


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run fn in a daemon thread; the dict gets 'result' or 'error' when it ends."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as e:  # handed to the test, which re-raises it
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


#: Generous bound on any single wait: past it, the test fails (a lost wakeup
#: or a hang), never the whole suite.
TIMEOUT = 30.0

# System call numbers, per machine, of the calls a blocked thread sleeps in.
_SYSCALLS = {
    "x86_64": {
        "read": 0,
        "write": 1,
        "poll": 7,
        "ppoll": 271,
        "select": 23,
        "futex": 202,
        "pselect6": 270,
        "epoll_wait": 232,
        "epoll_pwait": 281,
        "epoll_pwait2": 441,
    },
    "aarch64": {
        "read": 63,
        "write": 64,
        "ppoll": 73,
        "pselect6": 72,
        "futex": 98,
        "epoll_pwait": 22,
        "epoll_pwait2": 441,
    },
}
# A name that stands for the variants libc may use instead.
_FAMILIES = {
    "poll": ("poll", "ppoll"),
    "select": ("select", "pselect6"),
    "epoll_wait": ("epoll_wait", "epoll_pwait", "epoll_pwait2"),
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


@contextlib.contextmanager
def fd_limit(headroom: int) -> Iterator[int]:
    """RLIMIT_NOFILE lowered to *headroom* above the highest open fd (the
    limit is yielded), restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = max(open_fds()) + headroom
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def is_open(fd: int) -> bool:
    """Whether *fd* is an open file descriptor of this process."""
    try:
        os.fstat(fd)
    except OSError:
        return False
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


def shared_mappings() -> list[str]:
    """This process's MAP_SHARED mappings, as /proc/self/maps lists them: a
    Doorbell or MaskFD maps its memfd so, and a leaked one stays listed."""
    with open("/proc/self/maps") as f:
        return [line for line in f if line.split()[1].endswith("s")]


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


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
                # The report is best effort: the exit status says it failed.
                with contextlib.suppress(BaseException):
                    os.write(w, traceback.format_exc().encode())
            finally:
                os._exit(code)
        os.close(w)
        self.pid = pid
        self._report = r
        self.status: int | None = None

    def poll(self) -> bool:
        """Whether the child has exited (reaping it if so); never waits."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None

    def join(self, timeout: float = TIMEOUT) -> int:
        """Wait for the child; kill it and fail if it outlives *timeout*."""
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"child {self.pid} still running after {timeout} s")
            time.sleep(0.001)  # waitpid has no timeout; the child's exit is the event
        assert self.status is not None  # poll() said so
        return self.status

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send *sig* and reap the child (reaping only for SIGKILL)."""
        if self.status is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
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


def handshakes(
    peer: str,
    rounds: int,
    ping: _T,
    pong: _T,
    *,
    ring: Callable[[_T, int], object],
    waiter: Callable[[_T], Callable[[int], object]],
    release: Callable[[], object],
    in_child: Callable[[], object] = lambda: None,
) -> dict[str, float]:
    """*rounds* set/clear handshakes between this side and a *peer* (a forked
    "process" or a "thread"): this side rings *ping* and waits on *pong*,
    the peer waits on *ping* and rings *pong*.  ``waiter(obj)`` makes the
    wait of one side (called once per side, in that side), which raises
    with its round if woken late or wrongly.  A failure of this side is the
    report: the peer is stopped (killed, or let out by *release*) without
    its own complaint hiding it.  Returns the round-trip latency figures.
    *in_child* runs first in a forked peer (e.g. installs a signal handler).
    """

    def peer_side() -> None:
        if peer == "process":
            in_child()
        wait = waiter(ping)
        for rnd in range(rounds):
            wait(rnd)
            ring(pong, rnd)

    if peer == "process":
        child = Child(peer_side)
    else:
        thread, out = in_thread(peer_side)
    latencies: list[float] = []
    try:
        wait = waiter(pong)
        clock = time.perf_counter
        for rnd in range(rounds):
            t0 = clock()
            ring(ping, rnd)
            wait(rnd)
            latencies.append(clock() - t0)
    except BaseException:
        if peer == "process":
            child.close()
        else:
            release()
            thread.join(TIMEOUT)
        raise
    if peer == "process":
        try:
            child.check()
        finally:
            child.close()
    else:
        join_thread(thread)
        assert "error" not in out, out
    latencies.sort()
    return {
        "rounds": rounds,
        "completed": len(latencies),
        "p50_us": round(latencies[len(latencies) // 2] * 1e6, 1),
        "p99_us": round(latencies[len(latencies) * 99 // 100] * 1e6, 1),
        "max_us": round(latencies[-1] * 1e6, 1),
    }


def wait_in_syscall(thread: threading.Thread, name: str, timeout: float = 10.0) -> bool:
    """Wait until *thread* sleeps inside system call *name* (a name of
    ``_FAMILIES`` covers its variants): True, or the test fails.  Callers
    assert it, so that a test of the blocking path knows it took it."""
    assert thread.native_id is not None, "the thread has not started"
    return blocked_in(thread.native_id, _FAMILIES.get(name, (name,)), timeout)


@contextlib.contextmanager
def nothing_warned() -> Iterator[None]:
    """Fail if anything inside warns, also from a ``__del__``: a warning
    raised there (under "error") goes to sys.unraisablehook, not to the
    caller, so ``simplefilter("error")`` alone would let it pass.  Collects
    garbage before leaving, so that finalizers run inside."""
    seen: list[Any] = []
    old = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield
            gc.collect()
    finally:
        sys.unraisablehook = old
    assert not seen, [f"{u.exc_type.__name__}: {u.exc_value}" for u in seen]


def run_script(code: str, tmp_path: pathlib.Path, timeout: float = 3 * TIMEOUT) -> str:
    """Run *code* as a script file of its own (multiprocessing's spawn
    re-imports the main module, which ``-c`` has not) in a fresh
    interpreter with warnings as errors; its stdout, once it exits 0."""
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout
