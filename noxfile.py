"""CI as named steps: each nox session runs alone (``nox -s NAME``) and says
what it proves.  ``.ci/run`` runs every session of ``nox.options.sessions``,
and the GitHub workflow runs the same list, one job each (``.ci/matrix.py``).

Interpreters are found under pyenv (``$(pyenv root)/versions/3.X.*/bin/python3``),
then, for a version whose source tarball ``../shared/cpython`` holds (3.14 and
the free-threaded 3.14t), built there once per machine by its ``build.sh``
(into /opt/cpython), then on PATH (GitHub's setup-python: ``python3.X``,
``python3.Xt``).  A missing one fails the session; it is skipped only when
EFX_OPTIONAL_PYTHONS (e.g. "3.10,3.13") names its version.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import nox

ROOT = pathlib.Path(__file__).resolve().parent
# "3.14t": the free-threaded build (no GIL), a version of its own here.
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14", "3.14t"]
# build.sh and the CPython source tarballs beside it (a read-only copy on CI).
SHARED_CPYTHON = ROOT.parent / "shared" / "cpython"
# The Python of the single-interpreter sessions (sanitize, docs, plot,
# bench-smoke): this machine's default, and the one the sanitizer figures use.
MAIN_PYTHON = "3.11"
# The tests session that also measures branch coverage.
COVERAGE_PYTHON = "3.11"

# The development tools' pinned versions, for every pip that nox runs (the
# venvs' pips inherit it from the environment).
CONSTRAINTS = ROOT / ".ci" / "constraints.txt"
os.environ.setdefault("PIP_CONSTRAINT", str(CONSTRAINTS))

nox.options.error_on_missing_interpreters = True
# Venvs and builds live outside the checkout (--envdir overrides): .ci/sanitize
# copies the tree, and a tree holding venvs would be slow to copy.
nox.options.envdir = os.path.join(
    tempfile.gettempdir(), "eventfd_ext-nox-" + hashlib.sha1(bytes(ROOT)).hexdigest()[:8]
)
nox.options.default_venv_backend = "venv"
# What .ci/run runs, one session after another on one 2-core machine, after
# README's two commands (the suite on 3.11, the full benchmark).  Of the
# interpreters it tests the oldest and the newest, with the GIL and without
# (3.14 changed os.eventfd's messages, which the drop-ins follow); 3.12 and
# 3.13 each cost a suite run and differ from their neighbours in nothing the
# package uses.
nox.options.sessions = [
    "lint",
    "types",
    "wheel",
    "tests-3.10",
    "tests-3.14",
    "tests-3.14t",
    "sanitize",
    "tsan",
    "docs",
    "plot",
    "zizmor",
    "cibuildwheel-config",
]
# The GitHub workflow runs each session as a job of its own, in parallel, so
# it adds what .ci/run leaves out for time or covers by README's commands
# (.ci/matrix.py): every other interpreter (3.11 with branch coverage) and
# the benchmark from the wheel.
WORKFLOW_EXTRA = [
    *(f"tests-{v}" for v in PYTHONS if f"tests-{v}" not in nox.options.sessions),
    "bench-smoke",
]


def _is_cpython(path: str, version: str) -> bool:
    """`path` runs and is CPython `version` ("3.14t": the free-threaded
    build, "3.14": the default one; pyenv's shims are on PATH for every
    version, and fail for those not selected)."""
    probe = (
        "import sys, sysconfig; print(sys.implementation.name, '%d.%d' % sys.version_info[:2]"
        " + ('t' if sysconfig.get_config_var('Py_GIL_DISABLED') else ''))"
    )
    try:
        out = subprocess.run([path, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.split() == ["cpython", version]


def _shared_release(version: str) -> str | None:
    """The newest release of `version` ("3.14" or "3.14t") whose source
    ../shared/cpython holds, as build.sh takes it ("3.14.7", "3.14.7t")."""
    minor, t = version.rstrip("t"), "t" if version.endswith("t") else ""
    pattern = re.compile(rf"cpython-({re.escape(minor)}\.(\d+))\.tar\.xz$")
    found = [m for p in SHARED_CPYTHON.glob("cpython-*.tar.xz") if (m := pattern.search(p.name))]
    if not (SHARED_CPYTHON / "build.sh").is_file() or not found:
        return None
    return max(found, key=lambda m: int(m.group(2))).group(1) + t


def find_python(version: str, session: nox.Session | None = None) -> str | None:
    """The newest CPython `version` under pyenv, else one ../shared/cpython's
    build.sh builds (with `session`: once per machine, 2-5 minutes; it
    reuses a finished build), else one on PATH, else None.

    pyenv and build.sh first: their builds carry the test package
    (tests/test_cpython_os.py runs CPython's own EventfdTests), which
    Debian's python3.X lacks.
    """
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        root = out.stdout.strip() or root
    minor, t = version.rstrip("t"), "t" if version.endswith("t") else ""
    pattern = re.compile(rf"/{re.escape(minor)}\.(\d+){t}/bin/python3$")
    candidates = [
        c
        for c in glob.glob(os.path.join(root, "versions", f"{minor}.*{t}", "bin", "python3"))
        if pattern.search(c)
    ]
    # Newest patch release first: 3.10.13 before 3.10.9.
    candidates.sort(key=lambda c: int(pattern.search(c).group(1)), reverse=True)  # type: ignore[union-attr]
    for candidate in candidates:
        if os.access(candidate, os.X_OK) and _is_cpython(candidate, version):
            return candidate
    release = _shared_release(version)
    if release is not None and session is not None:
        # Its last line of output is the python's path (progress goes before it).
        printed = session.run(
            "bash", str(SHARED_CPYTHON / "build.sh"), release, silent=True, external=True
        )
        built = str(printed).strip().splitlines()[-1] if printed else ""
        if os.access(built, os.X_OK) and _is_cpython(built, version):
            return built
        session.error(
            f"{SHARED_CPYTHON}/build.sh {release} printed {built!r}, not a CPython {version}"
        )
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, f"python{version}")
        if "shims" in directory or not os.access(candidate, os.X_OK):
            continue
        if _is_cpython(candidate, version):
            return candidate
    return None


def require_python(session: nox.Session, version: str) -> str:
    python = find_python(version, session)
    if python is None:
        optional = os.environ.get("EFX_OPTIONAL_PYTHONS", "").replace(" ", "").split(",")
        if version in optional:
            session.skip(f"CPython {version} is nowhere here and EFX_OPTIONAL_PYTHONS allows it")
        session.error(
            f"CPython {version} is neither on PATH (python{version}), nor under pyenv,"
            f" nor buildable from {SHARED_CPYTHON}"
        )
    return python


def workdir(session: nox.Session, name: str) -> pathlib.Path:
    """A fresh directory of this session's, beside nox's venvs (outside the
    checkout; session.create_tmp() would also point TMPDIR there)."""
    envdir = pathlib.Path(session.virtualenv.location).parent
    path = envdir / "_work" / session.name.replace(".", "_") / name
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def fresh_venv(session: nox.Session, version: str, name: str) -> pathlib.Path:
    """A new venv of CPython `version` (not nox's: nox finds no pyenv Python)."""
    python = require_python(session, version)
    venv = workdir(session, name)
    shutil.rmtree(venv, ignore_errors=True)
    session.run(python, "-m", "venv", str(venv), external=True)
    return venv


def pip_install(session: nox.Session, venv: pathlib.Path, *args: str) -> None:
    session.run(str(venv / "bin/python"), "-m", "pip", "install", "-q", *args, external=True)


_built: dict[str, pathlib.Path] = {}


def build_dists(session: nox.Session) -> tuple[pathlib.Path, pathlib.Path]:
    """sdist, then the wheel built from that sdist (once per nox run)."""
    if "wheel" not in _built:
        dist = workdir(session, "dist")
        session.install("build")
        session.run("python", "-m", "build", "--sdist", "--outdir", str(dist), str(ROOT))
        (sdist,) = dist.glob("*.tar.gz")
        session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), str(sdist))
        (wheel,) = dist.glob("*.whl")
        _built.update(sdist=sdist, wheel=wheel)
    return _built["sdist"], _built["wheel"]


def the_wheel(session: nox.Session) -> pathlib.Path:
    """EFX_WHEEL (a wheel built elsewhere, e.g. a CI artifact) or one built here."""
    given = os.environ.get("EFX_WHEEL")
    if given:
        return pathlib.Path(given).resolve()
    return build_dists(session)[1]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check on every Python file of the tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict on every Python file of the tree (pyproject's files)."""
    # nox for noxfile.py; cffi's stubs (and setuptools', which they bring)
    # for setup.py and csrc/build_ffi.py; the async extra's frameworks, which
    # the tests import.  The package is read from src/.
    session.install(
        "mypy", "pytest>=8", "hypothesis>=6", "nox", "types-cffi", "trio", "anyio", "uvloop"
    )
    session.run("mypy")


@nox.session
def wheel(session: nox.Session) -> None:
    """sdist -> wheel from the sdist (the sdist carries all a build needs),
    auditwheel show, one cp310-abi3 wheel, LICENSE in both."""
    sdist, whl = build_dists(session)
    session.install("auditwheel")
    session.run("auditwheel", "show", str(whl))
    if not re.search(r"-cp310-abi3-linux_[a-z0-9_]+\.whl$", whl.name):
        session.error(f"expected one cp310-abi3 wheel, got {whl.name}")
    import tarfile
    import zipfile

    with zipfile.ZipFile(whl) as zf:
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in zf.namelist()):
            session.error("the wheel's dist-info has no licenses/LICENSE")
    with tarfile.open(sdist) as tf:
        if not any(n.endswith("/LICENSE") for n in tf.getnames()):
            session.error("the sdist has no LICENSE")
    session.log(f"OK: {sdist.name}, {whl.name}")


def _tests(session: nox.Session, version: str) -> None:
    free_threaded = version.endswith("t")
    # No limited API on a free-threaded build, so no abi3 wheel: pip builds
    # the package's own cp3XYt wheel from the sdist (setup.py), as a user's would.
    package = build_dists(session)[0] if free_threaded else the_wheel(session)
    venv = fresh_venv(session, version, f"venv{version}")
    py = str(venv / "bin/python")
    # From the checkout: the src/ layout keeps the uncompiled package off
    # sys.path, so the suite imports the installed copy.  Exit 5 (no tests)
    # fails like any other non-zero status.
    pytest = ["-m", "pytest", "tests", "-p", "no:cacheprovider", "-q"]
    if version != COVERAGE_PYTHON:
        pip_install(session, venv, f"{package}[test]")
        if free_threaded:
            # The suite must run without the GIL, and no extension may turn
            # it back on at import: PYTHON_GIL is left unset, not forced to
            # 0, and tests/test_package.py checks sys._is_gil_enabled().
            session.run(py, *pytest, env={"PYTHON_GIL": None}, external=True)
        else:
            session.run(py, *pytest, external=True)
        return
    # Branch coverage ([tool.coverage] in pyproject), on one interpreter:
    # it costs the suite about half its time again.
    pip_install(session, venv, f"{package}[test]", "coverage[toml]>=7.10")
    data = workdir(session, "coverage")
    data.mkdir()
    env = {"COVERAGE_FILE": str(data / ".coverage")}
    session.run(py, "-m", "coverage", "run", *pytest, env=env, external=True)
    session.run(py, "-m", "coverage", "combine", "-q", env=env, external=True)
    session.run(py, "-m", "coverage", "report", env=env, external=True)


for _version in PYTHONS:

    def _session(session: nox.Session, version: str = _version) -> None:
        _tests(session, version)

    _session.__doc__ = (
        (
            f"The package built from the sdist in a fresh free-threaded CPython {_version}"
            " venv (its own wheel: no abi3 there), the suite from the checkout with the GIL off."
        )
        if _version.endswith("t")
        else (
            f"The wheel in a fresh CPython {_version} venv, the suite from the checkout"
            + (", branch coverage reported." if _version == COVERAGE_PYTHON else ".")
        )
    )
    nox.session(name=f"tests-{_version}")(_session)


@nox.session
def sanitize(session: nox.Session) -> None:
    """The C shims rebuilt with ASan+UBSan, the suite run against them (.ci/sanitize)."""
    venv = fresh_venv(session, MAIN_PYTHON, "venv")
    pip_install(session, venv, f"{the_wheel(session)}[test]", "setuptools", "cffi>=1.17")
    session.run("bash", ".ci/sanitize", env={"PYTHON": str(venv / "bin/python")}, external=True)


@nox.session
def tsan(session: nox.Session) -> None:
    """The Doorbell's C core: its stress test under ThreadSanitizer, then
    across processes and with the exec'ed C peer (.ci/tsan installs clang
    when it is missing)."""
    session.run("bash", ".ci/tsan", external=True)


@nox.session
def docs(session: nox.Session) -> None:
    """The API reference (docs/api) built with warnings as errors, covering __all__."""
    venv = fresh_venv(session, MAIN_PYTHON, "venv")
    pip_install(session, venv, str(the_wheel(session)), "sphinx")
    out = workdir(session, "html")
    session.run(
        str(venv / "bin/sphinx-build"), "-W", "--keep-going", "-b", "html", "docs/api", str(out),
        external=True,
    )  # fmt: skip
    check = (
        "import sys, eventfd_ext\n"
        "from sphinx.util.inventory import InventoryFile\n"
        "with open(sys.argv[1], 'rb') as f:\n"
        "    inv = InventoryFile.load(f, '', lambda base, uri: uri)\n"
        "names = {n for objs in inv.values() for n in objs}\n"
        "missing = [n for n in eventfd_ext.__all__ if 'eventfd_ext.' + n not in names]\n"
        "sys.exit(f'not in the API reference: {missing}' if missing else 0)\n"
    )
    session.run(str(venv / "bin/python"), "-c", check, str(out / "objects.inv"), external=True)


@nox.session(name="bench-smoke")
def bench_smoke(session: nox.Session) -> None:
    """eventfd-ext-bench --quick from the wheel (what '.[bench]' installs)."""
    venv = fresh_venv(session, MAIN_PYTHON, "venv")
    pip_install(session, venv, f"{the_wheel(session)}[bench]")
    session.run(str(venv / "bin/eventfd-ext-bench"), "--quick", external=True)


@nox.session
def plot(session: nox.Session) -> None:
    """The --plot test with the plot extra installed: it must pass, not skip."""
    venv = fresh_venv(session, MAIN_PYTHON, "venv")
    pip_install(session, venv, f"{the_wheel(session)}[test,plot]")
    report = workdir(session, "plot.xml")
    session.run(
        str(venv / "bin/python"), "-m", "pytest", "tests/test_bench.py", "-k", "plot",
        "-p", "no:cacheprovider", "-q", f"--junitxml={report}",
        external=True,
    )  # fmt: skip
    cases = {c.get("name"): c for c in ET.parse(report).iter("testcase")}
    case = cases.get("test_plot_draws_a_png")
    if case is None or len(case):  # a child element: skipped, failure or error
        session.error("test_plot_draws_a_png did not run and pass (skipped?)")


@nox.session
def zizmor(session: nox.Session) -> None:
    """The GitHub workflows audited by zizmor (offline: no GitHub API here)."""
    session.install("zizmor")
    session.run("zizmor", "--offline", ".github/workflows")


@nox.session(name="cibuildwheel-config")
def cibuildwheel_config(session: nox.Session) -> None:
    """The [tool.cibuildwheel] configuration parses and selects the builds
    (building needs Docker, which only the GitHub workflow has)."""
    session.install("cibuildwheel")
    session.run("cibuildwheel", "--print-build-identifiers", "--platform", "linux", ".")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run with nox: nox -s SESSION (nox -l lists them)")
