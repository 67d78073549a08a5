# Types of the cffi-compiled module built from csrc/ (csrc/*.h hold the C
# declarations and their calling conventions).
from typing import Any, Callable, TypeVar

_T = TypeVar("_T")

class _Handle:
    """An opaque ``struct mfx_handle *`` (MaskFD's shared state)."""

class _Pair:
    events: int
    data: int

class _FFI:
    errno: int
    NULL: _Handle
    def gc(self, cdata: _T, destructor: Callable[[_T], None], /) -> _T: ...

class _Lib:
    EFD_CLOEXEC: int
    EFD_NONBLOCK: int
    EFD_SEMAPHORE: int
    POLLIN: int
    POLLPRI: int
    POLLOUT: int
    POLLERR: int
    POLLHUP: int
    POLLNVAL: int
    EFX_FAILED: int
    # csrc/eventfd_shim.h
    @staticmethod
    def efx_create(initval: int, flags: int, /) -> int: ...
    @staticmethod
    def efx_read(fd: int, /) -> int: ...
    @staticmethod
    def efx_take(fd: int, /) -> int: ...
    @staticmethod
    def efx_read_nowait(fd: int, /) -> int: ...
    @staticmethod
    def efx_write(fd: int, value: int, /) -> int: ...
    @staticmethod
    def efx_signal(fd: int, /) -> int: ...
    @staticmethod
    def efx_poll(fd: int, events: int, timeout_ms: int, /) -> int: ...
    @staticmethod
    def efx_wait_read(fd: int, timeout_ms: int, /) -> int: ...
    # csrc/maskfd_shim.h
    MFX_STREAM: int
    MFX_DGRAM: int
    MFX_PIPE: int
    MFX_VALID: int
    @staticmethod
    def mfx_new(kind: int, out: Any, /) -> int: ...
    @staticmethod
    def mfx_attach(memfd: int, a: int, b: int, out: Any, /) -> int: ...
    @staticmethod
    def mfx_change(
        h: _Handle, clear_bits: int, set_bits: int, set_data: int, data: int, /
    ) -> int: ...
    @staticmethod
    def mfx_set(h: _Handle, bits: int, /) -> int: ...
    @staticmethod
    def mfx_clear(h: _Handle, bits: int, /) -> int: ...
    @staticmethod
    def mfx_get(h: _Handle, out: Any, /) -> int: ...
    @staticmethod
    def mfx_limits(h: _Handle, /) -> int: ...
    @staticmethod
    def mfx_kind(h: _Handle, /) -> int: ...
    @staticmethod
    def mfx_fd(h: _Handle, /) -> int: ...
    @staticmethod
    def mfx_peer_fd(h: _Handle, /) -> int: ...
    @staticmethod
    def mfx_memfd(h: _Handle, /) -> int: ...
    @staticmethod
    def mfx_syscalls(h: _Handle, out: Any, /) -> int: ...
    @staticmethod
    def mfx_recoveries(h: _Handle, /) -> int: ...
    @staticmethod
    def mfx_mark_shared(h: _Handle, in_child: int, /) -> int: ...
    @staticmethod
    def mfx_close(h: _Handle, /) -> int: ...
    @staticmethod
    def mfx_free(h: _Handle, /) -> int: ...
    @staticmethod
    def mfx_test_die_after(steps: int, /) -> int: ...
    # csrc/floor.h
    EFX_FLOOR_EVENTFD: int
    EFX_FLOOR_PIPE: int
    EFX_FLOOR_SOCKETPAIR: int
    @staticmethod
    def efx_floor_call_eventfd(fd: int, n: int, /) -> int: ...
    @staticmethod
    def efx_floor_call_pipe(rfd: int, wfd: int, n: int, /) -> int: ...
    @staticmethod
    def efx_floor_call_socketpair(a: int, b: int, n: int, /) -> int: ...
    @staticmethod
    def efx_floor_pingpong(
        mechanism: int, processes: int, n: int, cpu_ping: int, cpu_pong: int, /
    ) -> int: ...

ffi: _FFI
lib: _Lib
