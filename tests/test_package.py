"""The installed package: what it exports and what it ships."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import pathlib
import re
import subprocess
import sys
import sysconfig

import pytest

import eventfd_ext


def test_every_public_name_is_documented() -> None:
    for name in eventfd_ext.__all__:
        obj = getattr(eventfd_ext, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


@pytest.mark.parametrize("name", ["EFD_CLOEXEC", "EFD_NONBLOCK", "EFD_SEMAPHORE"])
def test_flags_have_the_kernel_values(name: str) -> None:
    assert getattr(eventfd_ext, name) == getattr(os, name)


def test_efd_mask_has_the_patch_value() -> None:
    assert eventfd_ext.EFD_MASK == 1 << 1


def test_ships_py_typed_and_compiled_module() -> None:
    files = importlib.resources.files("eventfd_ext")
    assert files.joinpath("py.typed").is_file()
    assert any(p.name.startswith("_shim.") and p.name.endswith(".so") for p in files.iterdir())


@pytest.mark.parametrize(
    ("module", "stub"),
    [("eventfd_ext._shim", "_shim.pyi"), ("eventfd_ext.bench._floor", "bench/_floor.pyi")],
)
def test_stub_matches_the_compiled_module(module: str, stub: str) -> None:
    """Every name of the compiled cffi module's lib is in its .pyi and the
    reverse, and each stub function takes as many arguments as the C one."""
    import ast
    import importlib

    compiled_module = importlib.import_module(module)
    lib, ffi = compiled_module.lib, compiled_module.ffi
    tree = ast.parse(importlib.resources.files("eventfd_ext").joinpath(stub).read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_Lib"]
    declared: dict[str, int | None] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            declared[node.name] = len(node.args.posonlyargs) + len(node.args.args)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared[node.target.id] = None  # a constant
    compiled = {name for name in dir(lib) if not name.startswith("__")}
    assert set(declared) == compiled, (
        f"only in the stub: {sorted(set(declared) - compiled)}; "
        f"only compiled: {sorted(compiled - set(declared))}"
    )
    for name, arity in declared.items():
        if arity is not None:
            assert len(ffi.typeof(getattr(lib, name)).args) == arity, name


def test_version_is_the_distributions() -> None:
    # One place: pyproject.toml's version, read back through the metadata.
    assert eventfd_ext.__version__ == importlib.metadata.version("eventfd_ext")
    assert re.fullmatch(r"\d+\.\d+\.\d+([abc]|rc|\.dev|\.post)?\d*", eventfd_ext.__version__)


def test_ships_the_license() -> None:
    dist = importlib.metadata.distribution("eventfd_ext")
    assert dist.metadata["License-Expression"] == "MIT"
    # The installed wheel's dist-info/licenses/LICENSE (a build's egg-info in
    # a checkout on sys.path lists the file too, but relative to src/).
    found = [
        pathlib.Path(f.locate())
        for d in importlib.metadata.distributions(name="eventfd_ext")
        for f in d.files or []
        if f.name == "LICENSE"
    ]
    texts = [path.read_text() for path in found if path.is_file()]
    assert texts, "LICENSE is not in the installed distribution"
    assert "MIT License" in texts[0]
    assert "Copyright (c) 2026 the eventfd_ext developers" in texts[0]


def test_hot_paths_make_no_cells() -> None:
    """A closure anywhere in a hot method makes its captured variables cells,
    created on every call, fast path included (a cost the bench's per-call
    rows show): the waiting parts live in their own methods."""
    from eventfd_ext import Doorbell, EventFD, eventfd_read, eventfd_write

    hot = [EventFD.read, EventFD.write, EventFD.try_read, Doorbell.read, Doorbell.write]
    hot += [Doorbell.try_read, eventfd_read, eventfd_write]
    for function in hot:
        assert not function.__code__.co_cellvars, function.__qualname__


# A free-threaded build (3.13t, 3.14t): no GIL unless an extension asks for it.
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _gil_enabled() -> bool:
    """Whether the GIL is on now (3.13 added the question; before, always)."""
    return bool(getattr(sys, "_is_gil_enabled", lambda: True)())


def test_the_suite_runs_with_the_builds_gil() -> None:
    """On a free-threaded build the suite runs without the GIL: nothing it
    imported turned it back on, and PYTHON_GIL did not force it on."""
    assert _gil_enabled() is not FREE_THREADED


def test_importing_every_module_leaves_the_gil_off() -> None:
    """Every module of the package, its cffi extensions included, imported
    in a fresh interpreter with PYTHON_GIL unset (which would hide an
    extension that does not declare itself free-threading safe: CPython
    then turns the GIL on, and warns)."""
    code = (
        "import importlib, pkgutil, sys, eventfd_ext\n"
        "for m in pkgutil.walk_packages(eventfd_ext.__path__, 'eventfd_ext.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(getattr(sys, '_is_gil_enabled', lambda: True)())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(not FREE_THREADED)]
