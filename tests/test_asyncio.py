"""asyncio: EventFD.aread / await_readable and the per-loop multiplexer.

Every test runs its loop in a worker thread joined with a timeout, so that a
loop blocked in the kernel (the bug these tests exist to catch) becomes a
failure with a message instead of a hung suite.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from async_backends import efd, no_watch_left
from eventfd_ext import EventFD, _aio
from eventfd_ext._constants import MAX_COUNT

__all__ = ["efd", "no_watch_left"]  # the fixtures, imported for pytest to find

T = TypeVar("T")
TIMEOUT = 10.0


def run(main: Callable[[], Awaitable[T]], *kick: EventFD) -> T:
    """Run main() in a fresh event loop in a worker thread, bounded in time.

    If the loop is still running after the timeout (blocked in a read, say),
    write to every *kick* EventFD so that the thread can finish, and fail.
    """
    outcome: dict[str, Any] = {}

    async def bounded() -> T:
        return await asyncio.wait_for(main(), TIMEOUT)

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(bounded())
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT + 5)
    if thread.is_alive():
        for efd in kick:
            efd.write(1)
        thread.join(TIMEOUT)
        pytest.fail("the event loop was blocked: a read blocked in the kernel")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


async def parked(*tasks: asyncio.Task[Any]) -> None:
    """Let each task run up to its first real suspension, and check it is
    there (not finished).  One loop iteration is enough; a few are harmless."""
    for _ in range(3):
        await asyncio.sleep(0)
    for task in tasks:
        assert not task.done(), task


def registered(loop: asyncio.AbstractEventLoop, fd: int) -> bool:
    """Whether a reader is registered for *fd* (public API only: removing a
    registered reader returns True; re-adding it is left to the caller)."""
    return loop.remove_reader(fd)


def test_aread_takes_a_ready_count(efd: EventFD) -> None:
    efd.write(5)

    async def main() -> int:
        return await efd.aread()

    assert run(main, efd) == 5
    assert efd.peek() == 0


def test_aread_waits_for_a_write(efd: EventFD) -> None:
    async def main() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(efd.aread())
        await parked(task)
        efd.write(7)
        value = await task
        return value, registered(loop, efd.fileno())

    value, still_registered = run(main, efd)
    assert value == 7
    assert not still_registered
    assert efd.peek() == 0


def test_aread_semaphore_takes_one() -> None:
    with EventFD(2, semaphore=True) as efd:

        async def main() -> list[int]:
            return [await efd.aread(), await efd.aread()]

        assert run(main, efd) == [1, 1]
        assert efd.peek() == 0


def test_aread_nonblocking_fd_waits_too() -> None:
    with EventFD(nonblocking=True) as efd:

        async def main() -> int:
            task = asyncio.create_task(efd.aread())
            await parked(task)
            efd.write(3)
            return await task

        assert run(main, efd) == 3
        assert efd.nonblocking


def test_blocking_fd_drained_by_another_coroutine(efd: EventFD) -> None:
    # One write wakes both waiters; the one that runs second finds the count
    # gone and must wait again, not block the loop in read(2).
    assert not efd.nonblocking

    async def main() -> list[int]:
        tasks = [asyncio.create_task(efd.aread()) for _ in range(2)]
        await parked(*tasks)
        efd.write(1)
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1
        assert len(pending) == 1
        (loser,) = pending
        await parked(loser)  # it ran its EAGAIN path and is waiting again
        efd.write(4)
        return [await task for task in tasks]

    assert sorted(run(main, efd)) == [1, 4]
    assert efd.peek() == 0


def test_blocking_fd_drained_by_a_thread(efd: EventFD) -> None:
    # A thread blocked in read() competes with a coroutine for each write.
    async def main() -> list[int]:
        task = asyncio.create_task(efd.aread())
        thread = asyncio.ensure_future(asyncio.to_thread(efd.read, TIMEOUT))
        await parked(task)
        efd.write(1)
        done, _ = await asyncio.wait({task, thread}, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) >= 1
        efd.write(1)
        return [await task, await thread]

    assert run(main, efd) == [1, 1]
    assert efd.peek() == 0


def test_blocking_fd_drained_by_a_process(efd: EventFD) -> None:
    # A child process blocked in read() on the same eventfd competes too.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from eventfd_ext import EventFD; "
            "print(EventFD.from_fd(int(sys.argv[1])).read(timeout=10))",
            str(efd.fileno()),
        ],
        pass_fds=(efd.fileno(),),
        stdout=subprocess.PIPE,
        text=True,
    )

    async def main() -> list[int]:
        task = asyncio.create_task(efd.aread())
        exited = asyncio.ensure_future(asyncio.to_thread(child.communicate))
        await parked(task)
        efd.write(1)
        await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
        efd.write(1)
        out, _ = await exited
        return [await task, int(out)]

    try:
        assert run(main, efd) == [1, 1]
    finally:
        child.kill()  # a no-op once it has exited
        child.communicate(timeout=TIMEOUT)
    assert child.returncode == 0
    assert efd.peek() == 0


def test_many_waiters_share_one_registration(efd: EventFD) -> None:
    # Were each waiter to add_reader itself, asyncio would keep only the
    # last callback and the others would never wake.
    async def main() -> int:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(efd.await_readable()) for _ in range(5)]
        await parked(*tasks)
        assert len(_aio._watches) == 1
        efd.write(1)
        await asyncio.gather(*tasks)
        assert not registered(loop, efd.fileno())
        return efd.peek()

    assert run(main, efd) == 1  # await_readable takes nothing


def test_semaphore_waiters_each_take_one() -> None:
    with EventFD(semaphore=True) as efd:

        async def main() -> tuple[list[int], int]:
            loop = asyncio.get_running_loop()
            tasks = [asyncio.create_task(efd.aread()) for _ in range(5)]
            await parked(*tasks)
            efd.write(3)
            while sum(t.done() for t in tasks) < 3:
                await asyncio.wait(
                    [t for t in tasks if not t.done()],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            left = [t for t in tasks if not t.done()]
            await parked(*left)  # the other two found nothing and wait again
            results = [t.result() for t in tasks if t.done()]
            for t in left:
                t.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            return results, int(registered(loop, efd.fileno()))

        results, still_registered = run(main, efd)
        assert results == [1, 1, 1]
        assert not still_registered
        assert efd.peek() == 0


def test_cancel_leaves_fd_usable_and_no_callback(efd: EventFD) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(efd.aread())
        await parked(task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not registered(loop, efd.fileno())
        # The public check the other way: the fd can be registered again.
        seen = asyncio.Event()
        loop.add_reader(efd.fileno(), seen.set)
        efd.write(3)
        await seen.wait()
        assert loop.remove_reader(efd.fileno())
        assert efd.peek() == 3  # the cancelled read took nothing
        return await efd.aread()

    assert run(main, efd) == 3


def test_cancel_one_waiter_keeps_the_other(efd: EventFD) -> None:
    async def main() -> int:
        first = asyncio.create_task(efd.aread())
        second = asyncio.create_task(efd.aread())
        await parked(first, second)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await parked(second)
        efd.write(2)
        return await second

    assert run(main, efd) == 2


def test_cancel_after_wakeup_loses_nothing() -> None:
    # Cancel a waiter that the write has woken but that has not run yet: the
    # count stays for the others, whatever order the loop runs them in.
    with EventFD(semaphore=True) as efd:

        async def main() -> tuple[int, int]:
            first = asyncio.create_task(efd.aread())
            second = asyncio.create_task(efd.aread())
            await parked(first, second)
            efd.write(1)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            taken = 0 if first.cancelled() else first.result()
            if not taken:
                taken = await second
            else:
                second.cancel()
                await asyncio.gather(second, return_exceptions=True)
            return taken, efd.peek()

        assert run(main, efd) == (1, 0)


def test_wait_for_timeout(efd: EventFD) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(efd.aread(), 0.01)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(efd.await_readable(), 0.01)
        assert not registered(loop, efd.fileno())
        efd.write(6)
        return await asyncio.wait_for(efd.aread(), TIMEOUT)

    assert run(main, efd) == 6


def test_await_readable_takes_nothing(efd: EventFD) -> None:
    async def main() -> int:
        task = asyncio.create_task(efd.await_readable())
        await parked(task)
        efd.write(2)
        await task
        await efd.await_readable()  # readable already: returns at once
        return efd.peek()

    assert run(main, efd) == 2


def test_two_loops_in_two_threads(efd: EventFD) -> None:
    # A registration is per loop: each loop must get its own add_reader.
    sem = EventFD(semaphore=True)
    both_waiting = threading.Barrier(3, timeout=TIMEOUT)
    results: list[int] = []

    async def one() -> None:
        task = asyncio.create_task(sem.aread())
        await parked(task)
        await asyncio.to_thread(both_waiting.wait)
        results.append(await task)

    threads = [threading.Thread(target=run, args=(one, sem)) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        both_waiting.wait()
        sem.write(2)
        for t in threads:
            t.join(2 * TIMEOUT)
        assert not any(t.is_alive() for t in threads), "a loop never woke"
        assert results == [1, 1]
        assert sem.peek() == 0
    finally:
        sem.close()


def test_closed_eventfd_raises(efd: EventFD) -> None:
    efd.close()

    async def main() -> None:
        with pytest.raises(ValueError, match="closed"):
            await efd.aread()
        with pytest.raises(ValueError, match="closed"):
            await efd.await_readable()

    run(main)
    assert efd.closed


def high_eventfd() -> EventFD:
    """An EventFD on a high fd number, which nothing else reuses meanwhile, so
    a test can check that exactly this number was closed."""
    fd = os.eventfd(0)
    try:
        return EventFD.from_fd(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 900))
    finally:
        os.close(fd)


def assert_closed(fd: int) -> None:
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


def test_close_in_the_loop_wakes_every_waiter() -> None:
    # Closing an fd does not wake epoll: without close()'s help these
    # coroutines would wait forever (run() turns that into a failure).
    efd = high_eventfd()
    fd = efd.fileno()

    async def main() -> list[BaseException | int | None]:
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[int | None]] = [asyncio.create_task(efd.aread()) for _ in range(2)]
        tasks.append(asyncio.create_task(efd.await_readable()))
        await parked(*tasks)
        efd.close()
        assert_closed(fd)  # at once: this loop let go of it synchronously
        assert not registered(loop, fd)
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run(main)
    assert [type(r) for r in results] == [ValueError] * 3
    assert all("closed EventFD" in str(r) for r in results)


@pytest.mark.parametrize("loops", [1, 2])
def test_close_from_another_thread_wakes_each_loop(loops: int) -> None:
    # Each loop lets go of the fd in its own thread; the last one closes it.
    efd = high_eventfd()
    fd = efd.fileno()
    waiting = [threading.Event() for _ in range(loops)]
    outcome: list[BaseException | int | None] = [None] * loops

    async def waiter(i: int) -> None:
        task = asyncio.create_task(efd.aread())
        await parked(task)
        waiting[i].set()
        try:
            outcome[i] = await asyncio.wait_for(task, TIMEOUT)
        except BaseException as exc:
            outcome[i] = exc

    threads = [
        threading.Thread(target=asyncio.run, args=(waiter(i),), daemon=True) for i in range(loops)
    ]
    for thread in threads:
        thread.start()
    for event in waiting:
        assert event.wait(TIMEOUT), "a waiter never parked"
    efd.close()
    for thread in threads:
        thread.join(TIMEOUT + 5)
        assert not thread.is_alive(), "a loop did not let go of the closed fd"
    assert [type(r) for r in outcome] == [ValueError] * loops, outcome
    assert_closed(fd)


def test_close_with_no_waiter_left_closes_at_once(efd: EventFD) -> None:
    async def main() -> None:
        task = asyncio.create_task(efd.aread())
        await parked(task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    fd = efd.fileno()
    efd.close()
    assert_closed(fd)


def test_bad_fd_registers_nothing() -> None:
    async def main() -> bool:
        r, w = os.pipe()  # made once the loop has its own fds
        os.close(w)
        os.close(r)  # r is now a number with no open fd behind it
        with pytest.raises(ValueError):
            await _aio.wait_readable(-1)
        with pytest.raises(TypeError):
            await _aio.wait_readable("3")  # type: ignore[arg-type]
        with pytest.raises(OSError):  # EBADF from epoll_ctl
            await _aio.wait_readable(r)
        return asyncio.get_running_loop().remove_reader(r)

    assert run(main) is False


def test_wait_writable_wakes_on_a_read() -> None:
    # The other direction of the multiplexer (add_writer): at the maximum
    # count the fd is not writable until a read takes the count.
    with EventFD() as efd:
        efd.write(MAX_COUNT)

        async def main() -> bool:
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(_aio.wait_writable(efd))
            await parked(task)
            assert efd.read() == MAX_COUNT
            await task
            return loop.remove_writer(efd.fileno())

        assert run(main, efd) is False


# -- close racing the start of an await ------------------------------------------


def _close_in_another_thread(efd: EventFD) -> None:
    thread = threading.Thread(target=efd.close)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


@pytest.mark.parametrize("reuse", [False, True], ids=["number free", "number reused"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_close_racing_the_registration_raises_valueerror(
    monkeypatch: pytest.MonkeyPatch, when: str, reuse: bool
) -> None:
    """close() from another thread just before or just after the coroutine
    registers its fd with the loop (after its fileno()): aread ends promptly
    with ValueError, never waits on a dropped fd, never raises EBADF, and
    leaves no registration behind (not even on a new fd that took the number)."""
    efd = high_eventfd()
    fd = efd.fileno()
    successor: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        real_add_reader = loop.add_reader

        def add_reader(number: int, callback: Callable[..., object], *args: Any) -> None:
            if when == "before":
                _close_in_another_thread(efd)
                if reuse:
                    successor.append(os.dup2(os.eventfd(0), number))
            real_add_reader(number, callback, *args)
            if when == "after":
                _close_in_another_thread(efd)

        monkeypatch.setattr(loop, "add_reader", add_reader)
        with pytest.raises(ValueError, match="closed EventFD"):
            await efd.aread()
        for _ in range(3):
            await asyncio.sleep(0)  # let a deferred let-go run
        assert not registered(loop, fd)

    try:
        run(main)
        if not successor:
            assert_closed(fd)
    finally:
        for number in successor:
            os.close(number)


def test_close_racing_aread_from_another_thread_never_hangs() -> None:
    """The outside test's loop: a thread closes the EventFD while a coroutine
    is starting aread(); every round must end with ValueError (or a count,
    had one been written), promptly."""
    outcomes: dict[str, int] = {}

    async def main() -> None:
        for _ in range(300):
            efd = EventFD()
            closer = threading.Thread(target=efd.close)
            closer.start()
            try:
                await asyncio.wait_for(efd.aread(), TIMEOUT)
            except ValueError:
                kind = "ValueError"
            else:
                kind = "value"
            outcomes[kind] = outcomes.get(kind, 0) + 1
            closer.join(TIMEOUT)
            efd.close()

    run(main)
    assert set(outcomes) == {"ValueError"}, outcomes


def test_fork_while_a_coroutine_awaits_then_close_in_the_child() -> None:
    """The child's close() must close its fd: the loop it would wait for runs
    only in the parent."""
    efd = high_eventfd()
    fd = efd.fileno()
    parked_event = threading.Event()
    outcome: list[BaseException] = []

    async def waiter() -> None:
        task = asyncio.create_task(efd.aread())
        await parked(task)
        parked_event.set()
        try:
            await asyncio.wait_for(task, TIMEOUT)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=asyncio.run, args=(waiter(),), daemon=True)
    thread.start()
    assert parked_event.wait(TIMEOUT)
    with warnings.catch_warnings():
        # 3.12+ warns that forking a threaded process may deadlock the child;
        # this child only closes an fd and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: only this thread exists here
        code = 1
        try:
            efd.close()
            try:
                os.fstat(fd)
            except OSError as exc:
                code = 0 if exc.errno == errno.EBADF else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's close left the fd open"
    efd.close()
    thread.join(TIMEOUT + 5)
    assert not thread.is_alive()
    assert [type(e) for e in outcome] == [ValueError]
    assert_closed(fd)
