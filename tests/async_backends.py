"""The async frameworks every async test runs under: asyncio, asyncio on
uvloop, trio, and anyio on each of its backends.

Both async test files share the fixtures here: ``efd`` (an EventFD) and
``no_watch_left`` (autouse: no test leaves a registration in _aio behind).

A test takes the ``backend`` fixture and hands ``backend.run`` a coroutine
function.  Its body uses anyio's task groups, checkpoints and
``wait_all_tasks_blocked`` (they work under every framework listed), and
``backend.timed_out(awaitable, seconds)`` for a timeout written the
framework's own way (``asyncio.wait_for``, trio's ``move_on_after``, an anyio
cancel scope).  A backend whose package is not installed is skipped with a
reason naming it.

``run`` runs the loop in a worker thread joined with a deadline, so that a
loop blocked in the kernel (the bug these tests exist to catch) becomes a
failure with a message instead of a hung suite.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from eventfd_ext import EventFD, _aio


@pytest.fixture(autouse=True)
def no_watch_left() -> Iterator[None]:
    yield
    assert not _aio._watches, "a watch outlived its waiters"


@pytest.fixture
def efd() -> Iterator[EventFD]:
    with EventFD() as e:
        yield e


T = TypeVar("T")
#: The failure bound of one test's loop, in seconds.
DEADLINE = 10.0


@dataclass(frozen=True)
class Backend:
    """One framework: how to run a coroutine function, and how it times out."""

    name: str
    #: The packages it needs beside anyio (which every test body uses).
    needs: tuple[str, ...]
    #: runner(main) runs main() to completion in a new loop of this framework.
    runner: Callable[[Callable[[], Awaitable[Any]]], Any]
    #: "asyncio", "trio" or "anyio": whose timeout timed_out() uses.
    timeouts: str

    def run(self, main: Callable[[], Awaitable[T]], *, kick: Callable[[], None] | None = None) -> T:
        """Run main() in a fresh loop in a worker thread, bounded in time;
        if the loop is still running after the deadline, call *kick* (say,
        a write that unblocks a read) so the thread can finish, and fail."""
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = self.runner(main)
            except BaseException as exc:  # re-raised in the test's thread
                outcome["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(DEADLINE)
        if thread.is_alive():
            if kick is not None:
                kick()
            thread.join(DEADLINE)
            pytest.fail(f"the {self.name} loop was still running after {DEADLINE} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]

    async def timed_out(self, awaitable: Awaitable[Any], seconds: float) -> bool:
        """Await *awaitable* under this framework's own timeout: True if the
        timeout cancelled it, False if it finished first."""
        if self.timeouts == "asyncio":
            import asyncio

            try:
                await asyncio.wait_for(awaitable, seconds)
            except asyncio.TimeoutError:
                return True
            return False
        if self.timeouts == "trio":
            import trio

            with trio.move_on_after(seconds) as trio_scope:
                await awaitable
            return trio_scope.cancelled_caught
        import anyio

        with anyio.move_on_after(seconds) as anyio_scope:
            await awaitable
        return anyio_scope.cancelled_caught


def _asyncio(main: Callable[[], Awaitable[Any]]) -> Any:
    import asyncio

    async def call() -> Any:  # asyncio.run takes a coroutine, not a function
        return await main()

    return asyncio.run(call())


def _uvloop(main: Callable[[], Awaitable[Any]]) -> Any:
    import uvloop

    async def call() -> Any:
        return await main()

    return uvloop.run(call())


def _trio(main: Callable[[], Awaitable[Any]]) -> Any:
    import trio

    return trio.run(main)


def _anyio(backend: str) -> Callable[[Callable[[], Awaitable[Any]]], Any]:
    def runner(main: Callable[[], Awaitable[Any]]) -> Any:
        import anyio

        return anyio.run(main, backend=backend)

    return runner


BACKENDS = [
    Backend("asyncio", (), _asyncio, "asyncio"),
    Backend("asyncio+uvloop", ("uvloop",), _uvloop, "asyncio"),
    Backend("trio", ("trio",), _trio, "trio"),
    Backend("anyio-asyncio", (), _anyio("asyncio"), "anyio"),
    Backend("anyio-trio", ("trio",), _anyio("trio"), "anyio"),
]


def missing(backend: Backend) -> str | None:
    """The first package *backend* needs that is not installed, or None."""
    for package in ("anyio", *backend.needs):
        if importlib.util.find_spec(package) is None:
            return package
    return None


@pytest.fixture(params=BACKENDS, ids=[b.name for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each async framework in turn; skipped where its package is missing."""
    chosen: Backend = request.param
    package = missing(chosen)
    if package is not None:
        pytest.skip(f"{package} is not installed (pip install 'eventfd_ext[async]')")
    for name in ("anyio", *chosen.needs):
        importlib.import_module(name)  # imported here, not inside the timed loop
    return chosen
