"""One async API under every framework: EventFD.aread / await_readable,
Doorbell.aread / await_readable and MaskFD.await_readable / await_writable
under asyncio, uvloop, trio and anyio (both backends), via the ``backend``
fixture (tests/async_backends.py).

Tasks are known to sleep in a wait through ``anyio.wait_all_tasks_blocked``
(the framework's own word that every other task is blocked), never through
a sleep; asyncio's registration details are tests/test_asyncio.py's.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import os
import pathlib
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from async_backends import BACKENDS, DEADLINE, Backend, backend, efd, missing, no_watch_left
from eventfd_ext import Doorbell, EventFD, MaskFD, _aio
from eventfd_ext._aio import SUPPORTED

__all__ = ["backend", "efd", "no_watch_left"]  # the fixtures, imported for pytest to find

POLLIN, POLLOUT = 0x1, 0x4
#: The issue's bound for close() waking every waiter, with room for a loaded
#: 2-CPU machine: a failure bound, not a measurement.
WAKE_BOUND = 2.0


Waiter = Callable[[], Awaitable[Any]]


async def gather(*waiters: Waiter) -> list[Any]:
    """Run every waiter in one task group; each one's result or exception."""
    results: list[Any] = [None] * len(waiters)

    async def one(i: int, waiter: Waiter) -> None:
        try:
            results[i] = await waiter()
        except Exception as exc:
            results[i] = exc

    async with anyio.create_task_group() as group:
        for i, waiter in enumerate(waiters):
            group.start_soon(one, i, waiter)
    return results


async def parked_then(action: Callable[[], object], *waiters: Waiter) -> list[Any]:
    """Start every waiter, wait until each sleeps in its wait, run
    *action* (in this task), and return what each waiter gave."""
    results: list[Any] = []

    async def act() -> None:
        await anyio.wait_all_tasks_blocked()
        action()

    async def run_all() -> None:
        results.extend(await gather(*waiters))

    async with anyio.create_task_group() as group:
        group.start_soon(run_all)
        group.start_soon(act)
    return results


# -- reading and waiting ---------------------------------------------------------


def test_aread_takes_a_ready_count(backend: Backend, efd: EventFD) -> None:
    efd.write(5)
    assert backend.run(efd.aread, kick=efd.write) == 5
    assert efd.peek() == 0


def test_aread_waits_for_a_write_from_another_thread(backend: Backend, efd: EventFD) -> None:
    def write_from_a_thread() -> None:
        threading.Thread(target=efd.write, args=(7,)).start()

    async def main() -> list[Any]:
        return await parked_then(write_from_a_thread, efd.aread)

    assert backend.run(main, kick=efd.write) == [7]
    assert efd.peek() == 0


def test_several_tasks_share_one_eventfd(backend: Backend, efd: EventFD) -> None:
    # One write wakes every waiter: one aread takes the count, the other
    # finds it gone and waits again (never blocking the loop in read(2))
    # until the second write; await_readable takes nothing.
    async def main() -> tuple[list[Any], list[Any]]:
        results: list[Any] = []
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: run_into(results, efd.aread))
            group.start_soon(lambda: run_into(results, efd.aread))
            group.start_soon(lambda: run_into(results, efd.await_readable))
            await anyio.wait_all_tasks_blocked()
            efd.write(1)
            await until(lambda: len(results) == 2)
            await anyio.wait_all_tasks_blocked()  # the loser waits again
            first = list(results)
            efd.write(4)
        return first, results

    first, results = backend.run(main, kick=lambda: efd.write(1))
    assert sorted(first, key=str) == [1, None]
    assert sorted(results, key=str) == [1, 4, None]
    assert efd.peek() == 0


async def until(done: Callable[[], bool]) -> None:
    """Let the other tasks run until *done()* (the loop's deadline bounds it):
    a task that the fd woke has run only once the loop has polled."""
    while not done():
        await anyio.sleep(0)


async def run_into(results: list[Any], waiter: Waiter) -> None:
    results.append(await waiter())


def test_semaphore_waiters_each_take_one(backend: Backend) -> None:
    with EventFD(semaphore=True) as efd:

        async def main() -> list[Any]:
            return await parked_then(lambda: efd.write(3), *[efd.aread] * 3)

        assert backend.run(main, kick=lambda: efd.write(3)) == [1, 1, 1]
        assert efd.peek() == 0


def test_many_await_readable_all_wake(backend: Backend, efd: EventFD) -> None:
    async def main() -> list[Any]:
        return await parked_then(lambda: efd.write(2), *[efd.await_readable] * 5)

    assert backend.run(main, kick=efd.write) == [None] * 5
    assert efd.peek() == 2  # nothing taken


# -- cancellation ----------------------------------------------------------------


def test_timeout_takes_nothing(backend: Backend, efd: EventFD) -> None:
    async def main() -> tuple[bool, bool, int]:
        read_timed_out = await backend.timed_out(efd.aread(), 0.01)
        wait_timed_out = await backend.timed_out(efd.await_readable(), 0.01)
        efd.write(6)
        return read_timed_out, wait_timed_out, await efd.aread()

    assert backend.run(main, kick=efd.write) == (True, True, 6)


def test_cancelling_one_waiter_keeps_the_others(backend: Backend, efd: EventFD) -> None:
    # Under trio one waiter sleeps in trio's own wait and the others follow
    # it: cancelling that one must hand the wait on, not strand them.
    async def main() -> list[Any]:
        async with anyio.create_task_group() as group:
            cancelled = anyio.CancelScope()

            async def cancelled_waiter() -> None:
                with cancelled:
                    await efd.aread()

            group.start_soon(cancelled_waiter)
            await anyio.wait_all_tasks_blocked()  # it leads, under trio

            def cancel_then_write() -> None:
                cancelled.cancel()
                efd.write(2)

            results = await parked_then(cancel_then_write, efd.aread, efd.await_readable)
        return results

    assert backend.run(main, kick=efd.write) == [2, None]
    assert efd.peek() == 0


def test_cancel_after_the_wake_up_loses_nothing(backend: Backend) -> None:
    # The write wakes both waiters; one is cancelled before it runs: the
    # count stays for the other.
    with EventFD(semaphore=True) as efd:

        async def main() -> int:
            async with anyio.create_task_group() as group:
                scope = anyio.CancelScope()
                got: list[int] = []

                async def doomed() -> None:
                    with scope:
                        got.append(await efd.aread())

                async def kept() -> None:
                    got.append(await efd.aread())

                group.start_soon(doomed)
                group.start_soon(kept)
                await anyio.wait_all_tasks_blocked()
                efd.write(1)
                scope.cancel()
            return sum(got) + efd.peek()

        assert backend.run(main, kick=efd.write) == 1


# -- close -----------------------------------------------------------------------


def test_closed_object_raises(backend: Backend) -> None:
    efd, bell, mask = EventFD(), Doorbell(), MaskFD()
    for obj in (efd, bell, mask):
        obj.close()

    async def main() -> list[Any]:
        return await gather(
            efd.aread,
            efd.await_readable,
            bell.aread,
            bell.await_readable,
            mask.await_readable,
            mask.await_writable,
        )

    results = backend.run(main)
    assert [type(r) for r in results] == [ValueError] * 6, results
    assert all("closed" in str(r) for r in results)


def test_close_in_the_loop_wakes_every_waiter(backend: Backend, efd: EventFD) -> None:
    async def main() -> list[Any]:
        return await parked_then(efd.close, efd.aread, efd.aread, efd.await_readable)

    results = backend.run(main)
    assert [type(r) for r in results] == [ValueError] * 3, results
    assert all("closed EventFD" in str(r) for r in results)


def close_from_a_thread(obj: EventFD | Doorbell | MaskFD, started: list[float]) -> None:
    def close() -> None:
        started.append(time.monotonic())
        obj.close()

    threading.Thread(target=close).start()


@pytest.mark.parametrize("kind", ["EventFD", "Doorbell", "MaskFD"])
def test_close_from_another_thread_wakes_every_waiter(backend: Backend, kind: str) -> None:
    obj: Any = {"EventFD": EventFD, "Doorbell": Doorbell, "MaskFD": MaskFD}[kind]()
    waits = [obj.await_readable] * 2 + ([obj.aread] * 2 if kind != "MaskFD" else [])
    started: list[float] = []
    woke: list[float] = []

    def timed(wait: Waiter) -> Waiter:
        async def waiter() -> Any:
            try:
                return await wait()
            finally:
                woke.append(time.monotonic())

        return waiter

    async def main() -> list[Any]:
        return await parked_then(
            lambda: close_from_a_thread(obj, started), *[timed(w) for w in waits]
        )

    try:
        results = backend.run(main)
    finally:
        obj.close()
    assert [type(r) for r in results] == [ValueError] * len(waits), results
    assert all(f"closed {kind}" in str(r) for r in results)
    assert max(woke) - started[0] < WAKE_BOUND


def test_close_wakes_loops_of_every_framework_at_once(efd: EventFD) -> None:
    """One close() from this thread wakes waiters in an asyncio loop, a
    trio run and anyio's, each in its own thread, and closes the fd once
    every loop has let go."""
    chosen = [b for b in BACKENDS if missing(b) is None]
    waiting = threading.Barrier(len(chosen) + 1, timeout=DEADLINE)
    outcome: dict[str, Any] = {}

    def one(chosen_backend: Backend) -> None:
        async def main() -> list[Any]:
            async def signal() -> None:
                await anyio.wait_all_tasks_blocked()  # the other two wait
                await anyio.to_thread.run_sync(waiting.wait)

            return await parked_then(lambda: None, efd.aread, efd.await_readable, signal)

        try:
            outcome[chosen_backend.name] = chosen_backend.run(main)[:2]
        except BaseException as exc:
            outcome[chosen_backend.name] = exc

    threads = [threading.Thread(target=one, args=(b,)) for b in chosen]
    for thread in threads:
        thread.start()
    waiting.wait()  # every loop has its waiters parked
    fd = efd.fileno()
    efd.close()
    for thread in threads:
        thread.join(3 * DEADLINE)
    assert set(outcome) == {b.name for b in chosen}
    for name, results in outcome.items():
        assert [type(r) for r in results] == [ValueError, ValueError], (name, results)
    with pytest.raises(OSError):
        os.fstat(fd)


# -- Doorbell and MaskFD ---------------------------------------------------------


def test_doorbell_aread_and_await_readable(backend: Backend) -> None:
    with Doorbell() as bell:

        async def main() -> list[Any]:
            woken = await parked_then(lambda: bell.write(4), *[bell.await_readable] * 2)
            assert bell.peek() == 4  # await_readable takes nothing
            assert await bell.aread() == 4
            return [*woken, *await parked_then(lambda: bell.write(2), bell.aread)]

        assert backend.run(main, kick=bell.write) == [None, None, 2]
        assert bell.peek() == 0


def test_doorbell_timeout_takes_nothing(backend: Backend) -> None:
    with Doorbell() as bell:

        async def main() -> tuple[bool, int]:
            timed_out = await backend.timed_out(bell.aread(), 0.01)
            bell.write(3)
            return timed_out, await bell.aread()

        assert backend.run(main, kick=bell.write) == (True, 3)


def test_doorbell_awaiters_never_block_the_loop_on_a_blocking_eventfd(backend: Backend) -> None:
    """One ring wakes two await_readable and one aread; the aread takes the
    token and the count between the awaiters' turns, so an awaiter may find
    no token: its drain must not block the loop in read(2) (from_fds may
    adopt a blocking eventfd, made by a C peer)."""
    with Doorbell() as bell:
        wake_up = bell.fds()[1]
        os.set_blocking(wake_up, True)

        async def main() -> list[Any]:
            results: list[Any] = []
            async with anyio.create_task_group() as group:
                group.start_soon(run_into, results, bell.await_readable)
                group.start_soon(run_into, results, bell.aread)
                group.start_soon(run_into, results, bell.await_readable)
                await anyio.wait_all_tasks_blocked()
                bell.write(1)
                await until(lambda: 1 in results)
                bell.write(2)  # an awaiter that came after the take waits on
            return results

        results = backend.run(main, kick=lambda: os.eventfd_write(wake_up, 1))
        assert sorted(results, key=str) == [1, None, None]
        assert bell.peek() == 2


def test_awaiting_a_doorbell_leaves_its_fileno_shut(backend: Backend) -> None:
    """aread()/await_readable() watch for themselves: while one sleeps,
    fileno() still refuses outside the user's own watch() (a poller given
    the number then would miss every count once the task is done)."""
    with Doorbell() as bell:

        def refused_then_ring() -> None:
            with pytest.raises(io.UnsupportedOperation, match=r"only inside its watch\(\)"):
                bell.fileno()
            bell.write(1)

        async def main() -> list[Any]:
            taken = await parked_then(refused_then_ring, bell.aread)
            return [*taken, *await parked_then(refused_then_ring, bell.await_readable)]

        assert backend.run(main, kick=bell.write) == [1, None]
        assert bell.peek() == 1
        with pytest.raises(io.UnsupportedOperation):
            bell.fileno()


def test_maskfd_await_readable_and_writable(backend: Backend) -> None:
    with MaskFD() as mask:

        async def main() -> list[Any]:
            return await parked_then(
                lambda: mask.write(POLLIN | POLLOUT),
                mask.await_readable,
                mask.await_writable,
                mask.await_readable,
            )

        assert backend.run(main, kick=lambda: mask.write(POLLIN | POLLOUT)) == [None] * 3
        assert mask.events == POLLIN | POLLOUT  # nothing changed


# -- fork --------------------------------------------------------------------------


@pytest.mark.parametrize("make", [EventFD, Doorbell])
def test_a_forked_childs_close_leaves_the_parents_waiters(
    backend: Backend, make: Callable[[], EventFD | Doorbell]
) -> None:
    """The child of a fork made inside the loop closes its copy: the loop's
    registrations live in kernel objects both processes share (trio's and
    uvloop's epoll set), so the child must forget them, not remove them,
    and the parent's waiter still gets the count written after."""
    with make() as obj:

        def fork_a_closing_child_then_ring() -> None:
            with warnings.catch_warnings():
                # 3.12+ warns that forking a threaded process may deadlock
                # the child; this child only closes the object and exits.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    obj.close()
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            obj.write(1)

        async def main() -> list[Any]:
            return await parked_then(fork_a_closing_child_then_ring, obj.aread)

        assert backend.run(main, kick=obj.write) == [1]


# -- the fd's flags ----------------------------------------------------------------


def waits_of(obj: EventFD | Doorbell | MaskFD) -> tuple[int, Callable[[], None], list[Waiter]]:
    """The fd an object's loop waits watch, what wakes them, and the waits."""
    if isinstance(obj, MaskFD):
        return (
            obj.fileno(),
            lambda: obj.write(POLLIN | POLLOUT),
            [
                obj.await_readable,
                obj.await_writable,
            ],
        )
    if isinstance(obj, Doorbell):
        fd = obj.fds()[1]
        os.set_blocking(fd, True)  # as a C peer's eventfd may be (from_fds)
    else:
        fd = obj.fileno()
    return fd, lambda: obj.write(1), [obj.aread, obj.await_readable]


@pytest.mark.parametrize("make", [EventFD, Doorbell, MaskFD])
def test_waiting_leaves_the_fds_flags_alone(backend: Backend, make: Callable[[], Any]) -> None:
    """O_NONBLOCK belongs to the open file, shared by every holder: a loop
    that set it while waiting (libuv's poll handle does) would make a
    thread's blocking EventFD.read() fail with BlockingIOError.  Under every
    framework the flags stay as they were, while a task waits and after."""
    with make() as obj:
        fd, ring, waits = waits_of(obj)
        before = fcntl.fcntl(fd, fcntl.F_GETFL)
        seen: list[int] = []

        def look_then_ring() -> None:
            seen.append(fcntl.fcntl(fd, fcntl.F_GETFL))
            ring()

        async def main() -> list[Any]:
            results = []
            for wait in waits:
                if isinstance(obj, MaskFD):
                    obj.write(0)  # each wait sleeps until the ring
                results += await parked_then(look_then_ring, wait)
            return results

        backend.run(main, kick=ring)
        assert seen == [before] * len(waits)
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == before
    if make is not MaskFD:
        assert not before & os.O_NONBLOCK  # a blocking eventfd stays blocking


# -- outside every framework -----------------------------------------------------


def drive(awaitable: Awaitable[Any]) -> Any:
    """Run a coroutine without any event loop, as an unsupported framework would."""
    coroutine = awaitable.__await__()
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    finally:
        coroutine.close()
    raise AssertionError("the coroutine suspended without a loop")


@pytest.mark.parametrize(
    ("make", "method"),
    [
        (lambda: EventFD(1), "aread"),
        (lambda: EventFD(1), "await_readable"),
        (lambda: Doorbell(1), "aread"),
        (lambda: Doorbell(1), "await_readable"),
        (lambda: MaskFD(POLLIN), "await_readable"),
        (lambda: MaskFD(POLLOUT), "await_writable"),
    ],
    ids=[
        "EventFD.aread",
        "EventFD.await_readable",
        "Doorbell.aread",
        "Doorbell.await_readable",
        "MaskFD.await_readable",
        "MaskFD.await_writable",
    ],
)
def test_outside_every_loop_names_the_frameworks(make: Callable[[], Any], method: str) -> None:
    # Ready already, so that the mistake shows even when nothing would wait.
    with make() as obj, pytest.raises(RuntimeError, match="no running event loop") as info:
        drive(getattr(obj, method)())
    assert SUPPORTED in str(info.value)
    for name in ("asyncio", "uvloop", "trio", "anyio"):
        assert name in SUPPORTED


def test_wait_readable_outside_every_loop(efd: EventFD) -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        drive(_aio.wait_readable(efd))


def test_a_thread_without_a_loop_in_an_asyncio_program(efd: EventFD) -> None:
    # A loop running in another thread is not this thread's.
    efd.write(1)

    async def main() -> BaseException | None:
        def in_a_thread() -> BaseException | None:
            try:
                drive(efd.aread())
            except RuntimeError as exc:
                return exc
            return None

        return await asyncio.to_thread(in_a_thread)

    error = asyncio.run(main())
    assert isinstance(error, RuntimeError)
    assert efd.peek() == 1


def test_close_after_a_trio_run_ended_with_a_watch_left() -> None:
    """A run that ended while the watch of an fd was still listed (its
    tasks can never resume) does not stop close(): the fd is closed from
    the closing thread, and nothing is asked of the finished run."""
    trio = pytest.importorskip("trio", reason="trio is not installed")

    async def token_and_event() -> tuple[Any, Any]:
        return trio.lowlevel.current_trio_token(), trio.Event()

    token, event = trio.run(token_and_event)
    efd = EventFD()
    fd = efd.fileno()
    _aio._watches[(token, fd, _aio._READ)] = _aio._TrioWatch(event)
    efd.close()
    assert not _aio._watches
    with pytest.raises(OSError):
        os.fstat(fd)


def test_the_close_wakeup_benchmark_runs() -> None:
    """benchmarks/async_close_wakeup.py prints a row of three figures per
    framework installed and class (its assert checks every waiter woke)."""
    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "async_close_wakeup.py"
    out = subprocess.run(
        [sys.executable, "-W", "error", str(script), "--rounds", "3"],
        capture_output=True,
        text=True,
        timeout=6 * DEADLINE,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[2:]]
    installed = [
        b.name
        for b in BACKENDS
        if b.name in ("asyncio", "asyncio+uvloop", "trio") and missing(b) is None
    ]
    assert [row[:2] for row in rows if len(row) == 5] == [
        [name, cls] for name in installed for cls in ("EventFD", "Doorbell")
    ]
    for row in rows:
        if len(row) == 5:
            assert all(0 < float(figure) < 1e3 * WAKE_BOUND for figure in row[2:])
