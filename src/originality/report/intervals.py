"""Intervals that mean something for the numbers the reports show, never outside [0, 1]."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share (95% by default): sensible at 0 of n and n of n."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean(values: Sequence[float], draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile bootstrap interval of the mean, clipped to [0, 1]."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return 0.0, 1.0
    if len(x) == 1:
        return float(np.clip(x[0], 0, 1)), float(np.clip(x[0], 0, 1))
    means = np.random.default_rng(seed).choice(x, size=(draws, len(x))).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(np.clip(low, 0, 1)), float(np.clip(high, 0, 1))


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """The interval of a mean distance: Wilson when every value is 0 or 1 (a share of samples that
    do not match), a bootstrap otherwise."""
    x = [float(v) for v in values]
    if x and all(v in (0.0, 1.0) for v in x):
        return wilson(int(sum(x)), len(x))
    return bootstrap_mean(x)
