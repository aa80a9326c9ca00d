"""Is the query drawn like the model's own images? A low-level typicality statistic, and a way around.

On a model trained on rendered shapes, the familiarity signals read *how* an image is drawn before
*what* it shows: a common pair drawn with PIL (hard edges, other sides, pure colours) reads less
familiar than a rendered pair the model never saw. :func:`typicality` compares the query's fine
detail with the model's own samples: the unconditional loss at low noise (t <= :data:`LOW_T`,
where only edges and texture are left to predict) over the same for the signal reference's
samples; about 1 is typical. :func:`canonical_rerender` draws, with the renderer, the elements the
detector read where it read them.

The check (:class:`TypicalityCheck`): the query's own canonical re-render is its reference
(:func:`rerender_typicality`), flagged above a threshold set on the model, which carries it as
``typicality.json``; pre-registered and measured on the shipped model in
``results/typicality-rerender``. The first statistic, against the model's own samples
(:func:`typicality`), missed its bar (``results/typicality``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from originality.errors import OriginalityError
from originality.method.query_reading import READ_CONFIDENCE, QueryReading
from originality.method.signals import SignalConfig, query_latents, readings, signal_grid
from originality.runs import read_json
from originality.shapes.captions import parse_caption
from originality.shapes.rendering import render, sample_layout

LOW_T = 200  # the low-noise end of the grid: fine detail, not composition
CHECK_FILE = "typicality.json"  # in a model folder: the check's threshold, set on that model
STATISTIC = "rerender_low_t"


def typicality(unconditional: torch.Tensor, reference_means: Sequence[float], timesteps: torch.Tensor) -> float:
    """The query's unconditional loss at t <= LOW_T over the model's own samples' (per timestep, then
    averaged): about 1 for an image drawn as the model draws."""
    low = timesteps <= LOW_T
    ratio = unconditional.float() / torch.as_tensor(list(reference_means), dtype=torch.float32)
    return float(ratio[low].mean())


def rerender_typicality(query_loss: torch.Tensor, rerender_loss: torch.Tensor, timesteps: torch.Tensor) -> float:
    """The query's unconditional loss at t <= LOW_T over its canonical re-render's, per timestep on
    the same noise, then averaged: about 1 when the query is drawn as the renderer draws what it
    shows, above 1 when its fine detail (edges, shades, sizes) is foreign to the model. The query
    is its own reference: no sample of the model's enters."""
    low = timesteps <= LOW_T
    return float((query_loss.float() / rerender_loss.float())[low].mean())


def canonical_rerender(reading: QueryReading, size: int) -> Image.Image:
    """The elements a shapes query was read as, drawn by the renderer at the centres where they were
    read (the renderer's own sizes, colours and anti-aliasing)."""
    sure = [e for e in reading.elements if e["confidence"] >= READ_CONFIDENCE]
    elements = [parse_caption(e["element"])[0] for e in sure]
    centres = [((e["box"][0] + e["box"][2]) / 2 / size, (e["box"][1] + e["box"][3]) / 2 / size) for e in sure]
    placed = sample_layout(elements, size, np.random.default_rng(0), fixed_centres=centres)
    return render(placed, size)


@dataclass(frozen=True)
class TypicalityCheck:
    """Is a shapes query drawn as its model's training images are? The query's low-noise loss over
    its canonical re-render's (:func:`rerender_typicality`), flagged above the threshold set on the
    model (``typicality.json`` in its folder). A flagged query's signals are read on the re-render."""

    threshold: float
    grid: SignalConfig
    source: str = ""

    @classmethod
    def load(cls, folder: str | Path) -> TypicalityCheck | None:
        """The model's check, None when its folder carries none; a damaged file is refused."""
        path = Path(folder) / CHECK_FILE
        if not path.is_file():
            return None
        try:
            data = read_json(path)
            if data["statistic"] != STATISTIC:
                raise ValueError(f"statistic {data['statistic']!r}, not {STATISTIC!r}")
            threshold = float(data["threshold"])
            grid = SignalConfig(**data["grid"]).validate()
        except (OSError, ValueError, KeyError, TypeError, OriginalityError) as exc:
            raise OriginalityError(f"{path} is not a typicality check ({exc})") from exc
        if not (math.isfinite(threshold) and threshold > 0) or grid.t_max > LOW_T:
            raise OriginalityError(f"{path}: the threshold must be finite and > 0, the grid within t <= {LOW_T}")
        return cls(threshold, grid, str(data.get("source", "")))

    def __call__(self, pipeline, image: Image.Image, reading: QueryReading) -> tuple[dict[str, Any], Image.Image]:
        """The verdict (statistic, threshold, flagged) and the canonical re-render it compared with."""
        again = canonical_rerender(reading, image.width)
        grid = signal_grid(pipeline, self.grid)
        loss = readings(pipeline, query_latents(pipeline, [image, again]), None, grid, conditional=False)
        value = rerender_typicality(loss["unconditional"][0], loss["unconditional"][1], grid.timesteps)
        flagged = value > self.threshold
        return {"statistic": STATISTIC, "value": value, "threshold": self.threshold, "flagged": flagged}, again
