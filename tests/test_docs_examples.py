"""The runnable examples of docs/doorbell.md run as written: each ```python
block in a fresh interpreter, and its asserts hold."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

from _kernel import TIMEOUT

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "doorbell.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_runs(code: str) -> None:
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
