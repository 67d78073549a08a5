"""One measured figure and its statistics."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DEV_KINDS", "NOISY", "Kind", "Result"]

#: What a row is: this package's API ("eventfd_ext"), CPython's functions
#: ("os.eventfd"), what people use instead of an eventfd ("alternative": a
#: pipe, a socketpair), a reference point that is no fd ("reference"), a
#: layer below an API that splits its cost ("diagnostic"), or the same loop
#: written in C ("floor").
Kind = Literal["eventfd_ext", "os.eventfd", "alternative", "reference", "diagnostic", "floor"]
#: The kinds shown only with ``--dev``: they explain a figure, nobody uses them.
DEV_KINDS: frozenset[Kind] = frozenset({"diagnostic", "floor"})
#: A figure is noisy when its third quartile is more than this times its first.
NOISY = 1.5


@dataclass
class Result:
    """The samples of one case: one figure per repetition."""

    #: "per-call", "ping-pong", "throughput" or "coalescing".
    group: str
    #: The mechanism, or "C eventfd (floor)" and the like.
    case: str
    #: Where it ran ("threads, same CPU", ...), "" when that does not apply.
    placement: str
    #: "s" (seconds per operation), "signals/s" or "signals/read".
    unit: str
    higher_is_better: bool = False
    #: The case (same group and placement) it is shown as a ratio to.
    floor: str | None = None
    kind: Kind = "eventfd_ext"
    #: Whether it competes for its section's "fastest" line (False: an
    #: operation other than the one the section compares).
    ranked: bool = True
    samples: list[float] = field(default_factory=list)

    @classmethod
    def time(
        cls,
        group: str,
        case: str,
        placement: str,
        *,
        floor: str | None,
        kind: Kind = "eventfd_ext",
        ranked: bool = True,
    ) -> Result:
        """A result in seconds per operation."""
        return cls(group, case, placement, "s", False, floor, kind, ranked)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Result:
        """The result that to_json() gave *doc* (its statistics recomputed
        from the samples)."""
        return cls(
            doc["group"], doc["case"], doc["placement"], doc["unit"],
            doc["higher_is_better"], doc["floor"], doc["kind"], doc["ranked"],
            list(doc["samples"]),
        )  # fmt: skip

    @property
    def is_floor(self) -> bool:
        """Whether this is a loop written in C, the floor of its group."""
        return self.kind == "floor"

    @property
    def reference(self) -> bool:
        """Whether this is a reference point rather than an fd to signal."""
        return self.kind == "reference"

    @property
    def dev_only(self) -> bool:
        """Whether only ``--dev`` shows it."""
        return self.kind in DEV_KINDS

    @property
    def median(self) -> float:
        """The median over the repetitions."""
        return statistics.median(self.samples)

    def _quantiles(self, n: int) -> tuple[float, float]:
        # The first and last cut points into n groups (min and max when the
        # samples are too few to cut).
        if len(self.samples) < n:
            return min(self.samples), max(self.samples)
        cuts = statistics.quantiles(self.samples, n=n, method="inclusive")
        return cuts[0], cuts[-1]

    @property
    def quartiles(self) -> tuple[float, float]:
        """The first and third quartiles (the min and max under 4 samples)."""
        return self._quantiles(4)

    @property
    def deciles(self) -> tuple[float, float]:
        """The 10th and 90th percentiles (the min and max under 10 samples)."""
        return self._quantiles(10)

    @property
    def noisy(self) -> bool:
        """Whether the quartiles are too far apart for the median alone to
        describe the figure (see NOISY)."""
        q1, q3 = self.quartiles
        return q3 > NOISY * q1

    def to_json(self) -> dict[str, Any]:
        """The figures, the spread and the raw samples, JSON-ready."""
        q1, q3 = self.quartiles
        p10, p90 = self.deciles
        return {
            "group": self.group,
            "case": self.case,
            "placement": self.placement,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "median": self.median,
            "q1": q1,
            "q3": q3,
            "p10": p10,
            "p90": p90,
            "min": min(self.samples),
            "max": max(self.samples),
            "noisy": self.noisy,
            "repetitions": len(self.samples),
            "floor": self.floor,
            "kind": self.kind,
            "is_floor": self.is_floor,
            "reference": self.reference,
            "ranked": self.ranked,
            "samples": self.samples,
        }
