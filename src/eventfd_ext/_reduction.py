"""multiprocessing: how an fd owner travels to another process.

Importing eventfd_ext registers a reduction with multiprocessing's own
pickler, the way multiprocessing does for sockets: an EventFD or MaskFD given
to a ``Process`` (spawn or forkserver) or sent through a multiprocessing
``Pipe``/``Queue`` arrives as the same kernel object (the fds themselves
travel, as ``DupFd``), as an instance of the class that was sent (a subclass
stays itself, with its instance attributes).  Plain ``pickle`` still refuses
(``FDOwner.__reduce__``): an fd number means nothing elsewhere.

(With ``fork`` nothing needs passing: the child inherits the fds and the
objects; with ``subprocess``, pass the fd in ``pass_fds`` and adopt it in the
child with ``EventFD.from_fd``.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from multiprocessing import reduction as _mp_reduction
from typing import Any

from . import _core
from ._doorbell import Doorbell
from ._eventfd import EventFD
from ._maskfd import MaskFD
from ._owner import FDOwner
from ._shim import ffi, lib

__all__: list[str] = []

_Reduced = tuple[Callable[..., FDOwner], tuple[Any, ...]]


def _state(owner: FDOwner) -> dict[str, Any] | None:
    """What a subclass added to the object: its ``__dict__`` and the values
    of the ``__slots__`` its own classes declare (the package's own slots
    are rebuilt, not copied)."""
    state = dict(getattr(owner, "__dict__", {}))
    for cls in type(owner).__mro__:
        if cls.__module__.startswith("eventfd_ext.") or cls is object:
            continue
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{cls.__name__.lstrip('_')}{name}"  # mangled
            if name not in ("__dict__", "__weakref__") and hasattr(owner, name):
                state[name] = getattr(owner, name)
    return state or None


def _restore(owner: FDOwner, state: dict[str, Any] | None) -> None:
    for name, value in (state or {}).items():
        object.__setattr__(owner, name, value)


# -- EventFD: one fd ------------------------------------------------------


def _reduce_eventfd(efd: EventFD) -> _Reduced:
    # DupFd hands the fd to the child process being started (spawn,
    # forkserver) or, for a Pipe/Queue, to multiprocessing's resource sharer.
    return _rebuild_eventfd, (type(efd), _mp_reduction.DupFd(efd.fileno()), efd.spin, _state(efd))


def _rebuild_eventfd(
    cls: type[EventFD], dupfd: Any, spin: float, state: dict[str, Any] | None
) -> EventFD:
    fd: int = dupfd.detach()
    try:
        # Inherited through spawn's pass_fds it is inheritable; an EventFD
        # is close-on-exec by default (PEP 446).
        os.set_inheritable(fd, False)
        efd = cls.from_fd(fd)
    except BaseException:
        os.close(fd)
        raise
    efd.spin = spin
    _restore(efd, state)
    return efd


# -- MaskFD: the shared state, the handed-out fd and the peer -------------------


def _reduce_maskfd(mask: MaskFD) -> _Reduced:
    handle = mask._handle()
    lib.mfx_mark_shared(handle, 0)
    peer = lib.mfx_peer_fd(handle)
    # Whether the peer travels is the backing's fact (the pipe's writer
    # stays with its creator: HUP is its close).
    keep_peer = peer >= 0 and lib.mfx_peer_travels(handle) == 1
    return _rebuild_maskfd, (
        type(mask),
        _mp_reduction.DupFd(lib.mfx_memfd(handle)),
        _mp_reduction.DupFd(mask.fileno()),
        _mp_reduction.DupFd(peer) if keep_peer else None,
        _state(mask),
    )


def _rebuild_maskfd(
    cls: type[MaskFD], memfd: Any, fd: Any, peer: Any, state: dict[str, Any] | None
) -> MaskFD:
    """Adopt the duplicated fds in the receiving process."""
    fds = [memfd.detach(), fd.detach(), -1 if peer is None else peer.detach()]
    out = ffi.new("struct mfx_handle **")
    result = lib.mfx_attach(fds[0], fds[1], fds[2], out)
    if result:
        for each in fds:
            if each >= 0:
                os.close(each)
        _core.raise_errno(-result)
    mask = cls.__new__(cls)
    mask._adopt(out[0])
    _restore(mask, state)
    return mask


# -- Doorbell: the shared counter's memfd and the wake-up eventfd -----------------


def _reduce_doorbell(bell: Doorbell) -> _Reduced:
    return _rebuild_doorbell, (
        type(bell),
        _mp_reduction.DupFd(bell.fds()[0]),
        _mp_reduction.DupFd(bell.fileno()),
        bell.nonblocking,
        bell.spin,
        _state(bell),
    )


def _rebuild_doorbell(
    cls: type[Doorbell],
    memfd: Any,
    efd: Any,
    nonblocking: bool,
    spin: float | None,
    state: dict[str, Any] | None,
) -> Doorbell:
    fds = [memfd.detach(), efd.detach()]
    try:
        for fd in fds:
            os.set_inheritable(fd, False)
        bell = cls.from_fds(*fds, nonblocking=nonblocking, spin=spin)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    _restore(bell, state)
    return bell


# -- registration ----------------------------------------------------------------

_REDUCERS: dict[type[FDOwner], Callable[[Any], _Reduced]] = {
    EventFD: _reduce_eventfd,
    MaskFD: _reduce_maskfd,
    Doorbell: _reduce_doorbell,
}


def _register(cls: type[FDOwner]) -> None:
    """Register *cls* with multiprocessing's pickler (which matches exact
    classes) under the reducer of the nearest class that has one."""
    for base in cls.__mro__:
        reducer = _REDUCERS.get(base)
        if reducer is not None:
            _mp_reduction.register(cls, reducer)
            return


def _subclasses(cls: type[FDOwner]) -> list[type[FDOwner]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


for _cls in _subclasses(FDOwner):  # those defined before this module ran
    _register(_cls)
FDOwner._subclass_hooks.append(_register)
