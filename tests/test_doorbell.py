"""Doorbell: EventFD's interface and counter rules on a counter in shared
memory, with the eventfd only as wake-up channel.

- The counter rules are EventFD's: tests/reliability/test_model.py runs one
  model-based machine against both.
- Write+read with nobody asleep makes no syscall (/proc/self/io).
- Sleepers (threads, forked processes) are woken; pollers inside watch()
  never miss a pending count (select, poll, epoll level- and edge-triggered);
  asyncio; a C peer that maps the same layout.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import io
import os
import pathlib
import platform
import re
import select
import selectors
import shlex
import shutil
import subprocess
import threading
import time

import pytest

import _kernel
import eventfd_ext
from _kernel import TIMEOUT, Child, in_thread, join_thread
from eventfd_ext import Doorbell, EventFD

MAX = 2**64 - 2


def test_close_twice_and_the_closed_repr() -> None:
    """What a closed Doorbell refuses, and how: tests/reliability/test_bad_input.py."""
    bell = Doorbell(3)
    bell.close()
    bell.close()  # idempotent
    assert bell.closed
    for call in (bell.read, bell.try_read, bell.write, bell.peek, bell.wait, bell.fileno, bell.fds):
        with pytest.raises(ValueError, match="closed Doorbell"):
            call()
    assert repr(bell) == "<Doorbell [closed]>"


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def test_unclosed_doorbell_warns_and_closes_its_fds() -> None:
    bell = Doorbell()
    files = {fd: _identity(fd) for fd in bell.fds()}
    with pytest.warns(ResourceWarning, match="unclosed <Doorbell"):
        del bell
        gc.collect()
    # Closed: each number is free, or another file's by now.
    assert all(_identity(fd) != before for fd, before in files.items())


# -- no syscall when nobody sleeps ---------------------------------------------------


def _syscalls() -> tuple[int, int]:
    with open("/proc/self/io") as f:
        io = dict(line.split(": ") for line in f.read().splitlines())
    return int(io["syscr"]), int(io["syscw"])


def test_write_and_read_make_no_syscall_when_nobody_sleeps() -> None:
    with Doorbell() as bell, Doorbell(semaphore=True) as sem:
        for b in (bell, sem):  # warm up
            b.write()
            b.read()
        before = _syscalls()
        for _ in range(1_000):
            bell.write()
            bell.read()
            sem.write(2)
            sem.read()
            sem.try_read()
        after = _syscalls()
    # The two reads of /proc/self/io themselves are one read(2) each.
    assert after[0] - before[0] <= 2, (before, after)
    assert after[1] == before[1], (before, after)


# -- sleepers are woken ---------------------------------------------------------------


@pytest.mark.parametrize("spin", [0.0, None, 50e-6])
@pytest.mark.parametrize("call", ["read", "read_timeout", "wait"])
def test_a_sleeping_thread_is_woken(call: str, spin: float | None) -> None:
    with Doorbell(spin=spin) as bell:
        calls = {
            "read": lambda: bell.read(),
            "read_timeout": lambda: bell.read(timeout=TIMEOUT),
            "wait": lambda: bell.wait(TIMEOUT),
        }
        thread, out = in_thread(calls[call])
        assert _kernel.wait_in_syscall(thread, "poll")
        bell.write(7)
        join_thread(thread)
        assert out == {"result": True if call == "wait" else 7}


def test_read_timeout_times_out_and_takes_nothing() -> None:
    with Doorbell(spin=0) as bell:
        with pytest.raises(TimeoutError):
            bell.read(timeout=0.02)
        assert not bell.wait(0)
        bell.write(2)
        assert bell.wait(0)
        assert bell.peek() == 2


def test_a_forked_process_shares_the_counter_and_is_woken() -> None:
    with Doorbell() as ping, Doorbell() as pong:

        def child() -> None:
            for rnd in range(200):
                assert ping.read(timeout=TIMEOUT) == 1, rnd
                pong.write()

        peer = Child(child)
        try:
            for rnd in range(200):
                ping.write()
                assert pong.read(timeout=TIMEOUT) == 1, rnd
            peer.check()
        finally:
            peer.close()


def test_a_write_at_the_maximum_waits_for_a_read() -> None:
    with Doorbell() as bell:
        bell.write(MAX)
        bell.nonblocking = True
        with pytest.raises(BlockingIOError):
            bell.write(1)
        bell.nonblocking = False
        thread, out = in_thread(lambda: bell.write(1))
        assert _kernel.wait_in_syscall(thread, "futex")
        assert bell.read() == MAX
        join_thread(thread)
        assert out == {"result": None}
        assert bell.peek() == 1


# -- pollers inside watch() -----------------------------------------------------------


def _readable(fd: int, how: str, ep: select.epoll | None = None) -> bool:
    if how == "select":
        return bool(select.select([fd], [], [], 0)[0])
    if how == "poll":
        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(0))
    assert ep is not None
    return bool(ep.poll(0))


@pytest.mark.parametrize("how", ["select", "poll", "epoll", "epoll_et"])
def test_a_poller_inside_watch_never_misses_a_count(how: str) -> None:
    with Doorbell() as bell, select.epoll() as ep:
        bell.write(3)  # pending before the watch: readable at once inside
        with bell.watch():
            ep.register(bell, select.EPOLLIN | (select.EPOLLET if how == "epoll_et" else 0))
            for rnd in range(100):
                assert _readable(bell.fileno(), how.removesuffix("_et"), ep), rnd
                assert bell.read() >= 1
                assert not _readable(bell.fileno(), how.removesuffix("_et"), ep) or bell.peek(), rnd
                bell.write(1)


def _watchers(bell: Doorbell) -> int:
    return bell._info()[2]  # the shared count of holders inside watch()


def test_closing_inside_watch_leaves_no_watcher_behind() -> None:
    """A watcher left counted would make every holder's write ring the
    eventfd: a syscall each, for good."""
    with Doorbell() as bell:
        other = Doorbell.from_fds(*map(os.dup, bell.fds()))
        with other.watch():
            assert _watchers(bell) == 1
            other.close()
        assert _watchers(bell) == 0
        before = _syscalls()
        bell.write()
        assert _syscalls()[1] == before[1]  # no ring
        assert bell.read() == 1


def test_a_watch_that_fails_to_ring_is_not_counted() -> None:
    with Doorbell(1) as bell:
        fd = bell.fds()[1]
        os.close(fd)  # behind the object's back: the ring fails
        with pytest.raises(OSError) as info, bell.watch():
            pass
        assert info.value.errno == errno.EBADF
        assert _watchers(bell) == 0
        spare = os.eventfd(0)  # something at the number for close() to close
        if spare != fd:
            os.dup2(spare, fd)
            os.close(spare)


def test_semaphore_poller_sees_the_count_left_behind() -> None:
    with Doorbell(semaphore=True) as bell, bell.watch():
        bell.write(3)
        for _ in range(3):
            assert select.select([bell], [], [], 0)[0]
            assert bell.read() == 1
        assert not select.select([bell], [], [], 0)[0]


def test_fileno_outside_watch_is_refused_loudly() -> None:
    """Outside watch() writes do not reach the eventfd: a poller given it
    would sleep through a pending count, so fileno() refuses, naming the
    way in; fds() still gives the numbers for passing."""
    with Doorbell(1) as bell:
        for _ in range(2):  # before any watch, and after one ended
            with pytest.raises(io.UnsupportedOperation, match=r"only inside its watch\(\)"):
                bell.fileno()
            with pytest.raises(io.UnsupportedOperation, match=r"watch\(\)"):
                select.select([bell], [], [], 0)  # the silent mistake, now loud
            with bell.watch():
                assert bell.fileno() == bell.fds()[1]
                assert select.select([bell], [], [], 0)[0] == [bell]
        assert bell.read() == 1


def test_fileno_answers_while_any_watch_of_the_object_is_open() -> None:
    with Doorbell() as bell:
        with bell.watch():
            with bell.watch():
                pass
            assert bell.fileno() >= 0  # the outer block still watches
            # Another thread's calls see this thread's watch: the object is watched.
            thread, out = in_thread(bell.fileno)
            join_thread(thread)
            assert out == {"result": bell.fds()[1]}
        with pytest.raises(io.UnsupportedOperation):
            bell.fileno()


def test_selectors_unregister_after_the_watch_ended() -> None:
    # io.UnsupportedOperation is a ValueError: selectors then finds the
    # object by identity, so a registration made inside can end outside.
    with Doorbell() as bell, selectors.DefaultSelector() as sel:
        with pytest.raises(ValueError):
            sel.register(bell, selectors.EVENT_READ)
        with bell.watch():
            sel.register(bell, selectors.EVENT_READ)
            bell.write(2)
            assert [key.fileobj for key, _ in sel.select(0)] == [bell]
        sel.unregister(bell)
        assert not sel.get_map()
        assert bell.read() == 2


def test_after_the_watch_ended_a_reader_is_removed_by_number() -> None:
    """As docs/doorbell.md says: after watch(), poll, epoll and asyncio
    cannot look the object up (remove_reader(bell) raises and leaves the
    reader); the eventfd's number from fds() removes it."""
    with Doorbell() as bell:
        poller = select.epoll()
        try:
            with bell.watch():
                poller.register(bell, select.EPOLLIN)
            with pytest.raises(ValueError):
                poller.unregister(bell)
            poller.unregister(bell.fds()[1])
            with pytest.raises(FileNotFoundError):  # gone: ENOENT
                poller.unregister(bell.fds()[1])
        finally:
            poller.close()

        loop = asyncio.new_event_loop()
        try:
            with bell.watch():
                loop.add_reader(bell, lambda: None)
            with pytest.raises(ValueError):
                loop.remove_reader(bell)
            assert loop.remove_reader(bell.fds()[1])  # True: it was still there
            assert not loop.remove_reader(bell.fds()[1])
        finally:
            loop.close()


def test_a_child_forked_inside_watch_is_not_watching() -> None:
    with Doorbell() as bell, bell.watch():
        pid = os.fork()
        if pid == 0:
            try:
                bell.fileno()
            except io.UnsupportedOperation:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child's fileno() answered"
        assert bell.fileno() >= 0  # the parent still watches


# -- asyncio -----------------------------------------------------------------------------


def test_aread_waits_without_blocking_the_loop_and_close_wakes_it() -> None:
    async def main() -> None:
        bell = Doorbell()
        task = asyncio.create_task(bell.aread())
        await asyncio.sleep(0)
        assert not task.done()
        bell.write(4)
        assert await asyncio.wait_for(task, TIMEOUT) == 4
        waiter = asyncio.create_task(bell.await_readable())
        await asyncio.sleep(0)
        bell.close()
        with pytest.raises(ValueError, match="closed Doorbell"):
            await asyncio.wait_for(waiter, TIMEOUT)

    asyncio.run(main())


def test_awaiters_never_block_the_loop_on_a_blocking_eventfd() -> None:
    """from_fds may adopt a blocking eventfd (a C peer made it).  Two
    await_readable and one aread, all woken by one ring: the aread takes
    the token and the count between the awaiters' turns, so the second
    awaiter finds no token; its drain must not block the loop in read(2)."""
    bell = Doorbell()
    os.set_blocking(bell.fds()[1], True)
    unblocked: list[bool] = []

    def watchdog() -> None:  # frees a loop stuck in read(2), so the test fails instead
        if not finished.wait(TIMEOUT):
            unblocked.append(True)
            os.eventfd_write(bell.fds()[1], 1)

    async def main() -> None:
        first = asyncio.create_task(bell.await_readable())
        reader = asyncio.create_task(bell.aread())
        second = asyncio.create_task(bell.await_readable())
        await asyncio.sleep(0)
        bell.write(1)
        assert await asyncio.wait_for(reader, TIMEOUT) == 1
        # An awaiter whose turn came after the reader's take waits on (the
        # count is 0 again): a second write ends both waits.
        bell.write(2)
        await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)

    import threading

    finished = threading.Event()
    thread, _ = in_thread(watchdog)
    try:
        asyncio.run(main())
    finally:
        finished.set()
        join_thread(thread)
        bell.close()
    assert not unblocked, "an awaiter blocked the loop in read(2)"


# -- a C peer --------------------------------------------------------------------------

PEER = pathlib.Path(__file__).resolve().parents[1] / "csrc" / "tests" / "bell_peer.c"
# What a C peer builds with: the installed headers, and every warning an error.
PEER_CFLAGS = ["-Wall", "-Wextra", "-Werror", "-pthread", f"-I{eventfd_ext.get_include()}"]


def _c_compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the C programs")
    return cc


def test_get_include_holds_the_c_api_of_this_install() -> None:
    include = pathlib.Path(eventfd_ext.get_include())
    assert include.is_absolute()
    assert (include / "eventfd_ext" / "doorbell.h").is_file()
    assert (include / "eventfd_ext" / "eventfd_io.h").is_file()
    assert (include / "eventfd_ext" / "channel.h").is_file()
    assert (include / "eventfd_ext" / "shlock.h").is_file()
    # Beside the package it describes, so that the layout a peer compiles
    # in is the one this Doorbell maps.
    assert include.parent == pathlib.Path(eventfd_ext.__file__).resolve().parent


# Unoptimised and optimised: gcc's flow warnings (-Wmaybe-uninitialized)
# come only with optimisation.
OPT_LEVELS = ["-O0", "-O2"]


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_the_header_stands_alone(tmp_path: pathlib.Path, opt: str) -> None:
    """A C file with nothing but the include compiles, as C11 and as GNU C,
    with every warning an error: the header brings what it needs."""
    source = tmp_path / "alone.c"
    source.write_text("#include <eventfd_ext/doorbell.h>\nint main(void) { return 0; }\n")
    for std in ("-std=c11", "-std=gnu11"):
        subprocess.run(
            [_c_compiler(), std, opt, *PEER_CFLAGS, "-o", str(tmp_path / "alone"), str(source)],
            check=True,
            timeout=120,
        )


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc",
    reason="the header tells a late include by glibc's feature macros (__USE_GNU)",
)
def test_the_header_names_what_it_needs_when_included_late(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "late.c"
    source.write_text(
        "#include <stdio.h>\n#include <eventfd_ext/doorbell.h>\nint main(void) { return 0; }\n"
    )
    out = subprocess.run(
        [_c_compiler(), *PEER_CFLAGS, "-fsyntax-only", str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "define _GNU_SOURCE before the first #include" in out.stderr


PROTOCOL_DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "doorbell-protocol.md"


def _protocol_doc_example() -> tuple[str, list[str]]:
    """docs/doorbell-protocol.md's C block, and its compile command with the
    include folder of this install."""
    text = PROTOCOL_DOC.read_text()
    (block,) = re.findall(r"```c\n(.*?)```", text, re.S)
    (command,) = re.findall(r"```\n(cc .*?)\n```", text, re.S)
    include = "\"$(python -c 'import eventfd_ext; print(eventfd_ext.get_include())')\""
    assert include in command, command
    return block, shlex.split(command.replace(include, shlex.quote(eventfd_ext.get_include())))


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_the_c_example_of_the_protocol_doc_compiles(tmp_path: pathlib.Path, opt: str) -> None:
    """docs/doorbell-protocol.md's C block compiles with its own command, as
    written (plus each optimisation level), against the installed header."""
    block, command = _protocol_doc_example()
    (tmp_path / "peer.c").write_text(block)
    assert command[0] == "cc"
    subprocess.run(
        [_c_compiler(), *command[1:], opt, "-pthread"], cwd=tmp_path, check=True, timeout=120
    )
    assert (tmp_path / "peer.o").is_file()


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_a_program_calling_the_c_example_links(tmp_path: pathlib.Path, opt: str) -> None:
    """The example's calls in a whole program (attach, write, detach, with
    a failed attach's handle) compile and link with every warning an error."""
    block, _ = _protocol_doc_example()
    source = tmp_path / "main.c"
    source.write_text(block + "\nint main(void) { return ring_once(-1, -1) == -EBADF ? 0 : 1; }\n")
    exe = tmp_path / "main"
    subprocess.run(
        [_c_compiler(), opt, *PEER_CFLAGS, "-o", str(exe), str(source)], check=True, timeout=120
    )
    assert subprocess.run([str(exe)], timeout=TIMEOUT).returncode == 0


def test_a_c_peer_mapping_the_layout_rings_and_takes(tmp_path: pathlib.Path) -> None:
    """The C peer builds against the installed header alone (get_include()),
    and shares a Doorbell with this process."""
    exe = tmp_path / "bell_peer"
    subprocess.run(
        [_c_compiler(), "-O2", *PEER_CFLAGS, "-o", str(exe), str(PEER)], check=True, timeout=120
    )
    with Doorbell() as ping, Doorbell() as pong:
        fds = [*ping.fds(), *pong.fds()]
        peer = subprocess.Popen([str(exe), "pong", *map(str, fds), "1000"], pass_fds=fds)
        try:
            for rnd in range(1000):
                ping.write()
                assert pong.read(timeout=TIMEOUT) == 1, rnd
        finally:
            assert peer.wait(TIMEOUT) == 0


# -- other processes ------------------------------------------------------------------


def _bell_child(ping: Doorbell, pong: Doorbell) -> None:
    with ping, pong:
        assert ping.read(timeout=TIMEOUT) == 5
        pong.write(6)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_carries_the_same_doorbell(method: str) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    with Doorbell() as ping, Doorbell(spin=0) as pong:
        process = ctx.Process(target=_bell_child, args=(ping, pong))  # type: ignore[attr-defined]
        process.start()
        try:
            ping.write(5)
            assert pong.read(timeout=TIMEOUT) == 6
        finally:
            process.join(TIMEOUT)
        assert process.exitcode == 0


def test_subprocess_adopts_it_with_from_fds() -> None:
    import sys
    import textwrap

    with Doorbell(4) as bell:
        fds = bell.fds()
        with bell.watch():  # where fileno() answers
            assert fds[1] == bell.fileno()
        script = textwrap.dedent(
            f"""
            from eventfd_ext import Doorbell
            with Doorbell.from_fds({fds[0]}, {fds[1]}) as bell:
                assert bell.read() == 4
                bell.write(9)
            """
        )
        subprocess.run([sys.executable, "-c", script], pass_fds=fds, check=True, timeout=TIMEOUT)
        assert bell.read() == 9


def test_from_fds_refuses_a_wake_up_channel_that_is_not_an_eventfd() -> None:
    # A real Doorbell's memfd with a pipe beside it: the layout is right, so
    # only a check of the eventfd itself can refuse it.
    r, w = os.pipe()
    with Doorbell() as bell:
        memfd = os.dup(bell.fds()[0])
        try:
            with pytest.raises(ValueError, match="not a Doorbell's"):
                Doorbell.from_fds(memfd, r)
            os.fstat(memfd), os.fstat(r)  # still open
        finally:
            for fd in (memfd, r, w):
                os.close(fd)


def test_a_parent_inside_watch_sees_writes_after_its_child_left() -> None:
    with Doorbell() as bell:
        poller = select.poll()
        r, w = os.pipe()
        with bell.watch():
            poller.register(bell, select.POLLIN)
            pid = os.fork()
            if pid != 0:
                os.close(w)
                assert os.read(r, 1) == b"x"  # the child has left watch()
                assert bell._info()[2] == 1  # still counted: the parent's
                writer = os.fork()
                if writer == 0:  # pragma: no cover
                    bell.write(1)
                    os._exit(0)
                assert os.waitpid(writer, 0)[1] == 0
                assert poller.poll(TIMEOUT * 1000), "the write never reached the fd"
                assert bell.try_read() == 1
        if pid == 0:  # pragma: no cover - the child, out of watch()
            os.write(w, b"x")
            os._exit(0)
        os.close(r)
        assert os.waitpid(pid, 0)[1] == 0
        assert bell._info()[2] == 0  # each exit once: not below 0 (a wrap would stop all rings)


def test_write_zero_inside_watch_leaves_the_fd_unreadable() -> None:
    with Doorbell() as bell, bell.watch():
        bell.write(0)
        assert not select.select([bell], [], [], 0)[0]  # as an eventfd's write(0)


def test_from_fds_refuses_another_eventfd_beside_the_page() -> None:
    """The page records its eventfd's kernel id: a memfd of one Doorbell with
    the eventfd of another (or any eventfd) would count in one and ring the
    other, and a sleeper would never wake."""
    with Doorbell() as a, Doorbell() as b, EventFD() as other:
        for efd in (b.fds()[1], other.fileno()):
            memfd, foreign = os.dup(a.fds()[0]), os.dup(efd)
            before = _kernel.open_fds()
            try:
                with pytest.raises(ValueError, match="not the one of the Doorbell"):
                    Doorbell.from_fds(memfd, foreign)
                assert _kernel.open_fds() == before  # left open, nothing else
            finally:
                os.close(memfd)
                os.close(foreign)
        with Doorbell.from_fds(*map(os.dup, a.fds())) as same:
            same.write(3)  # its own eventfd, duplicated: accepted
            assert a.read() == 3


@pytest.mark.parametrize("program", sorted(PEER.parent.glob("*.c")), ids=lambda p: p.name)
def test_the_c_programs_beside_the_peer_compile(program: pathlib.Path) -> None:
    """The stress test and the bench in csrc/tests are run by hand or by
    .ci/tsan: a compile here keeps them in step with the header."""
    subprocess.run(
        [
            _c_compiler(),
            "-fsyntax-only",
            "-Werror=implicit-function-declaration",
            f"-I{eventfd_ext.get_include()}",
            str(program),
        ],
        check=True,
        timeout=120,
    )


def test_a_sleeper_finds_a_count_whose_wake_up_was_lost() -> None:
    """A count's wake-up is one token in the eventfd, which the woken
    sleeper takes and passes on; a sleeper SIGKILLed in between takes it
    with it.  Simulated: the count lands in the page with no token at all.
    A sleeper looks at the count again at least every EFX_BELL_RECHECK_MS,
    so it wakes (before, it slept until its timeout, or for good)."""
    count_offset = 64  # offsetof(struct efx_bell_layout, count): doorbell.h asserts it
    with Doorbell(spin=0) as bell:
        memfd, _ = bell.fds()
        done: dict[str, float] = {}

        def reader() -> None:
            started = time.monotonic()
            done["value"] = bell.read(timeout=30)
            done["took"] = time.monotonic() - started

        t = threading.Thread(target=reader)
        t.start()
        try:
            assert _kernel.wait_in_syscall(t, "poll")
            os.pwrite(memfd, (7).to_bytes(8, "little"), count_offset)  # no token
        finally:
            t.join(TIMEOUT)
        assert done["value"] == 7
        assert done["took"] < 10, f"the lost wake-up cost {done['took']:.1f} s"
