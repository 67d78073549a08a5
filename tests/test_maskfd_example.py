"""The worked example (examples/usersocket.py): a user-space socket whose
MaskFD follows its buffers, driven by selectors and by asyncio."""

from __future__ import annotations

import asyncio
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))

from usersocket import (
    transfer_with_asyncio,
    transfer_with_selectors,
    usersocketpair,
)

from maskfd_helpers import HUP, IN, OUT, by_poll


def test_mask_follows_the_buffers() -> None:
    a, b = usersocketpair(capacity=8)
    try:
        assert (by_poll(a.fileno()), by_poll(b.fileno())) == (OUT, OUT)
        assert a.send(b"0123456789") == 8
        # rx empty and tx full: neither IN nor OUT, what eventfd cannot show
        assert by_poll(a.fileno()) == 0
        assert by_poll(b.fileno()) == IN | OUT
        with pytest.raises(BlockingIOError):
            a.send(b"x")
        assert b.recv(4) == b"0123"
        assert by_poll(a.fileno()) == OUT
        assert b.recv(100) == b"4567"
        assert by_poll(b.fileno()) == OUT
        with pytest.raises(BlockingIOError):
            b.recv(1)
        b.send(b"hi")
        a.close()
        assert by_poll(b.fileno()) & (IN | HUP | OUT) == IN | HUP  # EOF to read
        assert b.recv(10) == b""
        with pytest.raises(BrokenPipeError):
            b.send(b"x")
    finally:
        a.close()
        b.close()


PAYLOAD = bytes(range(256)) * 40


def test_transfer_driven_by_selectors() -> None:
    received, blocked = transfer_with_selectors(PAYLOAD, capacity=64)
    assert received == PAYLOAD
    assert blocked > 0  # the sender really waited for OUT


def test_transfer_driven_by_asyncio() -> None:
    received, blocked = asyncio.run(transfer_with_asyncio(PAYLOAD, capacity=64))
    assert received == PAYLOAD
    assert blocked > 0
