"""The lifecycle core's promises (csrc/owner.h), for every owner class.

- close() wakes every call of the object that sleeps, which raises ValueError;
- after close(), no call of the object touches a number another object took;
- a spin obeys signals and timeouts, and a count that comes after a signal
  stays in the counter;
- counting is exact (a write whose wake-up failed is not added twice);
- watch() cannot leak a watcher, and a forked child is no watcher;
- shared memory is sealed: no holder can shrink it under the others;
- a closed or half-built object never returns -1, raises from repr, or warns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from eventfd_ext import Doorbell, EventFD, MaskFD

# How long a woken call may take to leave: far above the ~0.3 ms it takes,
# far below "never" (a correctness bound, not a performance claim).
WAKE_BOUND = 2.0


def _blocked_in_kernel(tid: int) -> bool:
    """Whether thread *tid* of this process sleeps (state S)."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0] == "S"


def _run_until_blocked(call: Callable[[], object]) -> tuple[threading.Thread, list[Any]]:
    """Start *call* in a thread and return once it sleeps in the kernel."""
    outcome: list[Any] = []
    tid: list[int] = []

    def body() -> None:
        tid.append(threading.get_native_id())
        try:
            outcome.append(call())
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not tid or not _blocked_in_kernel(tid[0]):
        assert thread.is_alive(), f"returned instead of blocking: {outcome}"
        assert time.monotonic() < deadline, "never blocked"
        time.sleep(0.001)
    # Asleep once is not asleep in the call (a spin yields): wait for the
    # sleep that lasts.
    while not all(_blocked_in_kernel(tid[0]) for _ in range(50)):
        time.sleep(0.001)
    return thread, outcome


def _full(bell: Doorbell) -> Doorbell:
    bell.write(2**64 - 2)
    return bell


BLOCKING_CALLS: dict[str, tuple[Callable[[], Any], Callable[[Any], object]]] = {
    "EventFD.read": (EventFD, lambda o: o.read()),
    "EventFD.read(timeout)": (EventFD, lambda o: o.read(timeout=60)),
    "EventFD.read spin": (lambda: EventFD(spin=0.001), lambda o: o.read()),
    "EventFD.wait": (EventFD, lambda o: o.wait()),
    "EventFD.wait(timeout)": (EventFD, lambda o: o.wait(60)),
    "Doorbell.read": (Doorbell, lambda o: o.read()),
    "Doorbell.read(timeout)": (Doorbell, lambda o: o.read(timeout=60)),
    "Doorbell.read spin": (lambda: Doorbell(spin=0.001), lambda o: o.read()),
    "Doorbell.wait": (Doorbell, lambda o: o.wait()),
    "Doorbell.write at the maximum": (
        lambda: _full(Doorbell()),
        lambda o: o.write(1),
    ),
}


@pytest.mark.parametrize("name", BLOCKING_CALLS)
def test_close_wakes_a_blocked_call_with_valueerror(name: str) -> None:
    make, call = BLOCKING_CALLS[name]
    obj = make()
    thread, outcome = _run_until_blocked(lambda: call(obj))
    start = time.monotonic()
    obj.close()
    thread.join(WAKE_BOUND)
    assert not thread.is_alive(), f"{name}: still blocked after close()"
    assert time.monotonic() - start < WAKE_BOUND
    assert isinstance(outcome[0], ValueError), outcome
    assert "closed" in str(outcome[0])


def test_close_wakes_every_sleeper_of_the_object() -> None:
    bell = Doorbell()
    started = [_run_until_blocked(bell.read) for _ in range(4)]
    bell.close()
    for thread, outcome in started:
        thread.join(WAKE_BOUND)
        assert isinstance(outcome[0], ValueError)


# -- no call touches a number another object took -------------------------

OWNERS: dict[str, Callable[[], Any]] = {
    "EventFD": EventFD,
    "Doorbell": Doorbell,
    "MaskFD": MaskFD,
}

CALLS: dict[str, Callable[[Any], object]] = {
    "write": lambda o: o.write(1) if not isinstance(o, MaskFD) else o.set(1),
    "read": lambda o: o.try_read() if not isinstance(o, MaskFD) else o.read(),
    "peek": lambda o: o.peek() if not isinstance(o, MaskFD) else o.events,
    "repr": repr,
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("owner", OWNERS)
def test_calls_racing_close_never_touch_the_number_reused(owner: str, call: str) -> None:
    """A thread calls without pause while another closes the object and
    at once makes an eventfd, which takes the number (count 7).  The
    eventfd's count must stay 7: no late write or read lands in it."""
    rounds = 100
    act = CALLS[call]
    for _ in range(rounds):
        obj = OWNERS[owner]()
        stop = threading.Event()
        errors: list[BaseException] = []

        def hammer(
            obj: Any = obj, stop: threading.Event = stop, errors: list[Any] = errors
        ) -> None:
            while not stop.is_set():
                try:
                    act(obj)
                except ValueError:
                    return  # closed: the one thing a racing call may say
                except BaseException as e:
                    errors.append(e)
                    return

        thread = threading.Thread(target=hammer)
        thread.start()
        obj.close()
        fds = [os.eventfd(7, os.EFD_NONBLOCK) for _ in range(3)]  # take the numbers
        stop.set()
        thread.join()
        try:
            assert not errors, errors
            for fd in fds:
                assert os.eventfd_read(fd) == 7
        finally:
            for fd in fds:
                os.close(fd)


# -- spins obey signals and timeouts ----------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize("make", [lambda: EventFD(spin=1.0), lambda: Doorbell(spin=1.0)])
def test_a_count_written_after_a_signal_stays_in_the_counter(make: Callable[[], Any]) -> None:
    """A signal lands while the main thread spins; then a count comes.  The
    handler raises: the count must still be in the counter, and the spin
    must leave well before its 1 s budget."""
    obj = make()
    main = threading.get_ident()

    def handler(signum: int, frame: object) -> None:
        raise Boom

    def signal_then_write() -> None:
        time.sleep(0.05)  # let the main thread start spinning (not a sync)
        signal.pthread_kill(main, signal.SIGUSR1)
        obj.write(1)

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        thread = threading.Thread(target=signal_then_write)
        start = time.monotonic()
        thread.start()
        with pytest.raises(Boom):
            obj.read()
        left_after = time.monotonic() - start
        thread.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert left_after < 0.5, f"the spin ignored the signal for {left_after:.3f} s"
    assert obj.try_read() == 1, "the count that came after the signal was lost"
    obj.close()


@pytest.mark.parametrize(
    "make", [lambda: EventFD(spin=0.3), lambda: Doorbell(spin=0.3)], ids=["EventFD", "Doorbell"]
)
@pytest.mark.parametrize("method", ["read", "wait"])
def test_spinning_counts_against_the_timeout(make: Callable[[], Any], method: str) -> None:
    obj = make()
    start = time.monotonic()
    if method == "read":
        with pytest.raises(TimeoutError):
            obj.read(timeout=0.3)
    else:
        assert obj.wait(0.3) is False
    elapsed = time.monotonic() - start
    obj.close()
    assert 0.3 <= elapsed < 0.5, f"{method}(0.3) took {elapsed:.3f} s"


@pytest.mark.parametrize(
    "make", [lambda: EventFD(spin=1.0), lambda: Doorbell(spin=1.0)], ids=["EventFD", "Doorbell"]
)
@pytest.mark.parametrize("method", ["read", "wait"])
def test_a_spin_longer_than_the_timeout_ends_at_the_timeout(
    make: Callable[[], Any], method: str
) -> None:
    obj = make()
    start = time.monotonic()
    if method == "read":
        with pytest.raises(TimeoutError):
            obj.read(timeout=0.1)
    else:
        assert obj.wait(0.1) is False
    elapsed = time.monotonic() - start
    obj.close()
    assert 0.1 <= elapsed < 0.5, f"{method}(0.1) with a 1 s spin took {elapsed:.3f} s"


@pytest.mark.parametrize("cls", [EventFD, Doorbell])
@pytest.mark.parametrize("spin", [1.5, 1e9, float("inf"), 2**70, 10**400, -1, float("nan")])
def test_absurd_spin_budgets_are_refused_with_one_message(cls: Any, spin: float) -> None:
    with pytest.raises(ValueError, match=r"spin must be between 0 and 1\.0 seconds"):
        cls(spin=spin)
    obj = cls()
    with pytest.raises(ValueError, match=r"spin must be between 0 and 1\.0 seconds"):
        obj.spin = spin
    obj.close()


# -- exact counting --------------------------------------------------------


def test_a_write_whose_ring_fails_is_added_once() -> None:
    bell = Doorbell()
    with bell.watch():  # every write now rings the eventfd
        efd = bell.fileno()
        saved = os.dup(efd)
        os.close(efd)  # behind the object's back: the ring gets EBADF
        try:
            with pytest.raises(OSError, match="the value was added"):
                bell.write(1)
            with pytest.raises(OSError, match="the value was added"):
                bell.write(5)
            assert bell.peek() == 6
        finally:
            os.dup2(saved, efd)
            os.close(saved)
    bell.close()


# -- watch(): no leak, no inherited watcher --------------------------------


def test_a_watch_abandoned_mid_way_is_given_back() -> None:
    """An exception between entering and the block (what a raising signal
    handler can cause) drops the context manager without its exit: the
    shared watcher must still be given back."""
    bell = Doorbell()
    manager = bell.watch()
    manager.__enter__()
    assert bell._info()[2] == 1
    del manager  # no __exit__, as if an exception had skipped it
    assert bell._info()[2] == 0
    bell.close()


def test_a_watch_given_back_after_close_inside() -> None:
    bell, other = Doorbell(), None
    memfd, efd = bell.fds()
    other = Doorbell.from_fds(os.dup(memfd), os.dup(efd))
    with bell.watch():
        bell.close()
    assert other._info()[2] == 0
    other.close()


def test_a_child_forked_while_another_thread_watches_is_no_watcher() -> None:
    bell = Doorbell()
    inside, leave = threading.Event(), threading.Event()

    def watcher() -> None:
        with bell.watch():
            inside.set()
            leave.wait()

    thread = threading.Thread(target=watcher)
    thread.start()
    inside.wait()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            with open("/proc/self/io") as f:
                before = int(f.read().split("syscr: ")[1].split()[0])
            for _ in range(100):
                bell.write(1)
                bell.try_read()
            with open("/proc/self/io") as f:
                after = int(f.read().split("syscr: ")[1].split()[0])
            os.write(w, str(after - before).encode())
        finally:
            os._exit(0)
    os.close(w)
    reads = int(os.read(r, 100) or b"-1")
    os.close(r)
    os.waitpid(pid, 0)
    leave.set()
    thread.join()
    bell.close()
    # The parent's watcher still makes the writes ring (its poller needs
    # them); the child's takes must not drain tokens as a watcher would.
    assert 0 <= reads < 10, f"{reads} read syscalls for 100 takes in the child"


# -- shared memory no peer can break ----------------------------------------


def test_a_doorbell_page_cannot_be_shrunk_or_grown() -> None:
    bell = Doorbell()
    memfd, _ = bell.fds()
    size = os.fstat(memfd).st_size
    for new in (0, size - 1, size + 4096):
        with pytest.raises(PermissionError):
            os.ftruncate(memfd, new)
    bell.write(3)
    assert bell.read() == 3
    bell.close()


def test_an_unsealed_copy_of_a_page_is_refused() -> None:
    bell = Doorbell()
    memfd, efd = bell.fds()
    copy = os.memfd_create("copy")
    os.write(copy, os.pread(memfd, os.fstat(memfd).st_size, 0))
    efd2 = os.dup(efd)
    with pytest.raises(ValueError, match="not a Doorbell"):
        Doorbell.from_fds(copy, efd2)
    os.fstat(copy)  # left open: the caller's
    os.close(copy)
    os.close(efd2)
    bell.close()


# -- closed and half-built objects -------------------------------------------


@pytest.mark.parametrize("owner", OWNERS)
def test_a_closed_object_raises_rather_than_returning_minus_one(owner: str) -> None:
    obj = OWNERS[owner]()
    obj.close()
    with pytest.raises(ValueError):
        obj.fileno()
    if hasattr(obj, "fds"):
        with pytest.raises(ValueError):
            obj.fds()
    assert "closed" in repr(obj)


@pytest.mark.parametrize("owner", OWNERS)
def test_repr_racing_close_never_raises(owner: str) -> None:
    for _ in range(200):
        obj = OWNERS[owner]()
        errors: list[BaseException] = []

        def show(obj: Any = obj, errors: list[Any] = errors) -> None:
            for _ in range(20):
                try:
                    repr(obj)
                except BaseException as e:
                    errors.append(e)

        thread = threading.Thread(target=show)
        thread.start()
        obj.close()
        thread.join()
        assert not errors, errors


@pytest.mark.parametrize("owner", OWNERS)
def test_a_half_built_object_never_warns(owner: str) -> None:
    """Creation failing for want of fds (EMFILE) raises OSError, and the
    object nobody received is not reported as unclosed."""
    code = textwrap.dedent(
        f"""
        import resource, warnings, gc, os, errno
        from eventfd_ext import {owner} as cls
        warnings.simplefilter("error")
        used = len(os.listdir("/proc/self/fd")) - 1  # less listdir's own
        failed = 0
        for room in range(4):  # fail at each fd creation makes, then succeed
            resource.setrlimit(resource.RLIMIT_NOFILE, (used + room, 1024))
            try:
                cls().close()
            except OSError as e:
                assert e.errno == errno.EMFILE, e
                failed += 1
            gc.collect()
        assert failed >= 1
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "unclosed" not in result.stderr
    assert result.stdout.strip() == "ok"


# -- what the outside tests found ------------------------------------------


@pytest.mark.parametrize("owner", OWNERS)
def test_an_object_resurrected_after_its_finalizer_says_closed(owner: str) -> None:
    """A reference cycle whose other member saves the object in its __del__
    brings it back after its own __del__ freed the handle: every call then
    raises ValueError (in a child: a crash must not take pytest down)."""
    code = textwrap.dedent(
        f"""
        import gc
        from eventfd_ext import {owner} as cls
        saved = []
        class Holder:
            def __del__(self):
                saved.append(self.things)
        things = [cls()]
        holder = Holder()
        holder.things = things
        things.append(holder)
        del things, holder
        import warnings; warnings.simplefilter("ignore")
        gc.collect()
        obj = saved.pop()[0]
        if "{owner}" == "MaskFD":
            calls = [lambda: obj.update(set=1), lambda: obj.write(1, 2), lambda: obj.set(1),
                     lambda: obj.clear(1), lambda: obj.write_bytes(bytes(12)), obj.read]
        else:
            calls = [lambda: obj.write(1), obj.try_read, lambda: obj.read(timeout=0)]
        for call in calls + [obj.fileno, obj.fds]:
            try:
                call()
            except ValueError:
                continue
            raise SystemExit(f"{{call}} did not raise ValueError")
        assert "closed" in repr(obj)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("owner", OWNERS)
def test_an_object_made_without_init_says_closed(owner: str) -> None:
    cls: Any = OWNERS[owner]
    obj = cls.__new__(cls)
    assert "closed" in repr(obj)
    assert obj.closed
    for call in (obj.fileno, obj.fds):
        with pytest.raises(ValueError):
            call()
    obj.close()  # nothing to close


def test_a_number_reused_after_close_returns_is_never_closed_by_a_woken_call() -> None:
    """close() returns only once the calls it woke have left: a caller that
    reuses the number at once (dup2 onto it) keeps its file."""
    for _ in range(20):
        ev = EventFD()
        number = ev.fileno()
        thread, outcome = _run_until_blocked(ev.read)
        ev.close()
        sentinel = os.eventfd(77)  # takes the number if it is free already
        if sentinel != number:
            os.dup2(sentinel, number)
            os.close(sentinel)
        thread.join(WAKE_BOUND)
        try:
            assert isinstance(outcome[0], ValueError)
            assert os.eventfd_read(number) == 77, "the woken call closed the reused number"
        finally:
            os.close(number)


def test_pickling_for_multiprocessing_racing_close_never_carries_another_file() -> None:
    """The fds travel as duplicates made inside one call of the object: a
    close() racing the pickling, with the number taken at once, makes the
    pickling fail with ValueError, never carry the new file."""
    from multiprocessing.reduction import ForkingPickler

    for _ in range(300):
        ev = EventFD(5)
        pickled: list[bytes] = []
        errors: list[BaseException] = []

        def dump(
            ev: EventFD = ev, pickled: list[bytes] = pickled, errors: list[Any] = errors
        ) -> None:
            try:
                pickled.append(bytes(ForkingPickler.dumps(ev)))
            except ValueError:
                pass
            except BaseException as e:
                errors.append(e)

        thread = threading.Thread(target=dump)
        thread.start()
        ev.close()
        taken = [os.eventfd(99) for _ in range(2)]
        thread.join()
        try:
            assert not errors, errors
            for data in pickled:
                with ForkingPickler.loads(data) as copy:
                    assert copy.peek() == 5, "the pickle carried the file that took the number"
        finally:
            for fd in taken:
                os.close(fd)
