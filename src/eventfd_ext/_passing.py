"""Passing an EventFD to another process over a UNIX socket (SCM_RIGHTS):
:func:`send_eventfd` and :func:`recv_eventfd` carry the kernel object itself
(not a copy of the count).  multiprocessing has its own way: ``_reduction``.
"""

from __future__ import annotations

import array
import os
import socket

from ._eventfd import EventFD

__all__ = ["recv_eventfd", "send_eventfd"]

# The one byte of ordinary data that carries the fd: stream sockets cannot
# send ancillary data alone.
_MESSAGE = b"E"
# Room for a few fds, so that a message with too many is reported as such
# (the kernel closes those that do not fit, and sets MSG_CTRUNC).
_MAX_FDS = 4
_FD_SIZE = array.array("i").itemsize


# -- SCM_RIGHTS -----------------------------------------------------------


def send_eventfd(sock: socket.socket, efd: EventFD) -> None:
    """Send *efd* over the connected UNIX socket *sock* (SCM_RIGHTS).

    The message is one byte carrying the fd; the peer gets its own fd on the
    same eventfd with :func:`recv_eventfd`.  *efd* stays open and usable
    here.  Works with SOCK_STREAM, SOCK_SEQPACKET and SOCK_DGRAM sockets.
    """
    if not isinstance(efd, EventFD):
        raise TypeError(f"expected an EventFD, got {type(efd).__name__}")
    socket.send_fds(sock, [_MESSAGE], [efd.fileno()])


def recv_eventfd(sock: socket.socket) -> EventFD:
    """Receive one EventFD sent with :func:`send_eventfd` over *sock*.

    Reads exactly one message (one byte, on a stream socket).  Raises
    EOFError if the peer closed a stream or seqpacket connection.  A datagram
    socket has no end of stream (the kernel shows nothing when its peer
    closes), so there only the socket's timeout ends the wait: set one
    (TimeoutError).  Raises ValueError if the message
    carried no fd, more than one, or an fd that is not an eventfd; every fd
    the message carried is then closed, so nothing leaks.  The socket's
    timeout applies.  The new fd is close-on-exec.
    """
    # recvmsg rather than socket.recv_fds, which drops its flags argument
    # (CPython 3.10-3.13): MSG_CMSG_CLOEXEC makes the fds close-on-exec
    # atomically, so a fork+exec in another thread cannot inherit them.
    msg, ancdata, flags, _ = sock.recvmsg(
        len(_MESSAGE),
        socket.CMSG_SPACE(_MAX_FDS * _FD_SIZE),
        socket.MSG_CMSG_CLOEXEC,
    )
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % _FD_SIZE])
    try:
        if not fds:
            if not msg:
                raise EOFError("the peer closed the socket before sending an eventfd")
            raise ValueError("the message carried no file descriptor")
        if len(fds) > 1 or flags & socket.MSG_CTRUNC:
            raise ValueError(
                "the message carried more than one file descriptor (send_eventfd sends exactly one)"
            )
        return EventFD.from_fd(fds[0])  # ValueError: not an eventfd
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
