"""Passing an EventFD, a Doorbell, a MaskFD or a Channel to another process over a
UNIX socket (SCM_RIGHTS): ``send_X`` / ``recv_X`` carry the kernel objects
themselves (not a copy of the count).  multiprocessing has its own way:
``_reduction``.  Both use the protocol every owner shares: ``fds()`` here,
``from_fds(*fds, **modes)`` there.

Each message is one byte of ordinary data (stream sockets cannot send
ancillary data alone) with the owner's ``fds()`` as SCM_RIGHTS.  The byte
marks the kind, so that a receiver of one kind refuses a message sent as
another instead of adopting its fds; any other byte is taken, as
recv_eventfd always did.
"""

from __future__ import annotations

import array
import functools
import os
import socket
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from ._channel import Channel
from ._checks import spin_ns
from ._doorbell import Doorbell
from ._eventfd import EventFD
from ._maskfd import MaskFD
from ._owner import FDOwner, dup_fds

__all__ = [
    "recv_channel",
    "recv_doorbell",
    "recv_eventfd",
    "recv_maskfd",
    "send_channel",
    "send_doorbell",
    "send_eventfd",
    "send_maskfd",
]

_T = TypeVar("_T")


class _Kind(NamedTuple):
    """What one sender's messages carry, and the names its errors give."""

    marker: bytes  # the one byte of ordinary data
    fds: tuple[int, ...]  # how many fds may ride with it
    cls: type
    what: str
    sender: str
    receiver: str


_EVENTFD = _Kind(b"E", (1,), EventFD, "an EventFD", "send_eventfd", "recv_eventfd")
_DOORBELL = _Kind(b"D", (2,), Doorbell, "a Doorbell", "send_doorbell", "recv_doorbell")
# A pipe MaskFD's writer stays with its creator: two fds, else three.
_MASKFD = _Kind(b"M", (2, 3), MaskFD, "a MaskFD", "send_maskfd", "recv_maskfd")
_CHANNEL = _Kind(b"C", (3,), Channel, "a Channel", "send_channel", "recv_channel")
_KINDS = {kind.marker: kind for kind in (_EVENTFD, _DOORBELL, _MASKFD, _CHANNEL)}

# Room for a few fds, so that a message with too many is reported as such
# (the kernel closes those that do not fit, and sets MSG_CTRUNC).
_MAX_FDS = 4
_FD_SIZE = array.array("i").itemsize


# -- sending --------------------------------------------------------------


def send_eventfd(sock: socket.socket, efd: EventFD) -> None:
    """Send *efd* over the connected UNIX socket *sock* (SCM_RIGHTS).

    The message is one byte carrying the fd; the peer gets its own fd on the
    same eventfd with :func:`recv_eventfd`.  *efd* stays open and usable
    here.  Works with SOCK_STREAM, SOCK_SEQPACKET and SOCK_DGRAM sockets.
    TypeError for anything but an EventFD (a Doorbell has
    :func:`send_doorbell`), ValueError if it is closed.
    """
    _send(sock, efd, _EVENTFD)


def send_doorbell(sock: socket.socket, bell: Doorbell) -> None:
    """Send *bell* over the connected UNIX socket *sock* (SCM_RIGHTS).

    The message is one byte carrying the Doorbell's two fds, its memfd (the
    shared counter) and its eventfd; the peer gets a Doorbell on the same
    counter with :func:`recv_doorbell`.  *bell* stays open and usable here;
    its ``nonblocking`` and ``spin`` are its own and do not travel.  Works
    with SOCK_STREAM, SOCK_SEQPACKET and SOCK_DGRAM sockets.  TypeError for
    anything but a Doorbell, ValueError if it is closed.
    """
    _send(sock, bell, _DOORBELL)


def send_maskfd(sock: socket.socket, mask: MaskFD) -> None:
    """Send *mask* over the connected UNIX socket *sock* (SCM_RIGHTS): its
    ``fds()`` (the shared state's memfd, the fd it shows, and the peer
    when it travels); the peer gets the same MaskFD with
    :func:`recv_maskfd`.  *mask* stays open and usable here; from now on
    its state counts as shared (as after a fork).  TypeError for anything
    but a MaskFD, ValueError if it is closed."""
    _send(sock, mask, _MASKFD)


def send_channel(sock: socket.socket, channel: Channel) -> None:
    """Send *channel* over the connected UNIX socket *sock* (SCM_RIGHTS):
    its ``fds()`` (the memfd holding the ring and its two eventfds); the
    peer gets the same queue with :func:`recv_channel`.  *channel* stays
    open and usable here; ``nonblocking`` and ``spin`` do not travel.
    TypeError for anything but a Channel, ValueError if it is closed."""
    _send(sock, channel, _CHANNEL)


def _send(sock: socket.socket, owner: FDOwner, kind: _Kind) -> None:
    if not isinstance(owner, kind.cls):
        raise TypeError(f"{kind.sender}() expected {kind.what}, got {type(owner).__name__}")
    fds = dup_fds(owner)  # made inside one call of the object: no racing close
    try:
        socket.send_fds(sock, [kind.marker], fds)
    finally:
        for fd in fds:
            os.close(fd)


# -- receiving ------------------------------------------------------------


def recv_eventfd(sock: socket.socket) -> EventFD:
    """Receive one EventFD sent with :func:`send_eventfd` over *sock*.

    Reads exactly one message (one byte, on a stream socket).  Raises
    EOFError if the peer closed a stream or seqpacket connection.  A datagram
    socket has no end of stream (the kernel shows nothing when its peer
    closes), so there only the socket's timeout ends the wait: set one
    (TimeoutError).  Raises ValueError if the message carried no fd, more
    than one, a Doorbell (sent with :func:`send_doorbell`), or an fd that is
    not an eventfd; every fd the message carried is then closed, so nothing
    leaks.  The socket's timeout applies.  The new fd is close-on-exec.
    """
    return _recv(sock, _EVENTFD, EventFD.from_fd)


def recv_doorbell(
    sock: socket.socket, *, nonblocking: bool = False, spin: float | None = None
) -> Doorbell:
    """Receive one Doorbell sent with :func:`send_doorbell` over *sock*.

    The Doorbell returned shares the sender's counter; *nonblocking* and
    *spin* are this object's own modes (as in :class:`Doorbell`), chosen
    here.  Reads exactly one message, with the errors and the timeout of
    :func:`recv_eventfd`: EOFError if the peer closed a stream or seqpacket
    connection; ValueError if the message carried no fd, not exactly two,
    an EventFD (sent with :func:`send_eventfd`), or fds that are not a
    Doorbell's memfd and eventfd, every fd it carried being then closed.
    The new fds are close-on-exec.
    """
    spin_ns(spin, adaptive=True)  # a bad spin fails before a message is taken off the socket
    return _recv(
        sock, _DOORBELL, functools.partial(Doorbell.from_fds, nonblocking=nonblocking, spin=spin)
    )


def recv_maskfd(sock: socket.socket) -> MaskFD:
    """Receive one MaskFD sent with :func:`send_maskfd` over *sock*: the
    same MaskFD as the sender's (one stored pair).  Errors and timeout as
    :func:`recv_eventfd`; ValueError also for fds that ``MaskFD.from_fds``
    refuses, every fd the message carried being then closed."""
    return _recv(sock, _MASKFD, MaskFD.from_fds)


def recv_channel(
    sock: socket.socket, *, nonblocking: bool = False, spin: float | None = None
) -> Channel:
    """Receive one Channel sent with :func:`send_channel` over *sock*: the
    same queue as the sender's; *nonblocking* and *spin* are this object's
    own (as in :class:`Channel`).  Errors and timeout as
    :func:`recv_eventfd`; ValueError also for fds that ``Channel.from_fds``
    refuses, every fd the message carried being then closed."""
    spin_ns(spin, adaptive=True)  # a bad spin fails before a message is taken off the socket
    return _recv(
        sock, _CHANNEL, functools.partial(Channel.from_fds, nonblocking=nonblocking, spin=spin)
    )


def _recv(sock: socket.socket, kind: _Kind, adopt: Callable[..., _T]) -> _T:
    """Receive one message of *kind* and return ``adopt(*fds)``; if the
    message is refused or adopting fails, close every fd it carried."""
    # recvmsg rather than socket.recv_fds, which drops its flags argument
    # (CPython 3.10-3.13): MSG_CMSG_CLOEXEC makes the fds close-on-exec
    # atomically, so a fork+exec in another thread cannot inherit them.
    msg, ancdata, flags, _ = sock.recvmsg(
        len(kind.marker), socket.CMSG_SPACE(_MAX_FDS * _FD_SIZE), socket.MSG_CMSG_CLOEXEC
    )
    fds = array.array("i")
    try:
        for level, type_, data in ancdata:
            if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % _FD_SIZE])
        if not fds:
            if not msg:
                raise EOFError(f"the peer closed the socket before sending {kind.what}")
            raise ValueError("the message carried no file descriptor")
        sent_as = _KINDS.get(msg)  # None: a byte of neither kind, taken
        if sent_as is not None and sent_as is not kind:
            raise ValueError(
                f"the message carries {sent_as.what} (sent with {sent_as.sender}); "
                f"receive it with {sent_as.receiver}"
            )
        if len(fds) not in kind.fds or flags & socket.MSG_CTRUNC:
            carried = f"more than {len(fds)}" if flags & socket.MSG_CTRUNC else len(fds)
            sends = " or ".join(map(str, kind.fds))
            raise ValueError(
                f"wrong number of file descriptors in the message: {carried}, "
                f"where {kind.sender} sends {sends}"
            )
        return adopt(*fds)  # ValueError: not the kind's fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
