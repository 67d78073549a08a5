"""What every readiness API reports on a MaskFD, and the never-miss check."""

from __future__ import annotations

import select
import selectors
import socket

from eventfd_ext import MaskFD

IN, PRI, OUT, ERR, HUP = (
    select.POLLIN,
    select.POLLPRI,
    select.POLLOUT,
    select.POLLERR,
    select.POLLHUP,
)
ALL = IN | PRI | OUT | ERR | HUP


def kernel_has_unix_oob() -> bool:
    """Whether AF_UNIX stream sockets take MSG_OOB (Linux >= 5.15)."""
    a, b = socket.socketpair()
    with a, b:
        try:
            b.send(b"!", socket.MSG_OOB)
        except OSError:
            return False
        return True


def by_poll(fd: int) -> int:
    poller = select.poll()
    poller.register(fd, ALL)
    ready = poller.poll(0)
    return ready[0][1] & ALL if ready else 0


def by_epoll(fd: int) -> int:
    with select.epoll() as ep:
        ep.register(fd, select.EPOLLIN | select.EPOLLPRI | select.EPOLLOUT)
        ready = ep.poll(0)
    return ready[0][1] & ALL if ready else 0


def by_select(fd: int) -> tuple[bool, bool, bool]:
    r, w, x = select.select([fd], [fd], [fd], 0)
    return bool(r), bool(w), bool(x)


def by_selectors(fd: int) -> int:
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ | selectors.EVENT_WRITE)
        ready = sel.select(0)
    return ready[0][1] if ready else 0


def assert_shows(mask: MaskFD) -> None:
    """Every API shows every stored bit; IN and OUT exactly when nothing
    documented (PRI, ERR, HUP) brings extra bits."""
    events = mask.read().events
    fd = mask.fileno()
    polled = by_poll(fd)
    epolled = by_epoll(fd)
    r, w, x = by_select(fd)
    sel = by_selectors(fd)
    where = (
        f"stored {events:#x}, poll {polled:#x}, epoll {epolled:#x}, "
        f"select {r, w, x}, selectors {sel}"
    )
    assert polled & events == events, where
    assert epolled & events == events, where
    if events & (IN | HUP | ERR):
        assert r, where
        assert sel & selectors.EVENT_READ, where
    if events & (OUT | ERR):
        assert w, where
        assert sel & selectors.EVENT_WRITE, where
    if events & PRI:
        assert x, where
    if not (events | polled) & (PRI | ERR | HUP):
        # the heart of the feature: IN and OUT exact, all four combinations
        # (PRI and HUP bring IN, ERR brings OUT: the documented extras)
        assert polled & (IN | OUT) == events & (IN | OUT), where
        assert epolled & (IN | OUT) == events & (IN | OUT), where
        assert (r, w) == (bool(events & IN), bool(events & OUT)), where
        expected = (selectors.EVENT_READ if events & IN else 0) | (
            selectors.EVENT_WRITE if events & OUT else 0
        )
        assert sel == expected, where
