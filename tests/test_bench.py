"""Smoke tests of ``python -m eventfd_ext.bench``: it runs, and what it prints
and writes has the promised structure.  No timing assertions: the figures
are whatever the machine gives."""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import pytest

import eventfd_ext
from eventfd_ext.bench import report
from eventfd_ext.bench.results import Result

# A hang must become a failure: --quick takes a few seconds.
TIMEOUT = 120
GROUPS = {"per-call", "ping-pong", "throughput", "coalescing"}
#: What one run gives: stdout, stderr and the JSON document.
Run = tuple[str, str, dict[str, Any]]


def bench(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run the command in a child interpreter that imports this eventfd_ext."""
    env = dict(os.environ)
    root = str(pathlib.Path(eventfd_ext.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One --quick run, writing JSON to a file and the table to stdout."""
    tmp = tmp_path_factory.mktemp("bench")
    proc = bench("-m", "eventfd_ext.bench", "--quick", "--json", "out.json", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr, json.loads((tmp / "out.json").read_text())


def test_json_has_every_group_with_floors(quick_run: Run) -> None:
    _, _, doc = quick_run
    assert {"machine", "config", "results", "goals"} <= doc.keys()
    results = doc["results"]
    assert {r["group"] for r in results} == GROUPS
    floors = {(r["group"], r["placement"], r["case"]) for r in results if r["is_floor"]}
    assert ("per-call", "", "C eventfd (floor)") in floors
    assert ("per-call", "", "C pipe (floor)") in floors
    placements = {r["placement"] for r in results if r["group"] == "ping-pong"}
    assert any(p.startswith("threads") for p in placements)
    assert any(p.startswith("processes") for p in placements)
    for p in placements:
        assert ("ping-pong", p, "C eventfd (floor)") in floors
        assert ("ping-pong", p, "C pipe (floor)") in floors


def test_json_statistics_are_consistent(quick_run: Run) -> None:
    _, _, doc = quick_run
    config = doc["config"]
    for r in doc["results"]:
        samples = r["samples"]
        reps = config["percall_repetitions" if r["group"] == "per-call" else "repetitions"]
        assert len(samples) == r["repetitions"] == reps, r["case"]
        assert all(s > 0 and math.isfinite(s) for s in samples), r
        assert r["min"] <= r["q1"] <= r["median"] <= r["q3"] <= r["max"], r
        if r["floor"] is not None:
            assert r["ratio_to_floor"] > 0, r
        else:
            assert r["ratio_to_floor"] is None, r


def test_json_goals_are_ratios_of_medians(quick_run: Run) -> None:
    _, _, doc = quick_run
    medians = {(r["group"], r["placement"], r["case"]): r["median"] for r in doc["results"]}
    goals = doc["goals"]
    assert {g["goal"] for g in goals} == {g.text for g in report.GOALS}
    for g in goals:
        group = next(x.group for x in report.GOALS if x.text == g["goal"])
        ratio = (
            medians[(group, g["placement"], g["case"])]
            / medians[(group, g["placement"], g["baseline"])]
        )
        assert g["ratio"] == pytest.approx(ratio)
        assert g["met"] == (g["ratio"] <= g["limit"])
        goal = next(x for x in report.GOALS if x.text == g["goal"])
        if goal.bound is None:
            assert g["bound"] is None
        else:
            case, baseline, _ = goal.bound
            assert g["bound"]["ratio"] == pytest.approx(
                medians[(group, g["placement"], case)] / medians[(group, g["placement"], baseline)]
            )


def test_table_and_progress(quick_run: Run) -> None:
    stdout, stderr, doc = quick_run
    assert stdout.startswith("eventfd_ext bench (quick)")
    for title in (
        "Per-call cost",
        "Ping-pong round trip, threads",
        "Throughput",
        "Goals",
    ):
        assert title in stdout
    for r in doc["results"]:
        assert r["case"] in stdout
    # Progress went to stderr, one line per step when it is not a terminal.
    assert "per-call" in stderr
    assert "ping-pong" in stderr
    assert "throughput" in stderr


def test_which_one_block_shows_this_runs_medians(quick_run: Run) -> None:
    stdout, _, doc = quick_run
    block = stdout[stdout.index("Which one to use") :].splitlines()[2:]
    medians = {(r["group"], r["placement"], r["case"]): r["median"] for r in doc["results"]}
    columns = [c for c in report.WHICH_ONE_COLUMNS if any(k[:2] == c[:2] for k in medians)]
    assert len(block) == len(report.WHICH_ONE_CASES)
    for case, line in zip(report.WHICH_ONE_CASES, block, strict=True):
        assert line.strip().startswith(case)
        cells = line[len(line) - 19 * len(columns) :].split()
        for (group, placement, _, scale), cell in zip(columns, cells, strict=True):
            median = medians.get((group, placement, case))
            if median is None:
                assert cell == "-"
            else:
                assert float(cell) == pytest.approx(median * scale, rel=0.01)


def test_json_to_stdout_replaces_the_table(tmp_path: pathlib.Path) -> None:
    proc = bench(
        "-m",
        "eventfd_ext.bench",
        "--quick",
        "--only",
        "per-call",
        "--repetitions",
        "2",
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {r["group"] for r in doc["results"]} == {"per-call"}
    assert all(r["repetitions"] == 2 for r in doc["results"])


def test_plot_draws_a_png(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs the plot extra")
    proc = bench(
        "-m", "eventfd_ext.bench", "--quick", "--only", "per-call",
        "--repetitions", "2", "--plot", "out.png",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_plot_without_matplotlib_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from eventfd_ext.bench.cli import main\n"
        "raise SystemExit(main(['--quick', '--plot', 'out.png']))\n"
    )
    proc = bench("-c", code, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--plot needs matplotlib" in proc.stderr
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("cpus", ["x", "0,1,2", str(2**20)])
def test_bad_cpus_are_refused(tmp_path: pathlib.Path, cpus: str) -> None:
    proc = bench("-m", "eventfd_ext.bench", "--cpus", cpus, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--cpus" in proc.stderr


def test_script_runs_where_python_m_would_import_the_source_tree(
    tmp_path: pathlib.Path,
) -> None:
    # The README's main job runs the script from the checkout's root, where
    # `python -m` finds the source package (no compiled shim) first.
    source = tmp_path / "eventfd_ext"
    source.mkdir()
    (source / "__init__.py").write_text("raise ImportError('the uncompiled source package')\n")
    script = shutil.which("eventfd-ext-bench", path=os.path.dirname(sys.executable))
    assert script, "no eventfd-ext-bench beside this interpreter: pip install the package"
    shadowed = subprocess.run(
        [sys.executable, "-m", "eventfd_ext.bench", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert shadowed.returncode != 0
    assert "uncompiled" in shadowed.stderr
    proc = subprocess.run(
        [script, "--quick", "--only", "per-call"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("eventfd_ext bench (quick)")
    assert "Per-call cost" in proc.stdout
    usage = subprocess.run([script, "--cpus", "x"], capture_output=True, text=True, timeout=TIMEOUT)
    assert usage.returncode == 2
    assert usage.stderr.startswith("usage: eventfd-ext-bench")


def test_quartiles_and_goal_rows() -> None:
    a = Result.time("per-call", "EventFD.write/read", "", floor=None)
    b = Result.time("per-call", "owner shim in do-nothing defs", "", floor=None)
    a.samples = [5.0, 1.0, 3.0, 2.0, 4.0]
    b.samples = [2.0, 2.0, 2.0]
    assert a.median == 3.0
    assert a.quartiles == (2.0, 4.0)
    assert b.quartiles == (2.0, 2.0)  # under 4 samples: min and max
    rows = report.goal_rows([a, b])
    assert rows == [
        {
            "goal": "EventFD pair vs do-nothing defs around its shim calls",
            "placement": "",
            "case": "EventFD.write/read",
            "baseline": "owner shim in do-nothing defs",
            "ratio": 1.5,
            "limit": 1.10,
            "met": False,
            "bound": None,  # its bound's cases were not measured
        }
    ]
