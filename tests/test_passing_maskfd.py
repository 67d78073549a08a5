"""A MaskFD travels like the other owners: over a UNIX socket
(send_maskfd / recv_maskfd), to a subprocess (fds() in pass_fds, then
from_fds), and through multiprocessing (one reducer for every owner)."""

from __future__ import annotations

import multiprocessing
import os
import select
import socket
import subprocess
import sys
import textwrap

import pytest

from eventfd_ext import (
    EventFD,
    MaskFD,
    recv_eventfd,
    recv_maskfd,
    send_eventfd,
    send_maskfd,
)
from eventfd_ext._backings import Backing
from eventfd_ext._constants import EFD_MASK_EVENTS

Socks = tuple[socket.socket, socket.socket]
POLLIN, POLLOUT = select.POLLIN, select.POLLOUT


def _shows(fd: int) -> int:
    p = select.poll()
    p.register(fd, EFD_MASK_EVENTS)
    return sum(e for _, e in p.poll(0))


@pytest.mark.parametrize("backing", ["stream", "dgram", "pipe"])
def test_send_recv_maskfd_is_the_same_maskfd(socks: Socks, backing: Backing) -> None:
    a, b = socks
    with MaskFD(backing=backing) as sent:
        send_maskfd(a, sent)
        with recv_maskfd(b) as got:
            assert got.backing == backing
            got.write(POLLIN, 0xABC)  # IN: every backing shows it
            assert sent.read() == (POLLIN, 0xABC)  # one stored pair
            assert _shows(sent.fileno()) & POLLIN
            sent.clear(POLLIN)
            assert got.read().events == 0


def test_recv_maskfd_refuses_an_eventfd_and_closes_its_fd(socks: Socks) -> None:
    a, b = socks
    before = set(os.listdir("/proc/self/fd"))
    with EventFD() as efd:
        send_eventfd(a, efd)
        with pytest.raises(ValueError, match="recv_eventfd"):
            recv_maskfd(b)
    assert set(os.listdir("/proc/self/fd")) <= before


def test_recv_eventfd_refuses_a_maskfd(socks: Socks) -> None:
    a, b = socks
    with MaskFD() as mask:
        send_maskfd(a, mask)
        with pytest.raises(ValueError, match="recv_maskfd"):
            recv_eventfd(b)


def test_send_maskfd_refuses_other_objects_and_closed_ones(socks: Socks) -> None:
    a, _ = socks
    with EventFD() as efd, pytest.raises(TypeError, match="expected a MaskFD"):
        send_maskfd(a, efd)  # type: ignore[arg-type]
    mask = MaskFD()
    mask.close()
    with pytest.raises(ValueError, match="closed"):
        send_maskfd(a, mask)


def test_a_subprocess_adopts_the_fds_and_changes_the_same_state() -> None:
    with MaskFD() as mask:
        fds = mask.fds()
        code = textwrap.dedent(
            f"""
            from eventfd_ext import MaskFD
            with MaskFD.from_fds(*{list(fds)}) as m:
                m.set({POLLIN})
            """
        )
        subprocess.run([sys.executable, "-c", code], pass_fds=fds, check=True, timeout=60)
        assert mask.events == POLLIN
        assert _shows(mask.fileno()) & POLLIN


def _child_sets(mask: MaskFD) -> None:
    mask.set(POLLIN)
    mask.close()


def test_multiprocessing_spawn_carries_a_maskfd() -> None:
    ctx = multiprocessing.get_context("spawn")
    with MaskFD() as mask:
        p = ctx.Process(target=_child_sets, args=(mask,))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert mask.events == POLLIN
