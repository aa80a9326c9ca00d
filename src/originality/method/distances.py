"""Reconstruction distances: one shared signature, ``distance(query, samples) -> per-sample array``.

Lower is closer. The reconstruction distance of a token count is the mean over the N
samples (the paper uses DreamSim for real images; see :mod:`originality.method.dreamsim`
when available). A new distance is one function registered in :data:`DISTANCES`.

* ``elements`` (shapes models): 0 when the detector finds exactly the query's elements in
  the sample (shape, colour, size and texture, as multisets), else 1. Its mean is 1 - the
  fraction of samples that reconstruct the query's content. Its ``explain`` also says why
  each sample differs (a colour swapped, a shape missing), for the report.
* ``shapes`` (shapes models): 0 when the detector finds exactly the query's *shapes* (as a
  multiset, whatever their colours), else 1. The originality mix varies how often a shape pair
  occurs and draws its colours alike in every group, so this distance reads the pair's
  frequency apart from how well the model binds colours (``elements`` reads both).
* ``dreamsim`` (real images, the paper's): 1 - cosine similarity of DreamSim embeddings; see
  :mod:`originality.method.dreamsim` for its weights.
* ``ssim``: 1 - SSIM (structural similarity, RGB, Gaussian window), in [0, 2]. It needs no
  weights, and it also punishes a different layout, so it suits images where the layout is
  the content.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

from originality.detection.detector import ElementDetector, element_multiset, match_kind, mismatch
from originality.errors import OriginalityError
from originality.method.dreamsim import DreamSimDistance

Distance = Callable[[Image.Image, Sequence[Image.Image]], np.ndarray]


def ssim_distance(query: Image.Image, samples: Sequence[Image.Image]) -> np.ndarray:
    q = np.asarray(query.convert("RGB"))
    out = []
    for sample in samples:
        s = sample.convert("RGB")
        if s.size != query.size:
            s = s.resize(query.size, Image.Resampling.BICUBIC)
        value = structural_similarity(q, np.asarray(s), channel_axis=-1, data_range=255, gaussian_weights=True)
        out.append(1.0 - value)
    return np.asarray(out, dtype=np.float64)


class ElementsDistance:
    """0 when a sample holds exactly the query's elements (as read by the detector), else 1;
    with ``shapes_only``, exactly the query's shapes, whatever their colours."""

    def __init__(self, detector=None, shapes_only: bool = False):
        self.detector = detector or ElementDetector.load()
        self.shapes_only = shapes_only

    def __call__(self, query: Image.Image, samples: Sequence[Image.Image]) -> np.ndarray:
        return self.explain(query, samples)[0]

    def explain(self, query: Image.Image, samples: Sequence[Image.Image]) -> tuple[np.ndarray, list[str]]:
        """The distances and, per sample, why it differs from the query (:func:`mismatch`), from
        one detector pass."""
        found = [element_multiset(d) for d in self.detector.detect([query, *samples])]
        if self.shapes_only:
            d = [float(match_kind(f, found[0]) == "miss") for f in found[1:]]
        else:
            d = [0.0 if f == found[0] else 1.0 for f in found[1:]]
        return np.asarray(d), [mismatch(f, found[0]) for f in found[1:]]


def _dreamsim(cache_dir=None, dreamsim_type: str = "ensemble", device=None, **_) -> Distance:
    return DreamSimDistance(cache_dir=cache_dir, variant=dreamsim_type, device=device)


DISTANCES: dict[str, Callable[..., Distance]] = {
    "ssim": lambda **_: ssim_distance,
    "elements": lambda detector=None, **_: ElementsDistance(detector),
    "shapes": lambda detector=None, **_: ElementsDistance(detector, shapes_only=True),
    "dreamsim": _dreamsim,
}


def reads_elements(distance: str, check: str | None) -> bool:
    """Whether a score with this distance and check reads samples with the element detector."""
    return distance in ("elements", "shapes") or check == "positions"


def get_distance(name: str, **kwargs) -> Distance:
    """The distance called ``name`` (``elements``, ``shapes``, ``ssim``, ``dreamsim``, and any
    registered later)."""
    if name not in DISTANCES:
        raise OriginalityError(f"unknown distance {name!r}; known: {', '.join(DISTANCES)}")
    return DISTANCES[name](**kwargs)
