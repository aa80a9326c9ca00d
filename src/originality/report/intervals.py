"""Intervals that mean something for the numbers the reports show, never outside [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

from originality.stats import bootstrap_mean, wilson

__all__ = ["bootstrap_mean", "mean_interval", "wilson"]


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """The interval of a mean distance: Wilson when every value is 0 or 1 (a share of samples that
    do not match), a bootstrap otherwise."""
    x = [float(v) for v in values]
    if x and all(v in (0.0, 1.0) for v in x):
        return wilson(int(sum(x)), len(x))
    return bootstrap_mean(x)
