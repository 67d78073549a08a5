"""cffi build script (out-of-line API mode) for the package's C modules.

Run by setuptools through ``cffi_modules`` in setup.py; it is not part of the
installed package.  Each shim is a pair of files in this folder: ``NAME.h``
holds its cdef and ``NAME.c`` its source.  The sources are #included into
their generated module so that their static functions inline into cffi's
wrappers (one less call per crossing).

- ``eventfd_ext._shim``: the product (the syscalls, MaskFD's transitions,
  the Doorbell's shared counter, the Channel's ring).
- ``eventfd_ext.bench._floor``: the benchmark's C loops, built beside the
  bench that uses them, so that the product module holds only product code.
"""

import pathlib
import sys

from cffi import FFI

if not sys.platform.startswith("linux"):
    raise RuntimeError(
        f"eventfd_ext needs Linux (eventfd(2) is Linux-only); this is {sys.platform!r}"
    )

HERE = pathlib.Path(__file__).resolve().parent
# The C API shipped in the package (eventfd_ext.get_include()): the shims
# include the same headers C peers do.
INCLUDE = HERE.parent / "src" / "eventfd_ext" / "include"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]


def _module(name: str, shims: list[str]) -> FFI:
    ffi = FFI()
    for shim in shims:
        ffi.cdef((HERE / f"{shim}.h").read_text())
    ffi.set_source(
        name,
        # owner.c guards itself: eventfd_shim.c and bell_owner.c include it.
        "\n".join(f'#include "{shim}.c"' for shim in shims),
        include_dirs=[str(HERE), str(INCLUDE)],
        extra_compile_args=CFLAGS,
    )
    return ffi


ffi = _module(
    "eventfd_ext._shim", ["owner", "eventfd_shim", "maskfd_shim", "bell_owner", "channel"]
)
floor_ffi = _module("eventfd_ext.bench._floor", ["floor"])

if __name__ == "__main__":
    for each in (ffi, floor_ffi):
        each.compile(tmpdir=str(HERE.parent), verbose=True)
