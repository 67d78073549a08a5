"""EventFD across processes: fork, multiprocessing (spawn, forkserver),
subprocess pass_fds + from_fd, and SCM_RIGHTS over a UNIX socket.

"The same kernel object" is checked through the eventfd-id that
/proc/self/fdinfo shows (one system-wide id per eventfd, shared by every fd
on it), and by a write on one side being read on the other, both ways.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from multiprocessing import resource_sharer
from multiprocessing.context import ForkServerContext, SpawnContext

import pytest

from _kernel import send_raw
from eventfd_ext import EventFD, recv_eventfd, send_eventfd

TIMEOUT = 10.0


def eventfd_id(fd: int) -> str:
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "eventfd-id":
                return value.strip()
    pytest.skip("this kernel's fdinfo has no eventfd-id (before Linux 5.2)")


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.fixture
def pair() -> Iterator[tuple[EventFD, EventFD]]:
    """(to_child, to_parent): one EventFD for each direction."""
    with EventFD() as to_child, EventFD() as to_parent:
        yield to_child, to_parent


# -- fork -----------------------------------------------------------------


def test_fork_shares_the_eventfd(pair: tuple[EventFD, EventFD]) -> None:
    to_child, to_parent = pair
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: inherited objects, same fds
        code = 1
        try:
            os.close(report_r)
            ids = f"{eventfd_id(to_child.fileno())} {eventfd_id(to_parent.fileno())}"
            os.write(report_w, ids.encode())
            to_parent.write(2 * to_child.read(timeout=TIMEOUT))
            code = 0
        finally:
            os._exit(code)
    os.close(report_w)
    try:
        to_child.write(21)
        assert to_parent.read(timeout=TIMEOUT) == 42
        with os.fdopen(report_r, "rb") as report:
            ids = report.read().decode()
    finally:
        _, status = os.waitpid(pid, 0)  # bounded: the child waits with timeouts
    assert os.waitstatus_to_exitcode(status) == 0
    assert ids == f"{eventfd_id(to_child.fileno())} {eventfd_id(to_parent.fileno())}"


# -- multiprocessing ------------------------------------------------------


def _echo_child(
    efds: tuple[EventFD, EventFD], report: multiprocessing.connection.Connection
) -> None:
    to_child, to_parent = efds
    report.send(
        (
            eventfd_id(to_child.fileno()),
            eventfd_id(to_parent.fileno()),
            os.get_inheritable(to_child.fileno()),
        )
    )
    to_parent.write(2 * to_child.read(timeout=TIMEOUT))
    to_child.close()
    to_parent.close()


def _receiving_child(conn: multiprocessing.connection.Connection) -> None:
    if not conn.poll(TIMEOUT):
        return
    with conn.recv() as efd:
        conn.send(eventfd_id(efd.fileno()))
        efd.write(9)


def _join(process: multiprocessing.process.BaseProcess) -> int | None:
    process.join(TIMEOUT)
    if process.is_alive():
        process.kill()
        process.join(TIMEOUT)
        pytest.fail("the child process did not finish")
    return process.exitcode


@pytest.mark.parametrize(
    "ctx",
    [multiprocessing.get_context("spawn"), multiprocessing.get_context("forkserver")],
    ids=["spawn", "forkserver"],
)
def test_multiprocessing_argument_is_the_same_eventfd(
    ctx: SpawnContext | ForkServerContext, pair: tuple[EventFD, EventFD]
) -> None:
    to_child, to_parent = pair
    report_r, report_w = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_echo_child, args=((to_child, to_parent), report_w))
    process.start()
    report_w.close()
    try:
        assert report_r.poll(TIMEOUT), "the child sent no report"
        ids = report_r.recv()
        to_child.write(21)
        assert to_parent.read(timeout=TIMEOUT) == 42
    finally:
        exitcode = _join(process)
        report_r.close()
    assert exitcode == 0
    # The same eventfds; the child's fd is close-on-exec like any EventFD's.
    assert ids == (eventfd_id(to_child.fileno()), eventfd_id(to_parent.fileno()), False)
    assert to_child.peek() == 0
    assert to_parent.peek() == 0


def test_multiprocessing_pipe_to_a_running_child() -> None:
    # Not a Process argument: sent once the child runs (resource sharer path).
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    process = ctx.Process(target=_receiving_child, args=(there,))
    process.start()
    there.close()
    with EventFD() as efd:
        try:
            here.send(efd)
            assert efd.read(timeout=TIMEOUT) == 9
            assert here.poll(TIMEOUT)
            assert here.recv() == eventfd_id(efd.fileno())
        finally:
            exitcode = _join(process)
            here.close()
            # Stop the sharer's thread, so that later forks are single-threaded.
            resource_sharer.stop(TIMEOUT)
    assert exitcode == 0


def test_closed_eventfd_is_not_passed() -> None:
    ctx = multiprocessing.get_context("spawn")
    efd = EventFD()
    efd.close()
    before = open_fds()
    process = ctx.Process(target=_receiving_child, args=(efd,))
    with pytest.raises(ValueError, match="closed"):
        process.start()
    assert process.pid is None  # nothing was started
    assert open_fds() == before


def test_plain_pickle_refuses(pair: tuple[EventFD, EventFD]) -> None:
    efd, _ = pair
    with pytest.raises(TypeError, match="multiprocessing"):
        pickle.dumps(efd)
    with pytest.raises(TypeError, match="send_eventfd"):
        pickle.dumps([efd], protocol=pickle.HIGHEST_PROTOCOL)
    efd.write(1)  # unchanged and usable
    assert efd.read() == 1


# -- subprocess -----------------------------------------------------------


def python_child(code: str, *args: str, pass_fds: tuple[int, ...]) -> str:
    """Run ``python -c code args`` (importing the installed package); its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        pass_fds=pass_fds,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_subprocess_pass_fds_and_from_fd(pair: tuple[EventFD, EventFD]) -> None:
    to_child, to_parent = pair
    to_child.write(21)  # waiting for the child when it starts
    out = python_child(
        """
        import sys
        from eventfd_ext import EventFD
        to_child, to_parent = (EventFD.from_fd(int(n)) for n in sys.argv[1:])
        for efd in (to_child, to_parent):
            with open(f"/proc/self/fdinfo/{efd.fileno()}") as f:
                print(dict(l.split(":", 1) for l in f)["eventfd-id"].strip())
        to_parent.write(2 * to_child.read(timeout=10))
        """,
        str(to_child.fileno()),
        str(to_parent.fileno()),
        pass_fds=(to_child.fileno(), to_parent.fileno()),
    )
    assert to_parent.read(timeout=TIMEOUT) == 42
    assert out.split() == [
        eventfd_id(to_child.fileno()),
        eventfd_id(to_parent.fileno()),
    ]


def test_from_fd_refuses_other_fds_and_leaves_them_open() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(ValueError, match="not an eventfd"):
            EventFD.from_fd(r)
        os.fstat(r)  # still open: from_fd owns only what it accepts
    finally:
        os.close(r)
        os.close(w)


# -- SCM_RIGHTS -----------------------------------------------------------


def test_send_recv_eventfd(socks: tuple[socket.socket, socket.socket]) -> None:
    a, b = socks
    with EventFD() as efd:
        send_eventfd(a, efd)
        with recv_eventfd(b) as got:
            assert got.fileno() != efd.fileno()
            assert eventfd_id(got.fileno()) == eventfd_id(efd.fileno())
            assert not os.get_inheritable(got.fileno())
            got.write(3)
            assert efd.read() == 3
            efd.write(4)
            assert got.read() == 4
        assert not efd.closed  # sending does not give ours away


def test_send_eventfd_to_another_process() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b, EventFD() as efd:
        a.settimeout(TIMEOUT)
        efd.write(5)
        send_eventfd(a, efd)
        out = python_child(
            """
            import socket, sys
            from eventfd_ext import recv_eventfd
            with socket.socket(fileno=int(sys.argv[1])) as sock:
                sock.settimeout(10)
                with recv_eventfd(sock) as efd:
                    print(efd.read(timeout=10))
                    with open(f"/proc/self/fdinfo/{efd.fileno()}") as f:
                        print(dict(l.split(":", 1) for l in f)["eventfd-id"].strip())
                    efd.write(8)
            """,
            str(b.fileno()),
            pass_fds=(b.fileno(),),
        )
        assert out.split() == ["5", eventfd_id(efd.fileno())]
        assert efd.read(timeout=TIMEOUT) == 8


def test_recv_message_without_fd(socks: tuple[socket.socket, socket.socket]) -> None:
    a, b = socks
    before = open_fds()
    send_raw(a, [])
    with pytest.raises(ValueError, match="no file descriptor"):
        recv_eventfd(b)
    assert open_fds() == before
    with EventFD() as efd:  # the socket still works for the next message
        send_eventfd(a, efd)
        recv_eventfd(b).close()


def test_recv_wrong_kind_of_fd(socks: tuple[socket.socket, socket.socket]) -> None:
    a, b = socks
    r, w = os.pipe()
    try:
        before = open_fds()
        send_raw(a, [r])
        with pytest.raises(ValueError, match="not an eventfd"):
            recv_eventfd(b)
        assert open_fds() == before  # the received copy of r was closed
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("count", [2, 6])
def test_recv_too_many_fds(socks: tuple[socket.socket, socket.socket], count: int) -> None:
    # 6 is more than recv_eventfd has room for: the kernel drops the rest.
    a, b = socks
    efds = [EventFD() for _ in range(count)]
    try:
        before = open_fds()
        send_raw(a, [e.fileno() for e in efds])
        with pytest.raises(ValueError, match="wrong number of file descriptors"):
            recv_eventfd(b)
        assert open_fds() == before
    finally:
        for e in efds:
            e.close()


def test_recv_eof() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with b:
        a.close()
        b.settimeout(TIMEOUT)
        before = open_fds()
        with pytest.raises(EOFError):
            recv_eventfd(b)
        assert open_fds() == before


@pytest.mark.parametrize(
    "kind", [socket.SOCK_STREAM, socket.SOCK_SEQPACKET], ids=["stream", "seqpacket"]
)
def test_recv_eof_on_connection_sockets(kind: int) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    with b:
        a.close()
        b.settimeout(TIMEOUT)
        with pytest.raises(EOFError):
            recv_eventfd(b)


def test_recv_on_a_datagram_socket_whose_peer_closed_times_out() -> None:
    # Datagram sockets have no end of stream: as documented, the socket's
    # timeout is what ends the wait (not a hang, not a made-up EOF).
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with b:
        a.close()
        b.settimeout(0.05)
        before = open_fds()
        with pytest.raises(TimeoutError):
            recv_eventfd(b)
        assert open_fds() == before


class Tagged(EventFD):
    """A subclass with instance state, as users write them."""

    tag: str


class Slotted(EventFD):
    """A subclass with slots of its own, one of them name-mangled."""

    __slots__ = ("tag", "__secret")

    def reveal(self) -> str:
        return str(self.__secret)

    def hide(self, value: str) -> None:
        self.__secret = value


def _subclass_child(efd: Tagged, conn: multiprocessing.connection.Connection) -> None:
    with efd:
        if isinstance(efd, Slotted):
            conn.send((type(efd).__name__, efd.tag, efd.reveal(), efd.spin))
        else:
            conn.send((type(efd).__name__, efd.tag))
        efd.write(5)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_carries_slots_and_spin(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    report_r, report_w = ctx.Pipe(duplex=False)
    with Slotted(spin=1e-5) as efd:
        efd.tag = "mine"  # type: ignore[attr-defined]
        efd.hide("hidden")
        process = ctx.Process(  # type: ignore[attr-defined]
            target=_subclass_child, args=(efd, report_w)
        )
        process.start()
        report_w.close()
        try:
            assert report_r.poll(TIMEOUT), "the child sent no report"
            assert report_r.recv() == ("Slotted", "mine", "hidden", 1e-5)
            assert efd.read(timeout=TIMEOUT) == 5
        finally:
            assert _join(process) == 0
            report_r.close()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_carries_a_subclass_as_itself(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    report_r, report_w = ctx.Pipe(duplex=False)
    with Tagged() as efd:
        efd.tag = "mine"
        process = ctx.Process(  # type: ignore[attr-defined]
            target=_subclass_child, args=(efd, report_w)
        )
        process.start()
        report_w.close()
        try:
            assert report_r.poll(TIMEOUT), "the child sent no report"
            assert report_r.recv() == ("Tagged", "mine")
            assert efd.read(timeout=TIMEOUT) == 5
        finally:
            assert _join(process) == 0
            report_r.close()


def test_recv_timeout(socks: tuple[socket.socket, socket.socket]) -> None:
    _, b = socks
    b.settimeout(0.01)
    with pytest.raises(TimeoutError):
        recv_eventfd(b)


def test_send_refuses_bad_arguments(socks: tuple[socket.socket, socket.socket]) -> None:
    a, b = socks
    with EventFD() as efd, pytest.raises(TypeError, match="EventFD"):
        send_eventfd(a, efd.fileno())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="closed"):
        send_eventfd(a, efd)
    b.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing was sent
        b.recv(16)
