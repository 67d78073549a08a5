# Types of the cffi-compiled module built from csrc/ (see csrc/*.h for the
# C declarations and their calling convention).

class _FFI:
    errno: int

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
    @staticmethod
    def efx_create(initval: int, flags: int, /) -> int: ...
    @staticmethod
    def efx_read(fd: int, /) -> int: ...
    @staticmethod
    def efx_read_nowait(fd: int, /) -> int: ...
    @staticmethod
    def efx_write(fd: int, value: int, /) -> int: ...
    @staticmethod
    def efx_poll(fd: int, events: int, timeout_ms: int, /) -> int: ...
    @staticmethod
    def efx_wait_read(fd: int, timeout_ms: int, /) -> int: ...

ffi: _FFI
lib: _Lib
