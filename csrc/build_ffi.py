"""cffi build script (out-of-line API mode) for ``eventfd_ext._shim``.

Run by setuptools through ``cffi_modules`` in setup.py; it is not part of the
installed package.  Each shim is a pair of files in this folder: ``NAME.h``
holds its cdef and ``NAME.c`` its source.  The sources are #included into the
one generated module so that their static functions inline into cffi's
wrappers (one less call per crossing).
"""

import pathlib
import sys

from cffi import FFI

if not sys.platform.startswith("linux"):
    raise RuntimeError(
        f"eventfd_ext needs Linux (eventfd(2) is Linux-only); this is {sys.platform!r}"
    )

HERE = pathlib.Path(__file__).resolve().parent
SHIMS = ["eventfd_shim", "maskfd_shim", "floor", "doorbell"]

ffi = FFI()
for name in SHIMS:
    ffi.cdef((HERE / f"{name}.h").read_text())
ffi.set_source(
    "eventfd_ext._shim",
    "\n".join(f'#include "{name}.c"' for name in SHIMS),
    include_dirs=[str(HERE)],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffi.compile(tmpdir=str(HERE.parent), verbose=True)
