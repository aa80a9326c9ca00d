"""The statistics every experiment reports, in one place, each with known-answer tests.

* :func:`spearman`: rank correlation with its p-value (None where a side is constant);
* :func:`auroc`: P(a value of the first group lies below one of the second), ties counting half;
* :func:`slope`: the least-squares slope of y on x;
* :func:`wilson`: the score interval of a share, sensible at 0 of n and n of n;
* :func:`bootstrap_interval`: a percentile interval of any statistic, resampling *units* (pairs,
  models) within their strata, so that the interval is as wide as the number of units allows
  and not as narrow as the number of images suggests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np
from scipy.stats import spearmanr

Unit = TypeVar("Unit", bound=Hashable)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float] | None:
    """Spearman's rho with its p-value and n; None where either side is constant."""
    if len(xs) != len(ys):
        raise ValueError(f"spearman needs paired values, got {len(xs)} and {len(ys)}")
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    result = spearmanr(xs, ys)
    return {"rho": float(result.statistic), "p": float(result.pvalue), "n": len(xs)}


def rho(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho alone (None where a side is constant)."""
    result = spearman(xs, ys)
    return None if result is None else result["rho"]


def auroc(low: Sequence[float], high: Sequence[float]) -> float | None:
    """P(x < y) for x from ``low`` and y from ``high``, ties half: 1 when every ``low`` value lies
    below every ``high`` one, 0.5 when the groups cannot be told apart. None for an empty group."""
    a, b = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if not len(a) or not len(b):
        return None
    below = (a[:, None] < b[None, :]).sum() + 0.5 * (a[:, None] == b[None, :]).sum()
    return float(below / (len(a) * len(b)))


def mean_or_none(values: Sequence[float]) -> float | None:
    """The mean, None for no values (a measure nothing was read for)."""
    return float(np.mean(values)) if len(values) else None


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The least-squares slope of ``ys`` on ``xs``; None with fewer than two distinct xs."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"slope needs paired values, got {len(x)} and {len(y)}")
    if len(set(x.tolist())) < 2:
        return None
    dx = x - x.mean()
    return float((dx * (y - y.mean())).sum() / (dx * dx).sum())


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share (95% by default)."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    units: Mapping[Unit, Hashable],
    statistic: Callable[[list[Unit]], float | None],
    *,
    draws: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> list[float] | None:
    """A percentile interval of ``statistic(sample)``, where each sample redraws the units with
    replacement within each stratum (``units`` maps a unit to its stratum: a pair to its frequency
    level, so that every level keeps its number of pairs). A unit drawn twice appears twice in the
    list. None when no draw gives a value."""
    strata: dict[Hashable, list[Unit]] = {}
    for unit, stratum in units.items():
        strata.setdefault(stratum, []).append(unit)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        sample = [group[i] for group in strata.values() for i in rng.integers(0, len(group), len(group))]
        value = statistic(sample)
        if value is not None and math.isfinite(value):
            values.append(value)
    if not values:
        return None
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def bootstrap_mean(values: Sequence[float], draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile bootstrap interval of a mean of values in [0, 1], clipped to [0, 1]."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return 0.0, 1.0
    if len(x) == 1:
        return float(np.clip(x[0], 0, 1)), float(np.clip(x[0], 0, 1))
    means = np.random.default_rng(seed).choice(x, size=(draws, len(x))).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(np.clip(low, 0, 1)), float(np.clip(high, 0, 1))
