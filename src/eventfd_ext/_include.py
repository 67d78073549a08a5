"""Where the package's C API lives, for C programs that share its objects."""

import pathlib


def get_include() -> str:
    """The folder to put on a C compiler's include path (``-I``) to use the
    Doorbell's C API, ``#include <eventfd_ext/doorbell.h>``: header-only, so a
    C peer needs nothing else from the package (as ``numpy.get_include()``).

    The headers and the Python package come from the same install, so the
    shared layout a C peer compiles in is the one this package's Doorbell
    maps."""
    return str(pathlib.Path(__file__).resolve().parent / "include")
