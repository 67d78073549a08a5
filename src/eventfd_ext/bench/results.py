"""One measured figure and its statistics."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Result"]


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
    is_floor: bool = False
    reference: bool = False
    samples: list[float] = field(default_factory=list)

    @classmethod
    def time(
        cls,
        group: str,
        case: str,
        placement: str,
        *,
        floor: str | None,
        is_floor: bool = False,
        reference: bool = False,
    ) -> Result:
        """A result in seconds per operation."""
        return cls(group, case, placement, "s", False, floor, is_floor, reference)

    @property
    def median(self) -> float:
        """The median over the repetitions."""
        return statistics.median(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        """The first and third quartiles (the min and max under 4 samples)."""
        if len(self.samples) < 4:
            return min(self.samples), max(self.samples)
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q1, q3

    def to_json(self) -> dict[str, Any]:
        """The figures, the spread and the raw samples, JSON-ready."""
        q1, q3 = self.quartiles
        return {
            "group": self.group,
            "case": self.case,
            "placement": self.placement,
            "unit": self.unit,
            "median": self.median,
            "q1": q1,
            "q3": q3,
            "min": min(self.samples),
            "max": max(self.samples),
            "repetitions": len(self.samples),
            "floor": self.floor,
            "is_floor": self.is_floor,
            "reference": self.reference,
            "samples": self.samples,
        }
