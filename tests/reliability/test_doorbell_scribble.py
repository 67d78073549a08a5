"""A peer that scribbles on a Doorbell's shared page, or tries to resize it,
can make counts wrong but never crash a holder, hang it where Ctrl-C cannot
reach, or make it touch memory outside the page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from eventfd_ext import Doorbell

# The holder: every call, in a loop, for SECONDS; then it reports "ok".
HOLDER = textwrap.dedent(
    """
    import os, sys, time, mmap, random
    from eventfd_ext import Doorbell
    memfd, efd, seconds, seed = (int(a) for a in sys.argv[1:5])
    # Non-blocking: a write the scribbled count leaves no room for raises
    # rather than waiting for a reader that never comes (the next test
    # shows that such a wait still leaves on Ctrl-C).
    bell = Doorbell.from_fds(memfd, efd, spin=1e-5, nonblocking=True)
    print("ready", flush=True)
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for call in (
            lambda: bell.write(rng.randrange(0, 2**64 - 1)),
            lambda: bell.write(1),
            bell.try_read,
            lambda: bell.read(timeout=0.001),
            lambda: bell.wait(0.001),
            bell.peek,
            lambda: repr(bell),
        ):
            try:
                call()
            except (OSError, ValueError, TimeoutError):
                pass  # a wrong count may say so; it must not crash or hang
        with bell.watch():
            bell.try_read()
    bell.close()
    print("ok", flush=True)
    """
)


@pytest.mark.parametrize("seed", range(3))
def test_a_scribbled_page_never_crashes_or_hangs_a_holder(seed: int) -> None:
    bell = Doorbell()
    memfd, efd = bell.fds()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(memfd), str(efd), "1", str(seed)],
        pass_fds=(memfd, efd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"  # adopted before any scribble
    # The scribbler: random bytes over the whole page, as fast as it goes,
    # while the holder runs (pwrite: no mapping of its own to fault).
    rng = os.urandom
    page = os.fstat(memfd).st_size
    try:
        while holder.poll() is None:
            offset = int.from_bytes(rng(2), "little") % page
            os.pwrite(memfd, rng(min(8, page - offset)), offset)
        out, err = holder.communicate(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    code = holder.returncode
    assert code >= 0, f"holder killed by {signal.Signals(-code).name}"
    assert code == 0, err
    assert out.strip() == "ok"
    bell.close()


def test_a_holder_waiting_on_a_scribbled_page_still_leaves_on_ctrl_c() -> None:
    """The page says a huge count is taken away and no writer comes: a
    holder blocked in read() or a write at the 'maximum' still leaves on
    SIGINT."""
    code = textwrap.dedent(
        """
        import signal, sys
        from eventfd_ext import Doorbell

        def interrupt(signum, frame):
            # once: the test's next Ctrl-C must not land in the except
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, interrupt)
        bell = Doorbell.from_fds(int(sys.argv[1]), int(sys.argv[2]))
        try:
            print("ready", flush=True)
            bell.write(2**64 - 2) if sys.argv[3] == "write" else bell.read()
            bell.write(1)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    for call in ("read", "write"):
        bell = Doorbell()
        memfd, efd = bell.fds()
        os.pwrite(memfd, (2**64 - 2).to_bytes(8, "little"), 64)  # the count word
        if call == "read":
            os.pwrite(memfd, bytes(8), 64)
        holder = subprocess.Popen(
            [sys.executable, "-c", code, str(memfd), str(efd), call],
            pass_fds=(memfd, efd),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "ready"
            # It blocks (no writer); Ctrl-C until it is out.
            out = ""
            for _ in range(50):
                holder.send_signal(signal.SIGINT)
                try:
                    out, _ = holder.communicate(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    continue
            assert "interrupted" in out, f"{call}: did not leave on Ctrl-C"
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
            bell.close()
