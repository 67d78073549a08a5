"""The benchmark against pipes: ``python -m eventfd_ext.bench``.

Compares eventfd_ext's EventFD, Doorbell, MaskFD and drop-in functions with
``os.eventfd_*``, a pipe, an AF_UNIX socketpair and, for reference,
threading.Event and multiprocessing.Semaphore, on per-call cost, ping-pong
latency between threads and between processes, and throughput, and names the
fastest of each.  ``--dev`` adds the same loops done in C (each figure's
ratio to them), the layers below the API and the goals.  ``--help`` lists
the options.

Modules: ``mechanisms`` (what is compared, as statements), ``runner`` (how it
is measured), ``results`` (the statistics), ``report`` (table, goals, JSON,
plot) and ``cli`` (the command).
"""

from .cli import main

__all__ = ["main"]
