"""Shared test set-up: ``--runslow`` adds the large sizes marked ``slow``."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="also run the large sizes marked slow",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    # Deselected, not skipped: the CI size of each of these tests still runs;
    # only the large size waits for --runslow (the summary counts them).
    if config.getoption("--runslow"):
        return
    large = [item for item in items if "slow" in item.keywords]
    if large:
        config.hook.pytest_deselected(items=large)
        items[:] = [item for item in items if "slow" not in item.keywords]


def pytest_report_header(config: pytest.Config) -> str:
    if config.getoption("--runslow"):
        return "sizes: CI and large (--runslow)"
    return "sizes: CI only; --runslow adds the large sizes (shown as deselected)"
