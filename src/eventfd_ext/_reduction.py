"""multiprocessing: how an fd owner travels to another process.

Importing eventfd_ext registers a reduction with multiprocessing's own
pickler, the way multiprocessing does for sockets: an EventFD, Doorbell, MaskFD or Channel given
to a ``Process`` (spawn or forkserver) or sent through a multiprocessing
``Pipe``/``Queue`` arrives as the same kernel object (the fds themselves
travel, as ``DupFd``), as an instance of the class that was sent (a subclass
stays itself, with its instance attributes).  Plain ``pickle`` still refuses
(``FDOwner.__reduce__``): an fd number means nothing elsewhere.

(With ``fork`` nothing needs passing: the child inherits the fds and the
objects; with ``subprocess``, pass ``obj.fds()`` in ``pass_fds`` and adopt
them in the child with ``from_fds``.)  One reducer serves every owner: its
``fds()``, rebuilt there by ``from_fds(*fds, **modes)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from multiprocessing import reduction as _mp_reduction
from multiprocessing.context import get_spawning_popen
from multiprocessing.util import Finalize
from typing import Any

from ._owner import FDOwner, dup_fds, from_fds_modes, on_subclass

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


# -- every owner: its fds(), rebuilt by from_fds(*fds, **modes) ------------


def _reduce(owner: FDOwner) -> _Reduced:
    # DupFd hands each fd to the child process being started (spawn,
    # forkserver) or, for a Pipe/Queue, to multiprocessing's resource sharer.
    fds = dup_fds(owner)  # ours, made inside one call of the object
    popen = get_spawning_popen()
    if popen is not None:
        # spawn and forkserver pass the numbers when they launch the child:
        # ours stay open until that Popen goes.
        for fd in fds:
            Finalize(popen, os.close, (fd,))
        dupfds = tuple(_mp_reduction.DupFd(fd) for fd in fds)
    else:
        try:
            dupfds = tuple(_mp_reduction.DupFd(fd) for fd in fds)  # each dups again
        finally:
            for fd in fds:
                os.close(fd)
    return _rebuild, (type(owner), dupfds, from_fds_modes(owner), _state(owner))


def _rebuild(
    cls: type[FDOwner], dupfds: tuple[Any, ...], modes: dict[str, Any], state: dict[str, Any] | None
) -> FDOwner:
    fds = [dupfd.detach() for dupfd in dupfds]
    try:
        # Inherited through spawn's pass_fds they are inheritable; the
        # package's objects are close-on-exec (PEP 446).
        for fd in fds:
            os.set_inheritable(fd, False)
        owner = cls.from_fds(*fds, **modes)  # type: ignore[attr-defined]
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    _restore(owner, state)
    return owner  # type: ignore[no-any-return]


# -- registration ----------------------------------------------------------------


def _register(cls: type[FDOwner]) -> None:
    """Register *cls* with multiprocessing's pickler (which matches exact
    classes); the base itself owns nothing."""
    if cls is not FDOwner:
        _mp_reduction.register(cls, _reduce)


def _subclasses(cls: type[FDOwner]) -> list[type[FDOwner]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


for _cls in _subclasses(FDOwner):  # those defined before this module ran
    _register(_cls)
on_subclass(_register)
