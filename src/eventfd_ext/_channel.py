"""Channel: a bounded queue of byte messages in shared memory.

The messages live in a byte ring in one sealed memfd that every holder
maps; two Doorbells in the same memfd carry the wake-ups: "data" for
receivers (``fileno()`` is its eventfd) and "space" for senders.  A send
and a receive are one crossing into C each, with no syscall while nobody
sleeps; a receive that finds nothing spins, then sleeps, as a Doorbell's
read does.  The layout and the C peers' API are the installed header
<eventfd_ext/channel.h>; the object's calls are csrc/channel.h.
"""

from __future__ import annotations

import contextlib
import errno
import operator
import pickle
from typing import Any, cast

from . import _aio, _checks, _core
from ._doorbell import bell_watched
from ._eventfd import eventfd_fdinfo
from ._shim import ffi, lib
from ._watchgate import WatchGated

__all__ = ["Channel"]

_send = lib.efx_ch_send
_recv = lib.efx_ch_recv
_spin_step = lib.efx_db_spin
_sleep_step = lib.efx_db_sleep
_wait_ready = _core.wait_ready
_ADAPTIVE = _checks.ADAPTIVE_SPIN  # the shim's spin_ns for "the handle's adaptive budget"
#: A receive tries a scratch buffer of this size first; a longer message
#: is received again into one of its size.
_FIRST_TRY = 512
_new_raw = ffi.new_allocator(should_clear_after_alloc=False)
#: Scratch buffers, each taken by one receive at a time (a list's pop and
#: append are atomic, also without the GIL): a signal handler's receive
#: inside another's takes a buffer of its own.  One lost to an exception
#: is only garbage.
_scratch: list[Any] = []
_INFO = ("capacity", "head", "tail", "messages", "flags", "recoveries", "count")
_EPIPE, _EAGAIN, _EINTR, _EMSGSIZE = -errno.EPIPE, -errno.EAGAIN, -errno.EINTR, -errno.EMSGSIZE
_DEFAULT_CAPACITY = 1 << 20


def _eventfd_id(fd: int) -> int:
    """The kernel's id of eventfd *fd* (0: unknown, before Linux 5.15)."""
    return int((eventfd_fdinfo(fd) or {}).get("eventfd-id", 0))


def _bytes_like(data: object, what: str) -> memoryview:
    """*data* as a contiguous byte view, or TypeError for anything that is
    not bytes-like (a str included: it has no one encoding)."""
    if isinstance(data, str):
        raise TypeError(f"{what} takes a bytes-like object, not 'str' (encode it first)")
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} takes a bytes-like object, not {type(data).__name__!r}") from None
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


class Channel(WatchGated):
    """A bounded queue of byte messages between threads and processes.

    ``Channel(capacity=1 MiB, *, spin=None, nonblocking=False)``: *capacity*
    is the ring's size in bytes (rounded up to a multiple of 8); each
    message takes its length rounded up to 8, plus 8, so the largest is
    ``max_message`` (capacity - 8).  Any number of senders and receivers;
    each message is delivered once, whole, in each sender's order.
    *spin* is how long a receive that finds nothing, or a send that finds
    no room, spins before sleeping, in seconds (None: adaptive), as a
    Doorbell's read (a send spins at most a millisecond).
    """

    __slots__ = ("_nonblocking", "_spin")

    _nonblocking: bool
    _spin: int
    _OTHER_WAYS = ", or send it over a UNIX socket with eventfd_ext.send_channel"
    _AWAIT = "await obj.arecv()"

    def __init__(
        self,
        capacity: int = _DEFAULT_CAPACITY,
        *,
        spin: float | None = None,
        nonblocking: bool = False,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int (bytes), not {type(capacity).__name__!r}")
        capacity = operator.index(capacity)
        low, high = lib.EFX_CHAN_MIN_CAPACITY, lib.EFX_CHAN_MAX_CAPACITY
        if not low <= capacity <= high:
            raise ValueError(f"capacity must be between {low} and {high} bytes, not {capacity}")
        self._spin = _checks.spin_ns(spin, adaptive=True)
        self._nonblocking = bool(nonblocking)
        out = ffi.new("efx_owner_t **")
        self._own(lib.efx_ch_create((capacity + 7) & ~7, out), out)
        # Recorded in the page, so that from_fds can refuse other eventfds.
        try:
            _, data_efd, space_efd = self.fds()
            data_id, space_id = (_eventfd_id(fd) for fd in (data_efd, space_efd))
        except BaseException:
            self.close()  # nobody got the object: it says nothing
            raise
        lib.efx_ch_set_eventfd_ids(self._h, data_id, space_id)

    @classmethod
    def from_fds(
        cls,
        memfd: int,
        data_efd: int,
        space_efd: int,
        *,
        spin: float | None = None,
        nonblocking: bool = False,
    ) -> Channel:
        """Adopt a Channel's three fds (its memfd and its two eventfds, in
        :meth:`fds`'s order) received from another process: the object owns
        them and will close them.  Anything else is refused with ValueError
        (not a sealed Channel memfd, or not its eventfds), and the fds are
        then left open.  Only fd numbers are taken."""
        fds = _checks.as_fd_numbers("from_fds() takes fd numbers", memfd, data_efd, space_efd)
        spin_ns = _checks.spin_ns(spin, adaptive=True)
        if any(eventfd_fdinfo(fd) is None for fd in fds[1:]):
            raise ValueError(f"fds {', '.join(map(str, fds))} are not a Channel's fds")
        self = cls.__new__(cls)
        self._spin = spin_ns
        self._nonblocking = bool(nonblocking)
        out = ffi.new("efx_owner_t **")
        data_id, space_id = (_eventfd_id(fd) for fd in fds[1:])
        result = lib.efx_ch_adopt(fds[0], fds[1], fds[2], data_id, space_id, out)
        if result == -errno.EINVAL:
            raise ValueError(f"fd {fds[0]} is not a sealed Channel memfd")
        if result == -errno.EXDEV:
            raise ValueError(f"fds {fds[1]}, {fds[2]} are eventfds, but not the Channel's")
        self._own(result, out)
        return self

    def _modes(self) -> dict[str, object]:
        return {"nonblocking": self._nonblocking, "spin": self.spin}

    def __repr__(self) -> str:
        try:
            info = self._info()
        except ValueError:
            return f"<{type(self).__name__} [closed]>"
        state = " shut down" if info["flags"] else ""
        mode = " nonblocking" if self._nonblocking else ""
        return (
            f"<{type(self).__name__} fd={lib.efx_owner_fd(self._h)} messages={info['messages']} "
            f"used={info['tail'] - info['head']}/{info['capacity']}{state}{mode}>"
        )

    # -- modes ------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """The ring's size in bytes."""
        self._check_open()
        return int(lib.efx_ch_capacity(self._h))

    @property
    def max_message(self) -> int:
        """The largest message the channel can hold, in bytes."""
        return self.capacity - lib.EFX_CHAN_RECORD

    @property
    def nonblocking(self) -> bool:
        """Whether send and recv raise BlockingIOError instead of waiting
        (this object's mode, not shared with other holders)."""
        self._check_open()
        return self._nonblocking

    @nonblocking.setter
    def nonblocking(self, value: bool) -> None:
        self._check_open()
        self._nonblocking = bool(value)

    @property
    def spin(self) -> float | None:
        """Seconds a wait spins before sleeping; None: adaptive."""
        return None if self._spin == _ADAPTIVE else self._spin / 1e9

    @spin.setter
    def spin(self, value: float | None) -> None:
        self._spin = _checks.spin_ns(value, adaptive=True)

    # -- sending ------------------------------------------------------------

    def send(self, data: Any, timeout: float | None = None) -> None:
        """Queue *data* (any bytes-like object) as one message.

        With no *timeout*, waits while there is no room (BlockingIOError
        if non-blocking); with one, waits at most that long whatever the
        mode, then raises TimeoutError.  ValueError for a message longer
        than ``max_message`` and BrokenPipeError once the channel was shut
        down; nothing is queued then.
        """
        if type(data) is bytes and timeout is None:
            result: int = _send(self._h, data, len(data))  # the hot path: no syscall
            if not result:
                return
        view = _bytes_like(data, "send()")
        self._send_parts([view], view.nbytes, timeout)

    def _send_parts(self, parts: list[memoryview], total: int, timeout: float | None) -> None:
        # One message from parts (put's out-of-band buffers go straight in).
        self._check_open()
        deadline = _core.deadline(timeout)
        h = self._h
        if len(parts) == 1:
            buf = ffi.from_buffer(parts[0])
            attempt: Any = lambda: _send(h, buf, total)  # noqa: E731
        else:
            keep = [ffi.from_buffer(part) for part in parts]
            cparts = ffi.new("struct efx_chan_part[]", len(parts))
            for i, (cbuf, part) in enumerate(zip(keep, parts, strict=True)):
                cparts[i].data = cbuf
                cparts[i].len = part.nbytes
            attempt = lambda: lib.efx_ch_sendv(h, cparts, len(parts))  # noqa: E731
        while True:
            result = attempt()
            if not result:
                return
            if result == _EAGAIN:
                if timeout is None and self._nonblocking:
                    _core.raise_errno(errno.EAGAIN)
                self._wait_room(total, deadline, timeout)
            elif result == _EMSGSIZE:
                raise ValueError(
                    f"a message of {total} bytes never fits in this channel "
                    f"(at most {self.max_message})"
                )
            elif result == _EPIPE:
                raise BrokenPipeError(errno.EPIPE, "the channel was shut down")
            elif result == _EINTR:
                self._past(deadline, timeout, "the channel stayed locked")
            else:
                self._fail(result)

    def _wait_room(self, n: int, deadline: float | None, timeout: float | None) -> None:
        while True:
            self._past(deadline, timeout, "no room")
            result = lib.efx_ch_wait_room(self._h, n, _core.left_ms(deadline), self._spin)
            if result > 0:
                return
            if result < 0 and result != _EINTR:
                self._fail(result)

    @staticmethod
    def _past(deadline: float | None, timeout: float | None, what: str) -> None:
        if deadline is not None and not _core.left_ms(deadline):
            raise TimeoutError(f"{what} within {timeout} s")

    def put(self, obj: object, timeout: float | None = None) -> None:
        """Pickle *obj* (protocol 5) and send it as one message; large
        buffers that support out-of-band pickling (bytearray, NumPy arrays,
        ``pickle.PickleBuffer``) go into the ring without an extra copy.
        Errors and waiting as :meth:`send`."""
        buffers: list[pickle.PickleBuffer] = []
        body = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        parts = _frame(body, buffers)
        self._send_parts(parts, sum(part.nbytes for part in parts), timeout)

    # -- receiving --------------------------------------------------------

    def try_recv(self) -> bytes | None:
        """The oldest message, or None when there is none; never waits
        longer than one slice of the ring's lock (20 ms), and says None
        then too (a holder stopped, or a peer writing over the lock).
        EOFError once the channel was shut down and drained."""
        try:
            buf = _scratch.pop()
        except IndexError:
            buf = _new_raw("char[]", _FIRST_TRY)
        n: int = _recv(self._h, buf, _FIRST_TRY)
        if 0 <= n <= _FIRST_TRY:
            message = ffi.unpack(buf, n)
            _scratch.append(buf)
            return message
        return self._recv_again(buf, n, None, None, waits=False)

    def recv(self, timeout: float | None = None) -> bytes:
        """Take the oldest message and return it, as bytes.

        With no *timeout*, waits while there is none (BlockingIOError if
        non-blocking); with one, waits at most that long whatever the
        mode, then raises TimeoutError.  Once the channel was shut down,
        receivers get what is queued, then EOFError.  A close() from
        another thread wakes it with ValueError.
        """
        deadline = None if timeout is None else _core.deadline(timeout)  # checked first
        try:
            buf = _scratch.pop()
        except IndexError:
            buf = _new_raw("char[]", _FIRST_TRY)
        n: int = _recv(self._h, buf, _FIRST_TRY)  # the hot path: no syscall
        if n == _EAGAIN and timeout is None and not self._nonblocking:
            # The common wait (blocking, no timeout): straight into the one
            # waiting loop, without _recv_again's dispatch, then one more try.
            _wait_ready(self._h, self._fail, None, self._spin, _spin_step, _sleep_step)
            n = _recv(self._h, buf, _FIRST_TRY)
        if 0 <= n <= _FIRST_TRY:
            message = ffi.unpack(buf, n)
            _scratch.append(buf)
            return message
        return cast(bytes, self._recv_again(buf, n, deadline, timeout, waits=True))

    def _recv_again(
        self, buf: Any, n: int, deadline: float | None, timeout: float | None, waits: bool
    ) -> bytes | None:
        # The first try into the scratch buffer *buf* took nothing (*n*: a
        # length too long for it, or why): wait if the caller waits (or say
        # None), and try again, into a buffer of the message's size for a
        # long one.
        while True:
            if n > _FIRST_TRY:
                _scratch.append(buf)
                out = self._recv_bytearray(n, deadline, timeout, waits)
                return None if out is None else bytes(out)
            if not self._took_nothing(n, deadline, timeout, waits):
                _scratch.append(buf)
                return None
            n = _recv(self._h, buf, _FIRST_TRY)
            if 0 <= n <= _FIRST_TRY:
                message = ffi.unpack(buf, n)
                _scratch.append(buf)
                return message

    def _recv_bytearray(
        self, size: int, deadline: float | None, timeout: float | None, waits: bool
    ) -> bytearray | None:
        # The next message into a bytearray of its own, first of *size*
        # bytes, then of the message's size when it is longer (another
        # receiver may take it first: then whatever comes next).  None when
        # the caller does not wait and nothing came.
        out = bytearray(size)
        while True:
            n: int = _recv(self._h, ffi.from_buffer(out), len(out))
            if 0 <= n <= len(out):
                del out[n:]
                return out
            if n > len(out):
                out = bytearray(n)
            elif not self._took_nothing(n, deadline, timeout, waits):
                return None

    def _took_nothing(
        self, result: int, deadline: float | None, timeout: float | None, waits: bool = True
    ) -> bool:
        # A receive failed with *result* (-errno) and took nothing:
        # True once it is worth trying again (after waiting, if the caller
        # waits), False if the caller does not wait; EOFError once shut
        # down and drained, the errno's error for any other failure.
        if result == _EAGAIN:
            if not waits:
                return False
            self._wait_data(deadline, timeout)
        elif result == _EPIPE:
            raise EOFError("the channel was shut down and is drained")
        elif result != _EINTR:
            self._fail(result)
        elif not waits:
            return False  # locked for a whole slice (a stopped holder): nothing now
        else:
            self._past(deadline, timeout, "the channel stayed locked")
        return True

    def _wait_data(self, deadline: float | None, timeout: float | None) -> None:
        # The receive that led here said -EAGAIN, so the channel was open (a
        # closed one says so through the wait's own result).
        if timeout is None and self._nonblocking:
            _core.raise_errno(errno.EAGAIN)
        if not _core.wait_ready(self._h, self._fail, deadline, self._spin, _spin_step, _sleep_step):
            raise TimeoutError(f"no message within {timeout} s")

    def recv_into(self, buffer: Any, timeout: float | None = None) -> int:
        """Take the oldest message into *buffer* (a writable bytes-like
        object) and return its length.  A message longer than the buffer
        is never truncated: ValueError, and it stays queued.  Waiting and
        errors as :meth:`recv`."""
        try:
            view = memoryview(buffer)
        except TypeError:
            raise TypeError(
                f"recv_into() takes a writable bytes-like object, not {type(buffer).__name__!r}"
            ) from None
        if view.readonly:
            raise TypeError("recv_into() takes a writable bytes-like object, not a read-only one")
        if not view.c_contiguous:
            raise ValueError("recv_into() takes a contiguous buffer")
        size = view.nbytes
        cbuf = ffi.from_buffer(view.cast("B") if view.format != "B" or view.ndim != 1 else view)
        deadline = _core.deadline(timeout)
        while True:
            n: int = _recv(self._h, cbuf, size)
            if 0 <= n <= size:
                return n
            if n > size:
                raise ValueError(
                    f"the next message is {n} bytes, longer than the buffer ({size}); "
                    "it stays queued"
                )
            self._took_nothing(n, deadline, timeout)

    def get(self, timeout: float | None = None) -> Any:
        """Receive one message sent with :meth:`put` and unpickle it.  Its
        out-of-band buffers are slices of the received message (writable,
        no copy).  Waiting and errors as :meth:`recv`.  Unpickling runs
        whatever the message says: take messages only from peers you
        trust, as with multiprocessing.Queue."""
        # A bytearray, so that the buffers stay writable.
        message = self._recv_bytearray(_FIRST_TRY, _core.deadline(timeout), timeout, waits=True)
        return _loads(cast(bytearray, message))  # waits: never None

    # -- ending -------------------------------------------------------------

    def shutdown(self) -> None:
        """End the stream for every holder: later sends raise
        BrokenPipeError (senders waiting for room too); receivers get what
        is queued, then EOFError (those waiting too).  Idempotent."""
        while True:
            result = lib.efx_ch_shutdown(self._h)
            if not result:
                return
            if result != _EINTR:
                self._fail(result)

    # -- polling and asyncio ------------------------------------------------

    def _watched(self) -> contextlib.AbstractContextManager[None]:
        """The data page's watch: while inside, the fd is readable whenever
        a message is pending (or the channel was shut down), also one
        pending when the watch began."""
        return bell_watched(self)

    async def arecv(self) -> bytes:
        """Receive in a coroutine, never blocking the loop; EOFError after a
        shutdown once drained, ValueError when closed meanwhile."""
        with self._watched():  # not the user's: fileno() stays shut
            while True:
                message = self.try_recv()
                if message is not None:
                    return message
                await _aio.wait(self._wake_fd(), _aio._READ, self._check_open)
                # The token before the message (a stale one would wake the
                # loop forever); one left for others is rung again.
                result = lib.efx_db_drain_token(self._h)
                if result < 0:
                    self._fail(result)

    async def aget(self) -> Any:
        """:meth:`get` in a coroutine (see :meth:`arecv`)."""
        return _loads(bytearray(await self.arecv()))

    async def asend(self, data: Any) -> None:
        """Send in a coroutine: waits in the loop while there is no room;
        errors as :meth:`send`."""
        view = _bytes_like(data, "asend()")
        await self._asend_parts([view])

    async def aput(self, obj: object) -> None:
        """:meth:`put` in a coroutine (see :meth:`asend`)."""
        buffers: list[pickle.PickleBuffer] = []
        body = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        await self._asend_parts(_frame(body, buffers))

    async def _asend_parts(self, parts: list[memoryview]) -> None:
        total = sum(part.nbytes for part in parts)
        result = lib.efx_ch_space_watch(self._h, 1)
        if result:
            self._fail(result)
        try:
            while True:
                try:
                    self._send_parts(parts, total, 0)
                    return
                except TimeoutError:
                    pass  # no room now: wait for a receive
                fd = lib.efx_ch_space_fd(self._h)
                if fd < 0:
                    self._fail(fd)
                await _aio.wait(fd, _aio._READ, self._check_open)
                result = lib.efx_ch_space_drain(self._h)
                if result < 0:
                    self._fail(result)
        finally:
            lib.efx_ch_space_watch(self._h, -1)

    # -- internals ------------------------------------------------------------

    def _info(self) -> dict[str, int]:
        out = ffi.new("uint64_t[]", lib.EFX_CHAN_INFO_N)
        filled = lib.efx_ch_info(self._h, out, lib.EFX_CHAN_INFO_N)
        if filled < 0:
            self._fail(filled)
        return {name: int(out[i]) for i, name in enumerate(_INFO)}


def _frame(body: bytes, buffers: list[pickle.PickleBuffer]) -> list[memoryview]:
    """put's message as parts: the buffer count and lengths, the pickle,
    then each out-of-band buffer's bytes."""
    views = [memoryview(buf.raw()) for buf in buffers]
    index = len(views).to_bytes(4, "little") + b"".join(
        view.nbytes.to_bytes(8, "little") for view in views
    )
    return [memoryview(index), memoryview(body), *views]


def _loads(message: bytearray) -> Any:
    """Unpickle a message framed by :func:`_frame`."""
    view = memoryview(message)
    if len(view) < 4:
        raise ValueError("not a message sent with put(): too short")
    count = int.from_bytes(view[:4], "little")
    lengths_end = 4 + 8 * count
    if count > len(view) or lengths_end > len(view):
        raise ValueError("not a message sent with put(): bad buffer count")
    lengths = [int.from_bytes(view[4 + 8 * i : 12 + 8 * i], "little") for i in range(count)]
    body_end = len(view) - sum(lengths)
    if body_end < lengths_end:
        raise ValueError("not a message sent with put(): bad buffer lengths")
    buffers, pos = [], body_end
    for length in lengths:
        buffers.append(view[pos : pos + length])
        pos += length
    return pickle.loads(view[lengths_end:body_end], buffers=buffers)
