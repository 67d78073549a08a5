"""MaskFD's small lifecycle promises: ``repr`` never
raises, whenever ``close()`` lands; ``fds()`` never returns -1; a half-built
MaskFD never warns "unclosed"; ``__del__`` closes every fd even when one
close fails."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from types import FrameType
from typing import Any

import pytest

from _kernel import is_open
from eventfd_ext import MaskFD
from eventfd_ext._backings import Backing
from eventfd_ext._shim import lib
from maskfd_helpers import IN, OUT

BACKINGS: list[Backing] = ["stream", "dgram", "pipe"]


# -- repr ---------------------------------------------------------------------------


def _lines_of_repr(m: MaskFD, close_at: int) -> tuple[int, str]:
    """repr(m), closing m from the tracer at the close_at-th line event
    (every Python line run inside repr, in any frame); (line events seen,
    the text)."""
    seen = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal seen
        if event == "line":
            seen += 1
            if seen == close_at:
                m.close()  # the tracer is not traced: close runs whole
        return tracer

    sys.settrace(tracer)
    try:
        text = repr(m)
    finally:
        sys.settrace(None)
    return seen, text


@pytest.mark.parametrize("backing", BACKINGS)
def test_repr_never_raises_whichever_line_close_lands_on(backing: Backing) -> None:
    """close() run at each line of repr in turn (deterministic, through a
    trace function): repr returns a text every time, never raises.  (It
    raised ValueError when close came between its closed check and its
    read of the state.)"""
    with MaskFD(IN, 7, backing=backing) as m:
        total, text = _lines_of_repr(m, close_at=0)
        assert "data=0x7" in text
    assert total >= 2
    for at in range(1, total + 1):
        m = MaskFD(IN, 7, backing=backing)
        _, text = _lines_of_repr(m, close_at=at)
        assert text.startswith("<MaskFD"), (at, text)
        assert m.closed
        assert repr(m) == "<MaskFD [closed]>"


def test_repr_never_raises_racing_close_from_other_threads() -> None:
    failures: list[BaseException] = []
    for _ in range(200):
        m = MaskFD(IN | OUT, 3)
        go = threading.Barrier(4)

        def show(m: MaskFD, go: threading.Barrier) -> None:
            go.wait(10)
            try:
                for _ in range(50):
                    repr(m)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=show, args=(m, go)) for _ in range(3)]
        for t in threads:
            t.start()
        go.wait(10)
        m.close()
        for t in threads:
            t.join(10)
            assert not t.is_alive()
    assert not failures, failures[:3]


# -- fds() --------------------------------------------------------------------------


def test_fds_never_returns_minus_one_racing_close() -> None:
    """Threads call fds() while the main thread closes: each call returns
    valid numbers or raises ValueError (closed), never a -1."""
    bad: list[object] = []
    for _ in range(200):
        m = MaskFD()
        go = threading.Barrier(3)

        def take(m: MaskFD, go: threading.Barrier) -> None:
            go.wait(10)
            for _ in range(50):
                try:
                    fds = m.fds()
                except ValueError as exc:
                    if "closed" not in str(exc):
                        bad.append(exc)
                    return
                except BaseException as exc:
                    bad.append(exc)
                    return
                if min(fds) < 0:
                    bad.append(fds)

        threads = [threading.Thread(target=take, args=(m, go)) for _ in range(2)]
        for t in threads:
            t.start()
        go.wait(10)
        m.close()
        for t in threads:
            t.join(10)
    assert not bad, bad[:3]


# -- half-built objects ---------------------------------------------------------------

_EXHAUSTED = """
    import errno, gc, json, os, resource, select, warnings
    from eventfd_ext import MaskFD

    IN, OUT, HUP = select.POLLIN, select.POLLOUT, select.POLLHUP
    emfile = built = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        base = max(int(n) for n in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (base + 16, hard))
        fillers = []
        while True:  # every free fd under the limit, holes included
            try:
                fillers.append(os.dup(0))
            except OSError:
                break
        for backing, events in (("stream", IN | OUT), ("dgram", IN), ("pipe", IN | HUP)):
            for free in range(8):  # 0, 1, 2, ... fds free: each step of creation fails
                for fd in fillers[:free]:
                    os.close(fd)
                try:
                    m = MaskFD(events, 5, backing=backing)
                except OSError as exc:
                    assert exc.errno == errno.EMFILE, exc
                    emfile += 1
                else:
                    built += 1
                    m.close()
                fillers[:free] = [os.dup(0) for _ in range(free)]
                gc.collect()
        for fd in fillers:
            os.close(fd)
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    print(json.dumps({"emfile": emfile, "built": built, "unclosed": unclosed}))
"""


def test_half_built_maskfd_never_warns_unclosed() -> None:
    """In a child whose RLIMIT_NOFILE leaves 0, 1, 2, ... fds free, MaskFD()
    fails with EMFILE at each step of its creation: no ResourceWarning
    "unclosed" may follow about an object nobody received."""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", textwrap.dedent(_EXHAUSTED)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["emfile"] >= 6, report
    assert report["built"] >= 3, report
    assert report["unclosed"] == [], report
    assert "unclosed" not in done.stderr
    assert "ResourceWarning" not in done.stderr


# -- __del__ ------------------------------------------------------------------------


@pytest.mark.parametrize("backing", BACKINGS)
def test_del_closes_every_fd_even_when_one_close_fails(backing: Backing) -> None:
    """The peer closed behind the object's back (its close then fails with
    EBADF), and the warning itself raising (-W error::ResourceWarning):
    collecting the MaskFD still closes the handed-out fd and the memfd."""
    m = MaskFD(IN, backing=backing)
    fd, memfd, peer = m.fileno(), int(lib.mfx_memfd(m._m)), int(lib.mfx_peer_fd(m._m))
    os.close(peer)
    unraisable: list[Any] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            del m
            gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert any(isinstance(u.exc_value, ResourceWarning) for u in unraisable), unraisable
    assert not is_open(fd)
    assert not is_open(memfd)
