"""``python -m eventfd_ext.bench``: see eventfd_ext.bench.cli."""

from .cli import main

raise SystemExit(main())
