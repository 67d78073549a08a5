"""docs/async_and_processes.md's examples print what their comments say,
and the process-pool one works under every start method.  (That every
block runs at all is test_docs_examples.py's, for every doc.)"""

from __future__ import annotations

import importlib.util
import pathlib
import re

import pytest

from _kernel import run_script

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "async_and_processes.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
POOL = next(block for block in BLOCKS if "ProcessPoolExecutor" in block)
SQUARES = str([n * n for n in range(10)])


def test_the_async_examples_print_their_comments(tmp_path: pathlib.Path) -> None:
    examples = [block for block in BLOCKS if "aread()" in block and "run(main" in block]
    assert len(examples) == 2  # trio's and asyncio's
    for code in examples:
        if "import trio" in code and not importlib.util.find_spec("trio"):
            continue
        assert run_script(code, tmp_path).splitlines() == ["3", "nothing within 0.1 s"]


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_pool_gets_the_eventfd_once_through_its_initializer(
    method: str, tmp_path: pathlib.Path
) -> None:
    """The documented way: every worker writes to the parent's EventFD,
    which it got once, when it started."""
    code = POOL.replace('mp.get_context("spawn")', f'mp.get_context("{method}")')
    assert code != POOL or method == "spawn"
    assert run_script(code, tmp_path).splitlines() == [SQUARES]
