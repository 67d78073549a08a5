"""select, poll, epoll and selectors take EventFD objects directly, and see
the readiness the kernel reports for an eventfd's count."""

from __future__ import annotations

import select
import selectors
from collections.abc import Iterator

import pytest

import _kernel
from eventfd_ext import EventFD

MAX = _kernel.MAX


@pytest.fixture
def efd() -> Iterator[EventFD]:
    with EventFD(nonblocking=True) as efd:
        yield efd


def test_select_accepts_the_object(efd: EventFD) -> None:
    assert select.select([efd], [efd], [efd], 0) == ([], [efd], [])
    efd.write(3)
    assert select.select([efd], [efd], [efd], 0) == ([efd], [efd], [])
    efd.write(MAX - 3)
    assert select.select([efd], [efd], [efd], 0) == ([efd], [], [])
    assert efd.peek() == MAX  # select consumes nothing
    efd.read()
    assert select.select([efd], [efd], [efd], 0) == ([], [efd], [])


def test_select_wakes_on_write() -> None:
    with EventFD() as efd:
        thread, out = _kernel.in_thread(lambda: select.select([efd], [], [], 30))
        assert _kernel.wait_in_syscall(thread, "select")
        efd.write()
        thread.join(10)
        assert not thread.is_alive()
        assert out == {"result": ([efd], [], [])}


def test_select_closed_object_is_valueerror() -> None:
    efd = EventFD()
    efd.close()
    with pytest.raises(ValueError):
        select.select([efd], [], [], 0)


def test_poll_accepts_the_object(efd: EventFD) -> None:
    p = select.poll()
    p.register(efd, select.POLLIN | select.POLLOUT)
    fd = efd.fileno()
    assert p.poll(0) == [(fd, select.POLLOUT)]
    efd.write(1)
    assert p.poll(0) == [(fd, select.POLLIN | select.POLLOUT)]
    efd.write(MAX - 1)
    assert p.poll(0) == [(fd, select.POLLIN)]
    p.modify(efd, select.POLLOUT)
    assert p.poll(0) == []
    p.unregister(efd)
    assert p.poll(0) == []


def test_poll_never_sets_rdnorm_or_wrnorm(efd: EventFD) -> None:
    p = select.poll()
    every = select.POLLIN | select.POLLOUT | select.POLLRDNORM | select.POLLWRNORM | select.POLLPRI
    p.register(efd, every)
    efd.write(1)
    [(_, revents)] = p.poll(0)
    assert revents == select.POLLIN | select.POLLOUT


def test_epoll_accepts_the_object_level_triggered(efd: EventFD) -> None:
    with select.epoll() as ep:
        ep.register(efd, select.EPOLLIN)
        fd = efd.fileno()
        assert ep.poll(0) == []
        efd.write(2)
        assert ep.poll(0) == [(fd, select.EPOLLIN)]
        assert ep.poll(0) == [(fd, select.EPOLLIN)]  # level: still there
        ep.modify(efd, select.EPOLLIN | select.EPOLLOUT)
        assert ep.poll(0) == [(fd, select.EPOLLIN | select.EPOLLOUT)]
        efd.write(MAX - 2)
        assert ep.poll(0) == [(fd, select.EPOLLIN)]
        efd.read()
        assert ep.poll(0) == [(fd, select.EPOLLOUT)]
        ep.unregister(efd)
        assert ep.poll(0) == []


def test_epoll_edge_triggered_every_write_is_an_edge(efd: EventFD) -> None:
    with select.epoll() as ep:
        ep.register(efd, select.EPOLLIN | select.EPOLLET)
        fd = efd.fileno()
        assert ep.poll(0) == []
        efd.write(1)
        assert ep.poll(0) == [(fd, select.EPOLLIN)]
        assert ep.poll(0) == []  # edge consumed; the count is still 1
        assert efd.peek() == 1
        efd.write(1)  # already readable: still a new edge
        assert ep.poll(0) == [(fd, select.EPOLLIN)]
        assert ep.poll(0) == []
        efd.write(0)  # changes nothing, but is an edge too
        assert ep.poll(0) == [(fd, select.EPOLLIN)]
        assert ep.poll(0) == []
        assert efd.read() == 2
        assert ep.poll(0) == []  # a read is no EPOLLIN edge


def test_epoll_edge_triggered_every_read_is_an_epollout_edge() -> None:
    with EventFD(5, semaphore=True, nonblocking=True) as efd, select.epoll() as ep:
        ep.register(efd, select.EPOLLOUT | select.EPOLLET)
        fd = efd.fileno()
        assert ep.poll(0) == [(fd, select.EPOLLOUT)]
        assert ep.poll(0) == []
        efd.read()
        assert ep.poll(0) == [(fd, select.EPOLLOUT)]
        assert ep.poll(0) == []
        efd.read()
        assert ep.poll(0) == [(fd, select.EPOLLOUT)]


def test_epoll_wakes_on_write() -> None:
    with EventFD() as efd, select.epoll() as ep:
        ep.register(efd, select.EPOLLIN)
        thread, out = _kernel.in_thread(lambda: ep.poll(30))
        assert _kernel.wait_in_syscall(thread, "epoll_wait")
        efd.write(4)
        thread.join(10)
        assert not thread.is_alive()
        assert out == {"result": [(efd.fileno(), select.EPOLLIN)]}


SELECTORS = [
    getattr(selectors, name)
    for name in ("SelectSelector", "PollSelector", "EpollSelector", "DefaultSelector")
    if hasattr(selectors, name)
]


@pytest.mark.parametrize("cls", SELECTORS, ids=lambda c: c.__name__)
def test_selectors_accept_the_object(cls: type[selectors.BaseSelector], efd: EventFD) -> None:
    with cls() as sel:
        key = sel.register(efd, selectors.EVENT_READ | selectors.EVENT_WRITE, "data")
        assert key.fileobj is efd
        assert key.fd == efd.fileno()
        assert sel.get_key(efd) == key
        assert sel.select(0) == [(key, selectors.EVENT_WRITE)]
        efd.write(1)
        assert sel.select(0) == [(key, selectors.EVENT_READ | selectors.EVENT_WRITE)]
        efd.write(MAX - 1)
        assert sel.select(0) == [(key, selectors.EVENT_READ)]
        key = sel.modify(efd, selectors.EVENT_WRITE)
        assert sel.select(0) == []
        sel.unregister(efd)
        with pytest.raises(KeyError):
            sel.get_key(efd)
        assert efd.peek() == MAX


@pytest.mark.parametrize("cls", SELECTORS, ids=lambda c: c.__name__)
def test_selectors_wait_for_a_write(cls: type[selectors.BaseSelector]) -> None:
    with EventFD() as efd, cls() as sel:
        key = sel.register(efd, selectors.EVENT_READ)
        thread, out = _kernel.in_thread(lambda: sel.select(30))
        efd.write(1)  # before or during the select: readable either way
        thread.join(10)
        assert not thread.is_alive()
        assert out == {"result": [(key, selectors.EVENT_READ)]}


def test_selector_refuses_a_closed_object() -> None:
    efd = EventFD()
    efd.close()
    with selectors.DefaultSelector() as sel, pytest.raises(ValueError):
        sel.register(efd, selectors.EVENT_READ)
