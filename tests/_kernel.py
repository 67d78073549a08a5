"""The kernel as the tests' oracle, read without going through eventfd_ext.

Helpers shared by the foundation tests: the counter of any eventfd straight
from /proc/self/fdinfo, a non-blocking drain, the process's open fds, and a
call that must finish within a time bound.
"""

from __future__ import annotations

import fcntl
import os
import resource
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

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


def high_fd(fd: int) -> int:
    """Move fd to a number near the fd limit and return it.

    fds are allocated lowest first, so once such a number is freed nothing
    else takes it while a test checks that it was closed.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, soft - 16)
    os.close(fd)
    return high


def open_fds() -> set[int]:
    """The fd numbers open in this process."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


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


# System call numbers of the calls a test waits inside, per machine (each
# name also covers the variants libc may use: ppoll, pselect6, epoll_pwait*).
_SYSCALLS = {
    "x86_64": {
        "read": {0}, "write": {1}, "poll": {7, 271}, "select": {23, 270},
        "epoll_wait": {232, 281, 441},
    },
    "aarch64": {
        "read": {63}, "write": {64}, "poll": {73}, "select": {72},
        "epoll_wait": {22, 441},
    },
}


def wait_in_syscall(thread: threading.Thread, name: str, timeout: float = 10.0) -> bool:
    """Wait until thread sleeps inside system call *name* (True), or timeout.

    Reads /proc/self/task/TID/syscall (a real signal, not a sleep).  False
    when this machine's numbers are unknown or /proc does not tell; callers
    use it only to make sure the blocking path is the one exercised.
    """
    wanted = _SYSCALLS.get(os.uname().machine, {}).get(name, set())
    if not wanted:
        return False
    path = f"/proc/self/task/{thread.native_id}/syscall"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        try:
            with open(path, encoding="ascii") as f:
                first = f.read().split(maxsplit=1)[0]
        except (OSError, IndexError):
            return False
        if first.lstrip("-").isdigit() and int(first) in wanted:
            return True
        os.sched_yield()
    return False
