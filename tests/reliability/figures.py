"""Produce the RELIABILITY figures: run the reliability and concurrency tests
(optionally at full size) and the sanitizer, collect what the tests recorded,
and print them as markdown (optionally into docs/reliability.md).

    python tests/reliability/figures.py            # CI sizes, about a minute
    python tests/reliability/figures.py --full     # the full sizes (--runslow)
    python tests/reliability/figures.py --full --write docs/reliability.md

Run with an interpreter that has eventfd_ext installed with its test extra
(the README's .venv); the tests run from outside the tree.  Exits non-zero
if any test or the sanitizer failed: a figure from a failing run is no
figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
TESTS = [
    "tests/reliability",
    "tests/test_concurrency.py",
    "tests/test_channel_processes.py",
    "tests/test_channel_faults.py",
]


def run_tests(full: bool) -> tuple[dict[str, Any], str, float, int]:
    """Run the tests; return (figures, pytest's summary line, seconds, status)."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as sink:
        env = dict(os.environ, EFX_FIGURES=sink.name)
        tests = [str(ROOT / t) for t in TESTS]
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
        if full:
            cmd.append("--runslow")
        started = time.monotonic()
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        figures = {}
        for line in sink:
            item = json.loads(line)
            figures[item["name"]] = item["value"]
    lines = out.stdout.strip().splitlines()
    summary = lines[-1].strip("= ") if lines else "(no output)"
    if out.returncode:
        sys.stderr.write(out.stdout[-5000:] + out.stderr[-2000:])
    return figures, summary, elapsed, out.returncode


def run_sanitizer() -> tuple[str, int]:
    """Run .ci/sanitize; return its verdict line and status."""
    env = dict(os.environ, PYTHON=sys.executable)  # this interpreter has pytest and cffi
    out = subprocess.run(
        ["bash", ".ci/sanitize"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    lines = (out.stdout + out.stderr).strip().splitlines()
    verdict = next((ln for ln in reversed(lines) if ln.startswith("sanitize:")), "(no verdict)")
    tests = next((ln for ln in reversed(lines) if re.search(r"\d+ passed", ln)), "")
    if out.returncode:
        sys.stderr.write("\n".join(lines[-40:]) + "\n")
    return f"{verdict} - {tests.strip('= ')}", out.returncode


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _n(x: object) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def render(
    fig: dict[str, Any], summary: str, seconds: float, full: bool, sanitizer: str | None
) -> str:
    cmd = "python tests/reliability/figures.py" + (" --full" if full else "")
    out = [
        f"Produced by `{cmd}` on {time.strftime('%Y-%m-%d')} "
        f"(Linux {platform.release()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}): {summary}, {seconds:.0f} s.",
        "",
    ]

    def by(prefix: str) -> list[tuple[str, Any]]:
        return sorted((k, v) for k, v in fig.items() if k.startswith(prefix))

    rows = [
        [
            k.split(".")[1],
            k.split(".")[2],
            f"{v['writers']} x {_n(v['writes'] // v['writers'])}",
            _n(v["sum_written"]),
            _n(v["sum_read"]),
            _n(v["reads"]),
            v["seconds"],
        ]
        for k, v in by("lost_counts.")
    ]
    out += [
        "**No lost counts** (`tests/reliability/test_lost_counts.py`): writers into one "
        "EventFD, one reader in the parent.",
        "",
        _table(["writers", "mode", "writes", "sum written", "sum read", "reads", "s"], rows),
        "",
    ]

    def handshakes(prefix: str, labels: list[str], text: str) -> list[str]:
        """The table of one family of handshake figures (the key's fields
        after the prefix are the labels)."""
        rows = [
            [
                *k.split(".")[1 : 1 + len(labels)],
                _n(v["rounds"]),
                _n(v["completed"]),
                v["p50_us"],
                v["p99_us"],
                v["max_us"],
            ]
            for k, v in by(prefix)
        ]
        if not rows:
            return []
        header = [*labels, "rounds", "completed", "p50 us", "p99 us", "max us"]
        return [text, "", _table(header, rows), ""]

    out += handshakes(
        "wakeups.",
        ["peer", "blocked in"],
        "**No lost wakeups** (`tests/reliability/test_wakeups.py`): set/clear handshakes, "
        "each side blocked in the call named; a wait past 30 s fails with its round.",
    )
    out += handshakes(
        "maskfd_wakeups.",
        ["peer", "backing", "blocked in"],
        "**No lost wakeups through MaskFD** (`tests/reliability/test_maskfd_wakeups.py`): "
        "set/clear handshakes carrying the round in the data word.",
    )
    out += handshakes(
        "doorbell_wakeups.",
        ["peer", "blocked in"],
        "**No lost wakeups through the Doorbell** ("
        "`tests/reliability/test_doorbell_wakeups.py`): handshakes with random spin "
        "budgets, 0 included; pollers inside `watch()`.",
    )
    kills = fig.get("doorbell_faults.writer_kills")
    if kills:
        out += [
            f"**Doorbell writers SIGKILLed mid-write** "
            f"(`tests/reliability/test_doorbell_faults.py`): {_n(kills['kills'])} kills, every "
            f"finished write counted, {kills['in_flight_counted']} in-flight writes found "
            "complete (a write is one CAS: at most the killed writer's own is lost); 20 "
            "sleepers killed in poll, nobody left hanging.",
            "",
        ]

    def examples(what: str) -> str:
        found = {k.rsplit(".", 1)[1]: v for k, v in by(f"model.{what}.")}
        size = {"ci": "CI size", "full": "full size"}
        return " and ".join(
            f"{_n(v)} examples ({size[k.split('_')[0]]})" for k, v in sorted(found.items())
        )

    out += [
        "**Model-based** (hypothesis stateful, 0 disagreements): one machine drives EventFD "
        "and the Doorbell against the counter model, bad input and its messages included "
        f"(`tests/reliability/test_model.py`): EventFD {examples('eventfd') or 'not run'}, "
        f"Doorbell {examples('doorbell') or 'not run'}; "
        "MaskFD against the patch semantics, never-miss readiness and the 12-byte ABI "
        f"(`tests/reliability/test_maskfd_model.py`): {examples('maskfd') or 'not run'}.",
        "",
    ]

    out += [
        f"**Bad input** (`tests/reliability/test_bad_input.py`, "
        f"`tests/reliability/test_maskfd_faults.py`): {fig.get('bad_input.cases', '?')} "
        f"distinct EventFD/drop-in cases, {fig.get('bad_input.doorbell_cases', '?')} Doorbell "
        "cases (the counter's cases run on both, with the same messages) and "
        f"{fig.get('bad_input.maskfd_cases', '?')} MaskFD cases, each raising the expected "
        "type with state, open fds, shared mappings and foreign fds unchanged.",
        "",
    ]

    exh = fig.get("faults.fd_exhaustion", {})
    killed = [v for k, v in by("faults.killed_writer.")]
    out += ["**Faults** (`tests/reliability/test_faults.py`, `tests/test_concurrency.py`):", ""]
    if exh:
        out.append(
            f"- RLIMIT_NOFILE exhaustion: EMFILE after {exh['eventfds_before_EMFILE']} "
            f"EventFDs; open fds {exh['fds_before']} before, {exh['fds_after']} after."
        )
    for k, v in by("faults.maskfd_exhaustion."):
        out.append(
            f"- MaskFD({k.rsplit('.', 1)[1]!r}) under exhaustion: EMFILE and "
            f"{v['leaked']} fds left open with fewer than {v['fds_needed']} free; "
            f"works with {v['fds_needed']}."
        )
    for v in killed:
        out.append(
            f"- writer SIGKILLed mid-write: {v['kills']} kills (up to "
            f"{_n(v['max_writes_before_kill'])} writes in), {v['counts_lost']} counts lost."
        )
    for k, v in by("faults.maskfd_killed_writer."):
        out.append(
            f"- MaskFD({k.split('.')[2]!r}) writer SIGKILLed mid-change: {v['kills']} kills "
            f"(up to {_n(v['max_writes_before_kill'])} writes in); each time the survivor "
            "read the last finished or the in-flight pair, poll showed it, writes went on."
        )
    lat = by("signals.")
    if lat:
        worst = max(v for _, v in lat)
        # signals.KIND.CALL.latency_us, where a call's name may hold a dot
        calls = len({k.split(".", 2)[2].rsplit(".", 1)[0] for k, _ in lat})
        out.append(
            f"- signal exception out of a blocking call: {len(lat)} cases "
            f"({calls} calls x SIGINT/handler raising), all raised; slowest {worst} us "
            "from pthread_kill to the exception."
        )
    out.append("")

    channel = []
    for _, v in by("channel.mpmc."):
        channel.append(
            f"- {_n(v['sent'])} messages from {v['senders']} sender processes to "
            f"{v['receivers']} receiver processes: {_n(v['delivered'])} delivered, "
            f"{_n(v['delivered_once'])} "
            "distinct, each whole (a CRC) and in its sender's order "
            "(`tests/test_channel_processes.py`)."
        )
    for _, v in by("channel.random_kills."):
        channel.append(
            f"- senders and receivers SIGKILLed at random points: {_n(v['delivered'])} "
            f"delivered, senders killed: {v['sender_kills']}, receivers killed: "
            f"{v['receiver_kills']}, {v['lost']} lost (at most one per killed receiver), "
            "none torn, none twice, order kept (`tests/test_channel_faults.py`)."
        )
    for _, v in by("channel.sender_kills."):
        channel.append(
            f"- a sender SIGKILLed mid-send, {v['rounds']} rounds: the lock taken over "
            f"{v['lock_taken_over']} times, no torn message, nobody wedged."
        )
    for _, v in by("channel.scribbles."):
        channel.append(
            f"- a peer scribbling on the ring's words: {_n(v['operations'])} operations, "
            "no crash, no hang; the channel works on once the scribbler is gone."
        )
    if channel:
        out += ["**Channel**:", "", *channel, ""]

    def delta(v: dict[str, Any], what: str) -> str:
        if v.get(f"{what}_before") is None:
            return "n/a"
        return f"{v[f'{what}_after'] - v[f'{what}_before']:+,}"

    rows = [
        [
            k.split(".")[1],
            _n(v["cycles"]),
            f"{v['fds_before']} / {v['fds_after']}",
            delta(v, "blocks"),
            delta(v, "heap"),
            f"{_n(v['rss_before_kib'])} / {_n(v['rss_after_kib'])}",
        ]
        for k, v in by("leaks.")
    ]
    out += [
        "**Leaks** (`tests/reliability/test_leaks.py`): create/use/close cycles, measured "
        "after a warm-up; Python blocks from `sys.getallocatedblocks()`, C heap from "
        "glibc `mallinfo2()`; `test_leaks.py` also asserts the shared mappings unchanged.",
        "",
        _table(
            [
                "kind",
                "cycles",
                "fds before / after",
                "Python blocks",
                "C heap bytes",
                "RSS KiB before / after",
            ],
            rows,
        ),
        "",
    ]

    if sanitizer is not None:
        out += [f"**Memory safety** (`bash .ci/sanitize`): {sanitizer}", ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the full sizes (--runslow)")
    ap.add_argument("--no-sanitize", action="store_true", help="skip .ci/sanitize")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--write", type=Path, help=f"replace {BEGIN}..{END} in this file")
    args = ap.parse_args()

    figures, summary, seconds, status = run_tests(args.full)
    sanitizer = None
    if not args.no_sanitize:
        sanitizer, sstatus = run_sanitizer()
        status = status or sstatus
    text = render(figures, summary, seconds, args.full, sanitizer)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    if args.write and not status:
        doc = args.write.read_text()
        head, _, rest = doc.partition(BEGIN)
        _, _, tail = rest.partition(END)
        args.write.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
