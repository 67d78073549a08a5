"""Every ```python block of README.md and docs/*.md runs in a test.

The harness a block gets is stated in its fence's info string:

- ```` ```python ````: run as written, alone, as a script file in a fresh
  interpreter with warnings as errors (``-W error``); it must exit 0.  (A
  file, not ``-c``: multiprocessing's spawn re-imports the main module.)
- ```` ```python excerpt=PATH ````: the block shows lines of PATH, a file
  of the repository that runs in its own test; every non-blank line of the
  block is a line of PATH (leading and trailing spaces aside), in order.

Any other info string on a python block is refused, so a block cannot
escape the harness by a typo.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from _kernel import run_script

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str, str]]:
    """(id, info string, code) of every python block of every doc."""
    found = []
    for doc in DOCS:
        for i, match in enumerate(FENCE.finditer(doc.read_text())):
            found.append((f"{doc.relative_to(ROOT)}:{i}", match[1].strip(), match[2]))
    return found


BLOCKS = _blocks()
RUN = [pytest.param(code, id=name) for name, info, code in BLOCKS if info == ""]
EXCERPTS = [
    pytest.param(info.removeprefix("excerpt="), code, id=name)
    for name, info, code in BLOCKS
    if info.startswith("excerpt=")
]


def test_every_block_states_a_known_harness() -> None:
    unknown = [name for name, info, _ in BLOCKS if info and not info.startswith("excerpt=")]
    assert not unknown, f"python blocks with an unknown harness: {unknown}"
    assert len(RUN) >= 10, "the docs lost their runnable examples"


@pytest.mark.parametrize("code", RUN)
def test_example_runs_as_written(code: str, tmp_path: pathlib.Path) -> None:
    run_script(code, tmp_path)


@pytest.mark.parametrize(("path", "code"), EXCERPTS)
def test_excerpt_is_in_its_file(path: str, code: str) -> None:
    source = iter(line.strip() for line in (ROOT / path).read_text().splitlines())
    for line in filter(None, (line.strip() for line in code.splitlines())):
        assert line in source, f"{path} has no line {line!r} (in this order)"
