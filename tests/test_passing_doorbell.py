"""A Doorbell over a UNIX socket (SCM_RIGHTS): send_doorbell / recv_doorbell,
and the receivers of the two kinds refusing each other's messages.

"The same Doorbell" is checked by the kernel's word (the same memfd inode,
the same eventfd-id) and by counts and wake-ups crossing, both ways, between
two processes.  A refused message must leave no fd behind: the process's
open fds are compared before and after.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
from collections.abc import Iterator

import pytest

from _kernel import (
    TIMEOUT,
    Child,
    blocked_in,
    eventfd_id,
    in_thread,
    join_thread,
    open_fds,
    send_raw,
)
from eventfd_ext import Doorbell, EventFD, recv_doorbell, recv_eventfd, send_doorbell, send_eventfd

Socks = tuple[socket.socket, socket.socket]
SLEEP = ("poll", "ppoll")  # where a Doorbell's reader sleeps


def same_file(fd1: int, fd2: int) -> bool:
    s1, s2 = os.fstat(fd1), os.fstat(fd2)
    return (s1.st_dev, s1.st_ino) == (s2.st_dev, s2.st_ino)


def nothing_queued(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(16)
    except BlockingIOError:
        return True
    return False


# -- the same Doorbell on both ends ----------------------------------------------


def test_send_recv_doorbell(socks: Socks) -> None:
    a, b = socks
    with Doorbell(3) as bell:
        send_doorbell(a, bell)
        with recv_doorbell(b) as got:
            assert got.fds()[1] != bell.fds()[1]
            assert got.fds()[0] != bell.fds()[0]
            assert same_file(got.fds()[0], bell.fds()[0])
            assert eventfd_id(bell.fds()[1]) is not None
            assert eventfd_id(got.fds()[1]) == eventfd_id(bell.fds()[1])
            assert got.read() == 3  # the sender's count
            got.write(4)
            assert bell.read() == 4
        assert not bell.closed  # sending does not give ours away
        bell.write(1)
        assert bell.read() == 1


def test_the_received_fds_are_close_on_exec(socks: Socks) -> None:
    a, b = socks
    with Doorbell() as bell:
        send_doorbell(a, bell)
        with recv_doorbell(b) as got:
            assert not os.get_inheritable(got.fds()[1])
            assert not os.get_inheritable(got.fds()[0])


def test_the_receiver_chooses_nonblocking_and_spin(socks: Socks) -> None:
    a, b = socks
    with Doorbell(nonblocking=True, spin=0.5) as bell:
        send_doorbell(a, bell)
        with recv_doorbell(b) as got:  # the sender's modes do not travel
            assert (got.nonblocking, got.spin) == (False, None)
        send_doorbell(a, bell)
        with recv_doorbell(b, nonblocking=True, spin=1e-4) as got:
            assert (got.nonblocking, got.spin) == (True, 1e-4)
            with pytest.raises(BlockingIOError):
                got.read()
        assert (bell.nonblocking, bell.spin) == (True, 0.5)


def test_a_bad_spin_is_refused_before_the_message_is_taken(socks: Socks) -> None:
    a, b = socks
    with Doorbell() as bell:
        send_doorbell(a, bell)
        with pytest.raises(ValueError, match="spin"):
            recv_doorbell(b, spin=-1)
        with pytest.raises(TypeError, match="spin"):
            recv_doorbell(b, spin="fast")  # type: ignore[arg-type]
        b.setblocking(False)  # the message is still there, or this fails at once
        recv_doorbell(b).close()


def test_another_process_shares_the_counter_and_the_wake_ups() -> None:
    # A forked child that gets the Doorbell only through the socket (it is
    # created after the fork); counts and sleepers' wake-ups both ways.  The
    # child's socket stays blocking: one with a timeout would wait in poll,
    # where the parent looks for the child's sleeping read.
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        a.settimeout(TIMEOUT)

        def child_side() -> None:
            with recv_doorbell(b, spin=0) as got:
                assert got.read() == 5  # the parent's count, taken here
                assert got.read() == 7  # asleep until the parent writes
                b.sendall(b"7")  # taken: the parent's reader will not race us for it
                (tid,) = struct.unpack("=i", b.recv(4))
                blocked_in(tid, SLEEP, pid=os.getppid())
                got.write(9)  # wakes the parent's sleeper

        child = Child(child_side)
        try:
            with Doorbell(5, spin=0) as bell:
                send_doorbell(a, bell)
                blocked_in(child.pid, SLEEP, pid=child.pid)
                assert bell.peek() == 0  # the child took the 5
                bell.write(7)
                assert a.recv(1) == b"7"
                thread, out = in_thread(lambda: bell.read(timeout=TIMEOUT))
                assert thread.native_id is not None
                a.sendall(struct.pack("=i", thread.native_id))
                join_thread(thread)
                assert out == {"result": 9}
            child.check()
        finally:
            child.close()


# -- refused messages --------------------------------------------------------------


def test_recv_doorbell_refuses_an_eventfd(socks: Socks) -> None:
    a, b = socks
    with EventFD() as efd:
        before = open_fds()
        send_eventfd(a, efd)
        with pytest.raises(ValueError, match=r"carries an EventFD .*recv_eventfd"):
            recv_doorbell(b)
        assert open_fds() == before
    with Doorbell() as bell:  # the socket still works for the next message
        send_doorbell(a, bell)
        recv_doorbell(b).close()


def test_recv_eventfd_refuses_a_doorbell(socks: Socks) -> None:
    a, b = socks
    with Doorbell() as bell:
        before = open_fds()
        send_doorbell(a, bell)
        # Its eventfd alone would pass for an EventFD: the marker refuses it.
        with pytest.raises(ValueError, match=r"carries a Doorbell .*recv_doorbell"):
            recv_eventfd(b)
        assert open_fds() == before


@pytest.mark.parametrize("count", [1, 3, 6])
def test_recv_doorbell_refuses_a_wrong_number_of_fds(socks: Socks, count: int) -> None:
    # 6 is more than the receiver has room for: the kernel drops the rest.
    a, b = socks
    with Doorbell() as bell:
        fds = list(bell.fds()) * 3
        before = open_fds()
        send_raw(a, fds[:count], b"D")
        with pytest.raises(ValueError, match="wrong number of file descriptors"):
            recv_doorbell(b)
        assert open_fds() == before


def test_recv_doorbell_refuses_a_message_without_fds(socks: Socks) -> None:
    a, b = socks
    before = open_fds()
    send_raw(a, [], b"D")
    with pytest.raises(ValueError, match="no file descriptor"):
        recv_doorbell(b)
    assert open_fds() == before


@pytest.mark.parametrize(
    "kind", [socket.SOCK_STREAM, socket.SOCK_SEQPACKET], ids=["stream", "seqpacket"]
)
def test_recv_doorbell_eof(kind: int) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    with b:
        a.close()
        b.settimeout(TIMEOUT)
        before = open_fds()
        with pytest.raises(EOFError, match="a Doorbell"):
            recv_doorbell(b)
        assert open_fds() == before


def memfd(size: int) -> int:
    fd = os.memfd_create("not a doorbell")
    os.ftruncate(fd, size)
    return fd


@pytest.fixture
def parts() -> Iterator[dict[str, int]]:
    """An fd of each kind a forged message is made of."""
    r, w = os.pipe()
    owned = {
        "pipe": r,
        "eventfd": os.eventfd(0),
        "small memfd": memfd(8),  # mapping it whole would fault
        "blank memfd": memfd(1 << 16),  # room enough, but no Doorbell's layout in it
    }
    try:
        yield owned
    finally:
        for fd in [w, *owned.values()]:
            os.close(fd)


FORGERIES = {
    "a pipe and an eventfd": ("pipe", "eventfd"),
    "a memfd too small": ("small memfd", "eventfd"),
    "a memfd of zeros": ("blank memfd", "eventfd"),
    "a Doorbell's memfd and a pipe": ("bell memfd", "pipe"),
    "a Doorbell's fds swapped": ("bell eventfd", "bell memfd"),
}


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
def test_recv_doorbell_refuses_fds_that_are_not_a_doorbells(
    socks: Socks, parts: dict[str, int], forgery: tuple[str, str]
) -> None:
    a, b = socks
    with Doorbell() as bell:
        fds = {**parts, "bell memfd": bell.fds()[0], "bell eventfd": bell.fds()[1]}
        before = open_fds()
        send_raw(a, [fds[name] for name in forgery], b"D")
        with pytest.raises(ValueError, match="not a Doorbell's"):
            recv_doorbell(b)
        assert open_fds() == before


# -- refused sends ---------------------------------------------------------------------


def test_a_closed_doorbell_is_not_sent(socks: Socks) -> None:
    a, b = socks
    bell = Doorbell()
    bell.close()
    with pytest.raises(ValueError, match="closed"):
        send_doorbell(a, bell)
    assert nothing_queued(b)


def test_each_sender_takes_only_its_own_kind(socks: Socks) -> None:
    a, b = socks
    with Doorbell() as bell, EventFD() as efd:
        with pytest.raises(TypeError, match="expected a Doorbell, got EventFD"):
            send_doorbell(a, efd)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected a Doorbell, got int"):
            send_doorbell(a, bell.fds()[1])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected an EventFD, got Doorbell"):
            send_eventfd(a, bell)  # type: ignore[arg-type]
    assert nothing_queued(b)


def test_pickling_names_send_doorbell() -> None:
    with Doorbell() as bell, pytest.raises(TypeError, match="send_doorbell"):
        pickle.dumps(bell)
