"""``python -m eventfd_ext.bench``: see eventfd_ext.bench.cli.

The ``eventfd-ext-bench`` script runs the same from any directory; ``python
-m`` puts the current directory first on sys.path, so from a checkout's root
it would import the source package, which has no compiled shim.
"""

from .cli import main

raise SystemExit(main(prog="python -m eventfd_ext.bench"))
