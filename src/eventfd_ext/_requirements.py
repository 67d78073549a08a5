"""The kernel features the package uses beyond eventfd2 (Linux 2.6.27), one
record each: what it is, since which Linux, and what needs it.

Nothing is probed at import: a kernel without a feature refuses the call
that needs it (EOPNOTSUPP), and that call's error names the feature and the
version here.  README.md's Requirements section states the same table.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class KernelFeature:
    what: str
    linux: str
    needed_by: str

    def missing(self, call: str) -> OSError:
        """The error of *call* (``"EventFD.read()"``), which this kernel
        refused for lack of the feature."""
        return OSError(
            errno.EOPNOTSUPP,
            f"{call} needs {self.what} (Linux >= {self.linux}; this kernel: {os.uname().release})",
        )


#: EventFD's reads take the count with preadv2(RWF_NOWAIT), which never
#: blocks whatever the fd's mode: what lets close() wake every waiter and
#: aread() never block a loop.  Eventfds accept it since their read_iter
#: (5.10); before, preadv2 refuses it with EOPNOTSUPP.  A Doorbell reads its
#: wake-ups with read(2) then, its eventfd being non-blocking; only one that
#: a holder made blocking (fcntl) needs the feature.
NOWAIT_READ = KernelFeature(
    what="preadv2(RWF_NOWAIT) reads of an eventfd",
    linux="5.10",
    needed_by="EventFD's reads; a Doorbell's waits once its eventfd was made blocking",
)

#: MaskFD shows POLLPRI with one byte of AF_UNIX out-of-band data.
UNIX_OOB = KernelFeature(
    what="AF_UNIX out-of-band data (MSG_OOB, CONFIG_AF_UNIX_OOB)",
    linux="5.15",
    needed_by="MaskFD's POLLPRI",
)
