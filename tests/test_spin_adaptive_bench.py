"""Smoke tests of ``benchmarks/spin_adaptive.py``: it runs, prints
both tables and both goal lines, and leaves no peer behind.  No timing
assertions: whether the goals are met is what the script is for."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

import eventfd_ext

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "spin_adaptive.py"
TIMEOUT = 120


def run(*args: str, pre: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    root = str(pathlib.Path(eventfd_ext.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    code = f"{pre}\nimport runpy, sys\nsys.argv = {[str(SCRIPT), *args]!r}\n"
    code += f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_small_run_prints_both_tables_and_goals() -> None:
    proc = run("--runs", "1", "--rounds", "400", "--stretch", "100", "--slow-rounds", "10",
               "--think", "0.0002")  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    out = proc.stdout
    rows = ["adaptive (spin=None)", "fixed 10 us", "fixed 50 us", "fixed 100 us"]
    for name in [*rows, "spin=0 (reference)"]:
        assert re.search(rf"^  {re.escape(name)} .* \d+ of 4 +\d+  [01] of 1$", out, re.M), name
    assert re.search(r"^adaptive: worst stretch / best fixed median .* = [\d.]+ "
                     r"\(goal <= 1\.5\): (met|NOT met)$", out, re.M)  # fmt: skip
    for name in ("adaptive (spin=None)", "fixed 50 us", "spin=0"):
        assert re.search(rf"^  {re.escape(name)} +[\d.]+ us +[\d.]+ us$", out, re.M), name
    goals = re.findall(r"^adaptive\b.*: (met|NOT met)$", out, re.M)
    assert len(goals) == 2
    assert proc.returncode == (0 if goals == ["met", "met"] else 1)
    assert "run 1/1" in proc.stderr


def test_one_cpu_is_a_clear_skip() -> None:
    proc = run("--quick", pre="import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "skipped" in proc.stderr
    assert "two CPUs" in proc.stderr
