"""Shared test set-up: ``--runslow`` adds the large sizes marked ``slow``;
``socks``, a connected UNIX socket pair of each type."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from _kernel import TIMEOUT

# Hypothesis sizes as profiles, not settings the tests mutate: "ci" in every
# run, "full" with --runslow (the size of docs/reliability.md's figures).
# Tests that pass their own max_examples keep it.
_TOO_SLOW = [HealthCheck.too_slow]
settings.register_profile(
    "ci", max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=_TOO_SLOW
)
settings.register_profile(
    "full",
    max_examples=2_000,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=_TOO_SLOW,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="also run the large sizes marked slow",
    )


def pytest_configure(config: pytest.Config) -> None:
    settings.load_profile(size(config))


def size(config: pytest.Config) -> str:
    """The size of this run: "full" with --runslow, else "ci"."""
    return "full" if config.getoption("--runslow") else "ci"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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


@pytest.fixture(
    params=[socket.SOCK_STREAM, socket.SOCK_SEQPACKET, socket.SOCK_DGRAM],
    ids=["stream", "seqpacket", "dgram"],
)
def socks(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected AF_UNIX socket pair of each type, with a timeout: a
    message that never comes fails the test instead of hanging it."""
    a, b = socket.socketpair(socket.AF_UNIX, request.param)
    with a, b:
        a.settimeout(TIMEOUT)
        b.settimeout(TIMEOUT)
        yield a, b
