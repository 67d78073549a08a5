# Types of the cffi-compiled benchmark floor built from csrc/floor.h.

class _Lib:
    EFX_FLOOR_EVENTFD: int
    EFX_FLOOR_PIPE: int
    EFX_FLOOR_SOCKETPAIR: int
    EFX_FLOOR_DOORBELL: int
    EFX_FLOOR_EVENTFD_SPIN: int
    EFX_FLOOR_CHANNEL: int
    @staticmethod
    def efx_floor_call_doorbell(n: int, /) -> int: ...
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
    @staticmethod
    def efx_floor_stream(
        mechanism: int, n: int, size: int, cpu_send: int, cpu_recv: int, /
    ) -> int: ...

lib: _Lib
