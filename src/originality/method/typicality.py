"""Is the query drawn like the model's own images? A low-level typicality statistic, and a way around.

On a model trained on rendered shapes, the familiarity signals read *how* an image is drawn before
*what* it shows: a common pair drawn with PIL (hard edges, other sides, pure colours) reads less
familiar than a rendered pair the model never saw. :func:`typicality` compares the query's fine
detail with the model's own samples: the unconditional loss at low noise (t <= :data:`LOW_T`,
where only edges and texture are left to predict) over the same for the signal reference's
samples; about 1 is typical. :func:`canonical_rerender` draws, with the renderer, the elements the
detector read where it read them.

Not a check of the scorer: measured on the shipped model (``results/typicality``), no threshold
met the pre-registered bar (at most 1% of rendered queries flagged, at least 90% of drawn ones);
the re-render does bring a drawn query's guidance gap back near the rendered queries'.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from originality.method.query_reading import READ_CONFIDENCE, QueryReading
from originality.shapes.captions import parse_caption
from originality.shapes.rendering import render, sample_layout

LOW_T = 200  # the low-noise end of the grid: fine detail, not composition


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
