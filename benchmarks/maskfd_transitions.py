"""MaskFD transition cost next to the raw syscalls it rests on.

Prints, as markdown, the median time per cycle of:
  * MaskFD (stream backing) IN set + clear (``m.set(POLLIN); m.clear(POLLIN)``)
    next to a raw AF_UNIX socketpair ``b.send(b"i"); a.recv(64)``;
  * MaskFD (pipe backing) IN set + clear next to raw ``os.write``/``os.read``;
  * MaskFD OUT clear + set next to the raw send-fill/recv-drain;
  * a write that changes no bit, with the syscalls it made (counted by the
    shim: it must be 0).
Ratios are of medians over --repeats runs of --cycles cycles each.

    python benchmarks/maskfd_transitions.py [--cycles N] [--repeats R]
"""

from __future__ import annotations

import argparse
import functools
import os
import select
import socket
import statistics
import time
from collections.abc import Callable

from eventfd_ext import MaskFD
from eventfd_ext._backings import Backing

IN, OUT = select.POLLIN, select.POLLOUT


# Everything the cycles use, closed at the end.
_opened: list[Callable[[], None]] = []


def per_cycle(body: Callable[[int], None], cycles: int, repeats: int) -> float:
    """Median seconds per cycle of body(cycles) over *repeats* runs."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        body(cycles)
        runs.append((time.perf_counter() - start) / cycles)
    return statistics.median(runs)


def mask_in(backing: Backing) -> Callable[[int], None]:
    mask = MaskFD(backing=backing)
    _opened.append(mask.close)
    set_, clear = mask.set, mask.clear

    def body(n: int) -> None:
        for _ in range(n):
            set_(IN)
            clear(IN)

    return body


def raw_socketpair() -> Callable[[int], None]:
    a, b = socket.socketpair()
    _opened.extend((a.close, b.close))
    a.setblocking(False)
    b.setblocking(False)
    send, recv = b.send, a.recv

    def body(n: int) -> None:
        for _ in range(n):
            send(b"i")
            recv(64)

    return body


def raw_pipe() -> Callable[[int], None]:
    r, w = os.pipe()
    _opened.extend(functools.partial(os.close, fd) for fd in (r, w))
    write, read = os.write, os.read

    def body(n: int) -> None:
        for _ in range(n):
            write(w, b"i")
            read(r, 64)

    return body


def mask_out() -> Callable[[int], None]:
    mask = MaskFD(OUT)
    _opened.append(mask.close)
    set_, clear = mask.set, mask.clear

    def body(n: int) -> None:
        for _ in range(n):
            clear(OUT)
            set_(OUT)

    return body


def raw_out() -> Callable[[int], None]:
    a, b = socket.socketpair()
    _opened.extend((a.close, b.close))
    a.setblocking(False)
    b.setblocking(False)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    chunk = bytes(65536)
    send, recv = a.send, b.recv

    def body(n: int) -> None:
        for _ in range(n):
            send(chunk)
            recv(65536)

    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=51)
    args = parser.parse_args()
    c, r = args.cycles, args.repeats
    pairs = [
        ("IN set+clear, stream vs socketpair send+recv", mask_in("stream"), raw_socketpair()),
        ("IN set+clear, pipe vs os.write+os.read", mask_in("pipe"), raw_pipe()),
        ("OUT clear+set, stream vs send-fill+recv-drain", mask_out(), raw_out()),
    ]
    print(f"{r} interleaved pairs of {c}-cycle runs; medians per cycle, and the")
    print("median of the per-pair ratios (each pair ran back to back, so machine")
    print("noise hits both sides alike)\n")
    print("| cycle | MaskFD | raw | ratio |")
    print("|---|---|---|---|")
    for label, mine, raw in pairs:
        tm, tr = [], []
        for _ in range(r):
            tm.append(per_cycle(mine, c, 1))
            tr.append(per_cycle(raw, c, 1))
        ratio = statistics.median(m / w for m, w in zip(tm, tr, strict=True))
        m, w = statistics.median(tm), statistics.median(tr)
        print(f"| {label} | {m * 1e6:.2f} us | {w * 1e6:.2f} us | {ratio:.3f}x |")
    with MaskFD(IN | OUT, 7) as mask:
        before = mask.syscalls
        start = time.perf_counter()
        for _ in range(c):
            mask.write(IN | OUT, 7)
        t = (time.perf_counter() - start) / c
        made = mask.syscalls - before
    print(f"| no-change write (IN, OUT again) | {t * 1e6:.2f} us | - | syscalls made: {made} |")
    for close in _opened:
        close()


if __name__ == "__main__":
    main()
