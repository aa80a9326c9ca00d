"""How the query was read, said out loud, and a refusal to score what could not be read.

On the shapes models every verdict rests on the detector's reading of the query: the distance
counts samples that hold *the elements it read*. A reading that misses an element makes the
query look like something else, and a token count computed on it looks right while being wrong.
So a shapes query is **readable** only when

* every candidate element is read at the paper's confidence (0.9), none between a floor and
  that bar, and
* no pixel that differs from the background lies outside the boxes of the elements read (a
  margin allows for anti-aliasing).

Otherwise the verdict is ``unreadable``, with the reason. Real-image domains are always
readable; their reading says what the distance and the check compare.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from originality.domains import Domain

READ_CONFIDENCE = 0.9  # the paper's: an element counts when read at least this surely
CANDIDATE_FLOOR = 0.1  # below it, a detection is noise rather than an element half read
BACKGROUND_TOLERANCE = 60  # summed |RGB| difference from the background that counts as drawn
BOX_MARGIN = 2  # pixels around each box that anti-aliasing may touch
STRAY_PIXELS = 4  # drawn pixels outside every box that are still read as noise


@dataclass
class QueryReading:
    readable: bool
    elements: list[dict[str, Any]] = field(default_factory=list)  # phrase, box, confidence
    reason: str | None = None
    compares: str | None = None  # real-image domains: what the distance and the check compare

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_shapes_query(image: Image.Image, detector, confidence: float = READ_CONFIDENCE) -> QueryReading:
    """The detector's reading of a shapes query, and whether it accounts for the whole image."""
    found = detector.detect([image], threshold=CANDIDATE_FLOOR)[0]
    elements = [
        {"element": d.element.phrase, "box": [round(v, 1) for v in d.box], "confidence": round(d.confidence, 3)}
        for d in sorted(found, key=lambda d: -d.confidence)
    ]
    sure = [d for d in found if d.confidence >= confidence]
    unsure = [d for d in found if d.confidence < confidence]
    reasons = [f"{d.element.phrase} read at only {d.confidence:.2f} (< {confidence})" for d in unsure]
    stray, where = _uncovered(image, [d.box for d in sure])
    if stray > STRAY_PIXELS:
        reasons.append(f"{stray} drawn pixels lie outside every element read (around x={where[0]}, y={where[1]})")
    if not sure and not reasons:
        reasons.append("no element read")
    return QueryReading(readable=not reasons, elements=elements, reason="; ".join(reasons) or None)


def _uncovered(image: Image.Image, boxes: list[tuple[float, float, float, float]]) -> tuple[int, tuple[int, int]]:
    """Pixels that differ from the background (the border's median colour) outside every box,
    and their centre."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0).astype(np.int16)
    drawn = np.abs(pixels - background).sum(-1) > BACKGROUND_TOLERANCE
    h, w = drawn.shape
    for x0, y0, x1, y1 in boxes:
        top, left = max(0, int(np.floor(y0)) - BOX_MARGIN), max(0, int(np.floor(x0)) - BOX_MARGIN)
        drawn[top : min(h, int(np.ceil(y1)) + BOX_MARGIN), left : min(w, int(np.ceil(x1)) + BOX_MARGIN)] = False
    ys, xs = np.nonzero(drawn)
    if len(ys) == 0:
        return 0, (0, 0)
    return int(len(ys)), (int(xs.mean()), int(ys.mean()))


def read_query(image: Image.Image, domain: Domain, *, detector=None, distance: str = "", check: str | None = None):
    """The query's reading for ``domain``: the detector's on shapes, a description otherwise."""
    if domain.name == "shapes" and detector is not None:
        return read_shapes_query(image, detector)
    compares = f"distance {distance or domain.distance} between the query and each sample"
    if check or domain.check:
        compares += f"; in-distribution check {check or domain.check}"
    if (check or domain.check) == "editability":
        compares += f" (CLIP classes: {', '.join(p.format('S*') for p in domain.edit_prompts)})"
    return QueryReading(readable=True, compares=compares)
