"""The benchmark against pipes: ``python -m eventfd_ext.bench``.

Compares eventfd_ext's EventFD and drop-in functions with ``os.eventfd_*``, a
pipe, an AF_UNIX socketpair and, for reference, threading.Event and
multiprocessing.Semaphore, on per-call cost, ping-pong latency between
threads and between processes, and throughput; every figure is also shown as
a ratio to the same loop done in C.  ``--help`` lists the options.

Modules: ``mechanisms`` (what is compared, as statements), ``runner`` (how it
is measured), ``results`` (the statistics), ``report`` (table, goals, JSON,
plot) and ``cli`` (the command).
"""

from .cli import main

__all__ = ["main"]
