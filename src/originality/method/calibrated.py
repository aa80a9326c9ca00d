"""The familiarity verdict in units a person understands: a share of the training images.

A model that carries ``familiarity-calibration.json`` in its folder (written by ``originality
experiment ladder`` on a model trained on the frequency ladder) maps one measure to training
frequency: a line from the measure to log10 frequency, fitted on one query seed, and a 90%
prediction interval for one image from its residuals, its coverage checked on another seed. A
score then says "about as familiar as a pair in 0.3% [0.05%, 1.2%] of its training images", or that
it lies below or above the calibrated range. It says nothing of the kind for a query that could not
be read, or whose measure was read another way than the calibration's (a prompt of the user's for a
measure fitted on the reading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from originality.errors import OriginalityError
from originality.runs import read_json

CALIBRATION = "familiarity-calibration.json"


@dataclass(frozen=True)
class FrequencyCalibration:
    measure: str
    needs: str  # nothing | the query's reading | a second model
    intercept: float
    slope: float
    low: float  # the interval around the fitted log10 frequency
    high: float
    level: float
    range: tuple[float, float]  # the training frequencies it was fitted on
    coverage: float | None  # of the interval, on the held-out seed
    grid: dict[str, Any] | None = None  # the signals' grid it was read on: applied only on the same one

    @classmethod
    def load(cls, folder: str | Path) -> FrequencyCalibration | None:
        """The calibration in a model folder, None when it carries none; a damaged one is refused."""
        path = Path(folder) / CALIBRATION
        if not path.is_file():
            return None
        try:
            data = read_json(path)
            made = cls(
                measure=str(data["measure"]),
                needs=str(data["needs"]),
                intercept=data["log10_frequency"]["intercept"],
                slope=data["log10_frequency"]["slope"],
                low=data["interval"]["low"],
                high=data["interval"]["high"],
                level=data["interval"]["level"],
                range=(data["range"][0], data["range"][1]),
                coverage=data.get("held_out_coverage"),
                grid=data.get("grid"),
            )
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise OriginalityError(f"{path} is not a familiarity calibration ({exc}); remove it") from exc
        numbers = [made.intercept, made.slope, made.low, made.high, made.level, *made.range]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
            raise OriginalityError(f"{path} holds values that are not finite numbers; remove it")
        if not (made.low <= made.high and 0 < made.range[0] <= made.range[1] <= 1 and 0 < made.level < 1):
            raise OriginalityError(f"{path} holds an interval or a range out of order; remove it")
        return made

    def verdict(self, value: float) -> dict[str, Any]:
        """``value`` of the measure in training frequency, with the interval for one image."""
        centre = self.intercept + self.slope * value
        frequency, low, high = 10**centre, 10 ** (centre + self.low), 10 ** (centre + self.high)
        lo, hi = self.range
        if frequency < lo:
            where, statement = "below", f"less familiar than the rarest pairs the model was calibrated on ({_pct(lo)})"
        elif frequency > hi:
            where, statement = "above", f"more familiar than the most common pairs it was calibrated on ({_pct(hi)})"
        else:
            where = "inside"
            statement = (
                f"about as familiar as a pair in {_pct(frequency)} [{_pct(low)}, {_pct(high)}] of its training images"
            )
        return {
            "measure": self.measure,
            "value": value,
            "frequency": frequency,
            "interval": [low, high],
            "level": self.level,
            "range": list(self.range),
            "where": where,
            "statement": statement,
        }


def _pct(share: float) -> str:
    return f"{float(f'{share * 100:.2g}'):g}%"
