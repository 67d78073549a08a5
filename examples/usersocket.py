"""Worked example: a user-space "socket" that any event loop can wait on.

A connected pair of in-memory endpoints (like ``socket.socketpair()``, but
the bytes never leave the process).  Each endpoint has an rx buffer; what it
sends goes into the peer's rx buffer, up to a small capacity (its tx window).
Each endpoint owns a MaskFD kept in step with its buffers:

* POLLIN  -- its rx buffer holds bytes (or the peer has closed: EOF to read)
* POLLOUT -- the peer's rx buffer has room (and the peer is still open)
* POLLHUP -- the peer has closed

so ``selectors``, ``asyncio`` (``add_reader``/``add_writer``), ``poll`` or
``epoll`` wait on it like on a real socket; above all it can show *neither*
IN nor OUT (rx empty, tx full), which an eventfd cannot.  Every operation
ends with ``_sync()``, which rewrites both masks: a write that changes no
bit makes no syscall, so syncing after every operation is cheap.

Run it: ``python examples/usersocket.py``.
"""

from __future__ import annotations

import asyncio
import select
import selectors

from eventfd_ext import MaskFD

IN, OUT, HUP = select.POLLIN, select.POLLOUT, select.POLLHUP


class UserSocket:
    """One endpoint; make a connected pair with :func:`usersocketpair`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rx = bytearray()
        self.peer: UserSocket | None = None
        self.closed = False
        self.peer_closed = False
        # The stream backing: IN/OUT exact in all four combinations; HUP is
        # irreversible there, which suits a close.
        self.mask = MaskFD(backing="stream")

    def fileno(self) -> int:
        """The pollable fd (never read or write it: it only signals)."""
        return self.mask.fileno()

    def send(self, data: bytes) -> int:
        """Queue what fits in the peer's rx buffer; BlockingIOError if none."""
        if self.closed or self.peer is None:
            raise OSError("send on a closed UserSocket")
        if self.peer_closed:
            raise BrokenPipeError("the peer has closed")
        room = self.capacity - len(self.peer.rx)
        if room <= 0:
            raise BlockingIOError("the peer's rx buffer is full")
        taken = data[:room]
        self.peer.rx += taken
        self._sync()
        return len(taken)

    def recv(self, size: int) -> bytes:
        """Take up to *size* bytes; b"" at EOF; BlockingIOError if none yet."""
        if not self.rx:
            if self.peer_closed:
                return b""
            raise BlockingIOError("rx buffer empty")
        data = bytes(self.rx[:size])
        del self.rx[:size]
        self._sync()
        return data

    def close(self) -> None:
        """Close this end: the peer sees HUP (and EOF after its data)."""
        if self.closed:
            return
        self.closed = True
        peer = self.peer
        if peer is not None:
            peer.peer_closed = True
            peer._sync_self()
        self.mask.close()

    def _sync(self) -> None:
        self._sync_self()
        if self.peer is not None and not self.peer.closed:
            self.peer._sync_self()

    def _sync_self(self) -> None:
        if self.closed:
            return
        events = 0
        if self.rx or self.peer_closed:
            events |= IN
        if self.peer_closed:
            events |= HUP
        elif self.peer is not None and len(self.peer.rx) < self.capacity:
            events |= OUT
        self.mask.write(events)  # no bit changed: no syscall


def usersocketpair(capacity: int = 64) -> tuple[UserSocket, UserSocket]:
    """A connected pair of UserSockets with *capacity*-byte rx buffers."""
    a, b = UserSocket(capacity), UserSocket(capacity)
    a.peer, b.peer = b, a
    a._sync()
    return a, b


def transfer_with_selectors(payload: bytes, capacity: int = 64) -> tuple[bytes, int]:
    """Send *payload* from one end to the other in a selectors loop.

    Returns what arrived and how many times the sender found no room (the
    flow control the MaskFD signalled by clearing OUT).
    """
    sender, receiver = usersocketpair(capacity)
    received = bytearray()
    blocked = 0
    pending = memoryview(payload)
    with selectors.DefaultSelector() as sel:
        sel.register(sender, selectors.EVENT_WRITE)
        sel.register(receiver, selectors.EVENT_READ)
        while True:
            ready = sel.select(timeout=10)
            if not ready:
                raise TimeoutError("no event for 10 s: a missed wakeup")
            for key, _ in ready:
                if key.fileobj is sender:
                    try:
                        pending = pending[sender.send(bytes(pending[:capacity])) :]
                    except BlockingIOError:
                        continue  # a spurious wakeup costs a retry (allowed)
                    if not pending:
                        sel.unregister(sender)
                        sender.close()
                    elif not sender.mask.events & OUT:
                        blocked += 1
                else:
                    data = receiver.recv(capacity)
                    if not data:
                        sel.unregister(receiver)
                        receiver.close()
                        return bytes(received), blocked
                    received += data


async def transfer_with_asyncio(payload: bytes, capacity: int = 64) -> tuple[bytes, int]:
    """The same transfer, driven by asyncio's add_writer/add_reader."""
    loop = asyncio.get_running_loop()
    sender, receiver = usersocketpair(capacity)
    done: asyncio.Future[tuple[bytes, int]] = loop.create_future()
    received = bytearray()
    pending = memoryview(payload)
    blocked = 0

    def on_writable() -> None:
        nonlocal pending, blocked
        try:
            pending = pending[sender.send(bytes(pending[:capacity])) :]
        except BlockingIOError:
            return
        if not pending:
            loop.remove_writer(sender.fileno())
            sender.close()
        elif not sender.mask.events & OUT:
            blocked += 1

    def on_readable() -> None:
        data = receiver.recv(capacity)
        if data:
            received.extend(data)
            return
        loop.remove_reader(receiver.fileno())
        receiver.close()
        done.set_result((bytes(received), blocked))

    loop.add_writer(sender.fileno(), on_writable)
    loop.add_reader(receiver.fileno(), on_readable)
    return await asyncio.wait_for(done, timeout=10)


if __name__ == "__main__":
    message = bytes(range(256)) * 40
    got, stalls = transfer_with_selectors(message)
    print(f"selectors: {len(got)} bytes, intact={got == message}, sender blocked {stalls} times")
    got, stalls = asyncio.run(transfer_with_asyncio(message))
    print(f"asyncio:   {len(got)} bytes, intact={got == message}, sender blocked {stalls} times")
