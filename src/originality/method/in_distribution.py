"""In-distribution checks: ``check(query, samples) -> Verdict`` (passed, with its evidence).

A reconstruction only counts when the learned tokens are still a concept of the model's
distribution, not a memorised copy of the query (Sec. 3.1).

* ``positions`` (shapes models, App. C): the training data place elements uniformly at
  random, so samples of an in-distribution concept put their elements in different places
  from seed to seed and do not copy the query's layout. Among the samples whose elements
  match the query's, the check measures each one's layout distance to the query (mean
  distance between matched element centres, as a fraction of the image side) and to the
  other samples. It fails when more than ``max_copies`` of them sit within ``tolerance`` of
  the query's layout.
* editability ("cat in S*") for real models comes with the real-world setting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from originality.errors import OriginalityError


@dataclass
class Verdict:
    name: str
    passed: bool
    evidence: dict[str, Any] = field(default_factory=dict)


Check = Callable[[Image.Image, Sequence[Image.Image]], Verdict]


def layout_distance(a, b) -> float:
    """Mean centre distance between two same-content layouts under the best element matching."""
    from scipy.optimize import linear_sum_assignment

    cost = np.full((len(a), len(b)), 1e6)
    for i, da in enumerate(a):
        for j, db in enumerate(b):
            if da.element == db.element:
                cost[i, j] = np.hypot(da.centre[0] - db.centre[0], da.centre[1] - db.centre[1])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean()) if len(rows) else 0.0


class PositionsCheck:
    def __init__(self, detector=None, *, tolerance: float = 0.08, max_copies: float = 0.5):
        from originality.detection.detector import ElementDetector

        self.detector = detector or ElementDetector.load()
        self.tolerance, self.max_copies = tolerance, max_copies

    def __call__(self, query: Image.Image, samples: Sequence[Image.Image]) -> Verdict:
        from originality.detection.detector import element_multiset

        found = self.detector.detect([query, *samples])
        side = float(query.width)
        want = element_multiset(found[0])
        matching = [d for d in found[1:] if element_multiset(d) == want and d]
        to_query = [layout_distance(found[0], d) / side for d in matching]
        between = [layout_distance(a, b) / side for a, b in itertools.combinations(matching, 2)]
        copies = sum(v < self.tolerance for v in to_query)
        fraction = copies / len(matching) if matching else 0.0
        return Verdict(
            name="positions",
            passed=fraction <= self.max_copies,
            evidence={
                "matching_samples": len(matching),
                "copies_of_query_layout": copies,
                "copy_fraction": fraction,
                "mean_distance_to_query": float(np.mean(to_query)) if to_query else None,
                "mean_distance_between_samples": float(np.mean(between)) if between else None,
                "tolerance": self.tolerance,
                "max_copies": self.max_copies,
            },
        )


CHECKS: dict[str, Callable[..., Check]] = {
    "positions": lambda detector=None, **kw: PositionsCheck(detector, **kw),
}


def get_check(name: str, **kwargs) -> Check:
    if name not in CHECKS:
        raise OriginalityError(f"unknown in-distribution check {name!r}; known: {', '.join(CHECKS)}")
    return CHECKS[name](**kwargs)
