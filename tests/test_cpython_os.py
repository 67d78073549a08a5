"""CPython's own eventfd tests, run against eventfd_ext's drop-ins.

The interpreter's ``test.test_os.EventfdTests`` is imported as is (no code is
copied) and run with its module's ``os`` global replaced by a proxy in which
eventfd, eventfd_read, eventfd_write and the EFD_* constants are ours and
every other name is the real ``os``.
"""

from __future__ import annotations

import importlib
import os
import types
import unittest
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import eventfd_ext

DROPINS = ("eventfd", "eventfd_read", "eventfd_write")
CONSTANTS = ("EFD_CLOEXEC", "EFD_NONBLOCK", "EFD_SEMAPHORE")

try:
    test_os: Any = importlib.import_module("test.test_os")
except ImportError as e:  # distributions may strip the test package
    test_os = None
    _MISSING = f"this interpreter has no test.test_os ({e})"
else:
    _MISSING = ""


def _proxy(calls: Counter[str]) -> types.ModuleType:
    """A stand-in for os: our eventfd names (counting calls), os for the rest."""
    proxy = types.ModuleType("os", "os with eventfd_ext's eventfd functions")

    def counted(name: str) -> Callable[..., Any]:
        ours = getattr(eventfd_ext, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return ours(*args, **kwargs)

        return call

    for name in DROPINS:
        setattr(proxy, name, counted(name))
    for name in CONSTANTS:
        setattr(proxy, name, getattr(eventfd_ext, name))
    # PEP 562; setattr, as mypy refuses assigning a module's __getattr__.
    setattr(proxy, "__getattr__", lambda name: getattr(os, name))  # noqa: B010
    return proxy


def _cases() -> list[str]:
    if test_os is None:
        return []
    return list(unittest.TestLoader().getTestCaseNames(test_os.EventfdTests))


@pytest.fixture
def our_os(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    if test_os is None:
        pytest.skip(_MISSING)
    calls: Counter[str] = Counter()
    monkeypatch.setattr(test_os, "os", _proxy(calls))
    return calls


def test_upstream_class_is_there() -> None:
    if test_os is None:
        pytest.skip(_MISSING)
    assert len(_cases()) >= 3, _cases()


@pytest.mark.parametrize("name", _cases() or ["<no test.test_os>"])
def test_cpython_eventfd_test(name: str, our_os: Counter[str]) -> None:
    suite = unittest.TestSuite([test_os.EventfdTests(name)])
    result = unittest.TestResult()
    suite.run(result)
    problems = [
        f"{kind} in {test}:\n{trace}"
        for kind, pairs in (("error", result.errors), ("failure", result.failures))
        for test, trace in pairs
    ]
    assert not problems, "\n".join(problems)
    assert result.testsRun == 1
    assert not result.skipped, result.skipped
    assert not result.expectedFailures
    assert not result.unexpectedSuccesses
    # The upstream test went through our functions, not the real ones.
    assert our_os["eventfd"] >= 1, our_os
    assert our_os["eventfd_read"] + our_os["eventfd_write"] >= 1, our_os


def test_proxy_constants_are_the_kernel_values() -> None:
    for name in CONSTANTS:
        assert getattr(eventfd_ext, name) == getattr(os, name), name
