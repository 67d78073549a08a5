"""The benchmark's Channel section: its goals are computed against the
right peer, and a tiny run measures every case with the peers installed."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

from _kernel import TIMEOUT
from eventfd_ext.bench import channel as bench
from eventfd_ext.bench.channel import Config, Figure


def figure(case: str, what: str, *samples: float) -> Figure:
    unit = "us" if what.startswith("round trip") else "k msgs/s" if "way" in what else "% CPU"
    return Figure(case, what, unit, list(samples))


def test_goals_compare_with_the_fastest_peer_or_the_named_one() -> None:
    rt, one_way, big = "round trip, 64 B, 2 CPUs", "one way, 64 B, 2 CPUs", "one way, 1 MiB, 2 CPUs"
    figures = [
        figure("Channel", rt, 1.0, 1.2, 0.8),
        figure("multiprocessing.Pipe", rt, 40.0),
        figure("pyzmq PAIR ipc://", rt, 20.0),  # the fastest peer: the one compared with
        figure("Channel", one_way, 2000.0),
        figure("multiprocessing.Pipe", one_way, 300.0),
        figure("pyzmq PAIR ipc://", one_way, 1000.0),
        figure("Channel", big, 3000.0),
        figure("multiprocessing.Pipe", big, 1000.0),
        figure("faster_fifo.Queue", big, 10_000.0),  # not the one this goal names
        figure("Channel", "receiver CPU, a message every 1 ms", 12.0),
        figure("spinning ring (the vLLM way)", "receiver CPU, a message every 1 ms", 99.0),
    ]
    rows = {
        row["goal"].split(" ")[0] + row["goal"].split(" ")[1]: row for row in bench.goals(figures)
    }
    assert rows["roundtrip"]["against"] == "pyzmq PAIR ipc://"
    assert rows["roundtrip"]["value"] == 1.0 / 20.0
    assert not rows["roundtrip"]["met"]
    assert rows["one-way64"]["against"] == "pyzmq PAIR ipc://"
    assert rows["one-way64"]["value"] == 2.0
    assert not rows["one-way64"]["met"]
    assert rows["1MiB"]["against"] == "multiprocessing.Pipe"
    assert rows["1MiB"]["value"] == 3.0
    assert rows["1MiB"]["met"]
    assert rows["amessage"]["against"] is None  # the spinning anchor is not a peer
    assert rows["amessage"]["value"] == 12.0
    assert not rows["amessage"]["met"]
    assert "MISSED" in bench.table(figures, dev=True)
    assert "[met]" in bench.table(figures, dev=True)
    assert "MISSED" not in bench.table(figures)  # goals are for developers
    assert all(row["bound"] is None for row in rows.values())  # no C floor measured


def test_each_goal_is_bounded_by_the_same_ratio_with_the_c_floors() -> None:
    rt, one_way = "round trip, 64 B, 2 CPUs", "one way, 64 B, 2 CPUs"
    figures = [
        figure("Channel", rt, 3.0),
        figure("multiprocessing.Pipe", rt, 60.0),  # the fastest peer, with a C floor
        figure(bench.FLOOR_CHANNEL, rt, 0.5),
        figure(bench.FLOOR_SOCKETPAIR, rt, 10.0),
        figure(bench.SHIM, rt, 2.4),  # Python's bare calls: not a peer either
        figure("Channel", one_way, 900.0),
        figure("pyzmq PAIR ipc://", one_way, 500.0),  # no C floor of its own here
        figure(bench.FLOOR_CHANNEL, one_way, 1200.0),
        figure(bench.FLOOR_SOCKETPAIR, one_way, 5000.0),  # not pyzmq's floor: unused
    ]
    rows = {row["goal"][:9]: row for row in bench.goals(figures)}
    assert rows["round tri"]["against"] == "multiprocessing.Pipe"  # floors are not peers
    assert rows["round tri"]["value"] == 3.0 / 60.0
    assert rows["round tri"]["bound"] == {
        "ratio": 0.5 / 10.0, "against": bench.FLOOR_SOCKETPAIR, "reachable": False,
        "python_ratio": 2.4 / 60.0, "python_reachable": False,
    }  # fmt: skip
    assert rows["one-way 6"]["bound"] == {
        "ratio": 1200.0 / 500.0, "against": "pyzmq PAIR ipc://", "reachable": False,
    }  # fmt: skip
    dev = bench.table(figures, dev=True)
    assert "bound 0.05x of C floor: socketpair: out of reach even in C" in dev
    assert "from Python's bare calls 0.04x: out of reach" in dev
    assert bench.FLOOR_CHANNEL in dev
    assert bench.SHIM in dev
    user = bench.table(figures)
    assert bench.FLOOR_CHANNEL not in user
    assert bench.SHIM not in user
    assert "Fastest: Channel, 20.00x ahead of multiprocessing.Pipe" in user
    assert "Fastest: Channel, 1.80x ahead of pyzmq PAIR ipc://" in user


def test_a_tiny_run_measures_every_case() -> None:
    tiny = Config(repetitions=1, round_trips=20, messages=200, big_messages=2,
                  idle_seconds=0.02, paced_messages=5)  # fmt: skip
    figures = bench.measure(tiny, [0, 1] if len(os.sched_getaffinity(0)) > 1 else [0],
                            lambda what, done, total: None)  # fmt: skip
    whats = {f.what for f in figures}
    assert len(whats) == 6
    assert all(len(f.samples) == 1 and f.samples[0] >= 0 for f in figures)
    assert {f.case for f in figures} >= {"Channel", "multiprocessing.Pipe", "multiprocessing.Queue",
                                         bench.FLOOR_CHANNEL, bench.FLOOR_SOCKETPAIR,
                                         bench.SHIM}  # fmt: skip
    rows = bench.goals(figures)
    assert len(rows) == 6
    assert sum(row["bound"] is not None for row in rows) == 4  # every ratio goal has its bound


def test_the_cli_runs_the_section_when_asked(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "eventfd_ext.bench", "--help"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "channel" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "eventfd_ext.bench", "--only", "chanel"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "'channel'" in bad.stderr
    json.dumps(bench.GOALS[0].text)


def test_the_c_floors_run_the_channel_and_refuse_what_they_cannot() -> None:
    from eventfd_ext.bench._floor import lib

    ch, sp = lib.EFX_FLOOR_CHANNEL, lib.EFX_FLOOR_SOCKETPAIR
    assert lib.efx_floor_pingpong(ch, 1, 50, -1, -1) > 0
    for mechanism in (ch, sp):
        assert lib.efx_floor_stream(mechanism, 50, 64, -1, -1) > 0
        assert lib.efx_floor_stream(mechanism, 3, 1 << 20, -1, -1) > 0  # larger than a pipe's
    einval = -errno.EINVAL
    assert lib.efx_floor_stream(lib.EFX_FLOOR_PIPE, 10, 64, -1, -1) == einval
    assert lib.efx_floor_stream(ch, 0, 64, -1, -1) == einval
    assert lib.efx_floor_stream(ch, 10, 0, -1, -1) == einval
    assert lib.efx_floor_stream(ch, 10, 1 << 27, -1, -1) == einval
