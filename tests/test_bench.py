"""Smoke tests of ``python -m eventfd_ext.bench``: it runs, and what it prints
and writes has the promised structure.  No timing assertions: the figures
are whatever the machine gives."""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest

import eventfd_ext
from eventfd_ext.bench import report
from eventfd_ext.bench.results import NOISY, Result

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
        # The document gives the result back (ratio_to_floor is the run's).
        back = Result.from_json(r).to_json()
        assert back == {k: v for k, v in r.items() if k != "ratio_to_floor"}, r["case"]
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


@pytest.fixture(scope="module")
def quick_dev_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One --quick --dev run, writing JSON to a file and the table to stdout."""
    tmp = tmp_path_factory.mktemp("bench-dev")
    proc = bench("-m", "eventfd_ext.bench", "--quick", "--dev", "--json", "out.json", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr, json.loads((tmp / "out.json").read_text())


def _row_names(stdout: str) -> set[str]:
    """The first column of every table row (two-space indented lines)."""
    names = set()
    for line in stdout.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            names.add(re.split(r"\s{2,}", line.strip())[0])
    return names


def test_table_and_progress(quick_run: Run, quick_dev_run: Run) -> None:
    stdout, stderr, _ = quick_run
    assert stdout.startswith("eventfd_ext bench (quick)")
    for title in ("Per-call cost", "Ping-pong round trip, threads", "Throughput"):
        assert title in stdout
    dev_stdout, _, dev_doc = quick_dev_run
    assert dev_stdout.startswith("eventfd_ext bench (quick)")
    assert "Goals" in dev_stdout
    for r in dev_doc["results"]:
        assert r["case"] in dev_stdout
    # Progress went to stderr, one line per step when it is not a terminal.
    assert "per-call" in stderr
    assert "ping-pong" in stderr
    assert "throughput" in stderr


def test_default_output_is_for_users(quick_run: Run) -> None:
    stdout, _, doc = quick_run
    names = _row_names(stdout)
    for r in doc["results"]:
        dev_only = r["kind"] in ("floor", "diagnostic")
        assert (r["case"] in names) != dev_only, r["case"]
    assert "(floor)" not in stdout
    assert "shim" not in stdout
    assert "x C floor" not in stdout
    assert "Goals" not in stdout
    assert "NOT met" not in stdout
    assert "bound" not in stdout
    # Each section ends with its fastest, naming the next and by how much.
    sections = stdout.split("\n\n")[:-1]
    assert len(sections) == len({(r["group"], r["placement"]) for r in doc["results"]})
    for text in sections:
        last = text.splitlines()[-1]
        assert re.match(
            r"  (Fastest|Most signals per read): .*, \d+\.\d\dx .* than the next, ", last
        )
    # The "which one to use" block ends the output.
    assert stdout.split("\n\n")[-1].startswith("Which one to use")
    assert stdout.rstrip().splitlines()[-1].startswith(f"  {report.WINNER} the fastest")


def test_dev_output_adds_floors_shims_and_goals(quick_dev_run: Run) -> None:
    stdout, _, doc = quick_dev_run
    names = _row_names(stdout)
    assert {r["case"] for r in doc["results"]} <= names
    assert "x C floor" in stdout
    for goal in doc["goals"]:
        assert goal["goal"] in stdout
    assert "(bound: the same ratio one layer down" in stdout
    assert stdout.split("\n\n")[-1].startswith("Which one to use")


def test_json_names_each_sections_fastest(quick_run: Run) -> None:
    _, _, doc = quick_run
    results = [Result.from_json(r) for r in doc["results"]]
    assert doc["fastest"] == report.leaders(results)
    assert {(f["group"], f["placement"]) for f in doc["fastest"]} == {
        (r["group"], r["placement"]) for r in doc["results"]
    }
    for r in doc["results"]:
        assert r["p10"] <= r["q1"] <= r["q3"] <= r["p90"], r
        assert r["noisy"] == (r["q3"] > NOISY * r["q1"]), r


def test_which_one_block_shows_this_runs_medians(quick_run: Run) -> None:
    stdout, _, doc = quick_run
    block = stdout[stdout.index("Which one to use") :].splitlines()[2:-1]
    medians = {(r["group"], r["placement"], r["case"]): r["median"] for r in doc["results"]}
    columns = [c for c in report.WHICH_ONE_COLUMNS if any(k[:2] == c[:2] for k in medians)]
    assert len(block) == len(report.WHICH_ONE_CASES)
    for case, line in zip(report.WHICH_ONE_CASES, block, strict=True):
        assert line.strip().startswith(case)
        # The figures, without the winner's mark and a noisy figure's quartiles.
        cells = re.sub(r"\([^)]*\)", "", line[len(case) + 2 :]).replace(report.WINNER, "").split()
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


def _timed(
    case: str,
    samples: list[float],
    *,
    group: str = "ping-pong",
    placement: str = "threads",
    **kw: Any,
) -> Result:
    r = Result.time(group, case, placement, **{"floor": None, **kw})
    r.samples = samples
    return r


def test_leader_names_the_fastest_ranked_row_and_by_how_much() -> None:
    rows = [
        _timed("slow", [4e-6] * 4),
        _timed("fast", [1e-6] * 4),
        _timed("second", [2e-6] * 4),
        _timed("C floor", [0.1e-6] * 4, kind="floor"),
        _timed("shim", [0.2e-6] * 4, kind="diagnostic"),
        _timed("other operation", [0.5e-6] * 4, ranked=False),
    ]
    lead = report.leader(rows)
    assert lead == {
        "group": "ping-pong",
        "placement": "threads",
        "case": "fast",
        "next": "second",
        "ratio": 2.0,
        "within_noise": False,
    }
    text = report.table(rows)
    assert "  Fastest: fast (1 us), 2.00x faster than the next, second (2 us)" in text
    assert report.leader(rows[:1] + rows[3:]) is None  # one ranked row: no race


def test_leader_says_when_the_lead_is_within_the_noise() -> None:
    best = _timed("a", [1e-6, 1e-6, 2.8e-6, 2.8e-6])
    second = _timed("b", [2e-6] * 4)
    lead = report.leader([best, second])
    assert lead is not None
    assert lead["case"] == "a"
    assert lead["within_noise"]
    assert "within the noise" in report.table([best, second])


def test_leader_of_a_rate_is_the_highest() -> None:
    def rate(case: str, value: float) -> Result:
        return Result("throughput", case, "threads", "signals/s", True, samples=[value] * 4)

    lead = report.leader([rate("low", 1e6), rate("high", 3e6)])
    assert lead is not None
    assert (lead["case"], lead["next"], lead["ratio"]) == ("high", "low", 3.0)


def test_leader_marks_a_reference_point() -> None:
    rows = [_timed("semaphore", [1e-6] * 4, kind="reference"), _timed("eventfd", [2e-6] * 4)]
    assert "Fastest: semaphore (1 us; no fd, a reference point)" in report.table(rows)


def test_table_hides_dev_rows_unless_asked() -> None:
    rows = [
        _timed("EventFD.write/read", [2e-6] * 4, floor="C eventfd (floor)"),
        _timed("C eventfd (floor)", [1e-6] * 4, kind="floor"),
        _timed("shim in do-nothing defs", [1.5e-6] * 4, kind="diagnostic"),
    ]
    user = report.table(rows)
    assert "EventFD.write/read" in user
    assert "C eventfd (floor)" not in user
    assert "shim" not in user
    assert "x C floor" not in user
    dev = report.table(rows, dev=True)
    assert "C eventfd (floor)" in dev
    assert "shim in do-nothing defs" in dev
    assert "x C floor" in dev
    assert "2.00x" in dev


def test_a_new_section_is_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    sections = dict(report.SECTIONS)
    sections["channel"] = report.Section(
        "Channel round trip, {placement}", 1e6, "us", "us per message", "fastest", "faster"
    )
    monkeypatch.setattr(report, "SECTIONS", sections)
    rows = [
        _timed("Channel", [1e-6] * 4, group="channel", placement="processes"),
        _timed("pipe", [3e-6] * 4, group="channel", placement="processes"),
    ]
    text = report.table(rows)
    assert text.startswith("Channel round trip, processes (us per message; median")
    assert "Fastest: Channel (1 us), 3.00x faster than the next, pipe (3 us)" in text


def test_which_one_marks_each_columns_winner_and_shows_noisy_spreads() -> None:
    def row(case: str, samples: list[float], placement: str) -> Result:
        return _timed(case, samples, placement=placement)

    across, same = "processes, across CPUs", "processes, same CPU"
    results = [
        row("EventFD.write/read", [40e-6] * 4, across),
        row("Doorbell.write/read", [0.5e-6, 0.5e-6, 46e-6, 46e-6], across),  # noisy
        row("os.eventfd_write/read", [30e-6] * 4, across),
        row("EventFD.write/read", [11e-6] * 4, same),
        row("Doorbell.write/read", [8e-6] * 4, same),
    ]
    columns = report.which_one_cells(results)
    assert [heading for heading, _ in columns] == ["procs 2 CPUs us", "procs 1 CPU us"]
    (_, two_cpus), (_, one_cpu) = columns
    winner = report.WINNER
    assert [cell for cell, _ in two_cpus] == ["40.0 ", f"23.2{winner}", "- ", "30.0 ", "- "]
    assert [spread for _, spread in two_cpus] == ["", "(0.5-46.0)", "", "", ""]
    assert [cell for cell, _ in one_cpu] == ["11.0 ", f"8{winner}", "- ", "- ", "- "]
    text = report.which_one(results)
    assert "(q1-q3): the quartiles of a noisy figure" in text
    assert text.count(winner) == 3  # one per column, and the legend's


def test_noisy_and_deciles() -> None:
    r = _timed("x", [float(i) for i in range(1, 12)])
    assert r.deciles == (2.0, 10.0)
    assert r.quartiles == (3.5, 8.5)
    assert r.noisy  # 8.5 > 1.5 * 3.5
    assert not _timed("y", [10.0, 11.0, 12.0, 13.0]).noisy
    assert _timed("z", [1.0, 2.0]).deciles == (1.0, 2.0)  # under 10 samples: min and max


def test_plot_has_a_legend_and_os_eventfd_its_own_colour(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs the plot extra")
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    drawn: list[Figure] = []
    savefig = Figure.savefig

    def keep(fig: Figure, *args: Any, **kwargs: Any) -> None:
        drawn.append(fig)
        savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    rows = [
        _timed("EventFD.write/read", [2e-6] * 4),
        _timed("os.eventfd_write/read", [1e-6] * 4, kind="os.eventfd"),
        _timed("pipe os.write/read", [3e-6] * 4, kind="alternative"),
        _timed("C eventfd (floor)", [1e-6] * 4, kind="floor"),
    ]
    report.plot(rows, str(tmp_path / "out.png"), "title")
    (fig,) = drawn
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [report.KIND_STYLE[k][1] for k in ("eventfd_ext", "os.eventfd", "alternative")]
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    colours = {
        t.get_text(): p.get_facecolor()
        for t, p in zip(ax.get_yticklabels(), ax.patches, strict=True)
    }
    assert set(colours) == {"EventFD.write/read", "os.eventfd_write/read", "pipe os.write/read"}
    assert colours["os.eventfd_write/read"] == to_rgba(report.KIND_STYLE["os.eventfd"][0])
    assert len(set(colours.values())) == 3
