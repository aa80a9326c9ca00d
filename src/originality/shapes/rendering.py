"""Draw elements on a white canvas, anti-aliased, at any resolution.

Geometry lives in output-pixel coordinates. Each element occupies a square *cell* of
side ``d`` (a fraction of the canvas: :data:`DIAMETER`) centred on its position; the
shape is inscribed in that cell and its label box is the tight box of the drawn
shape. Anti-aliasing is supersampling: draw at ``k`` times the size, then average
``k x k`` blocks (``Image.resize`` with the box filter), which is exact area coverage.
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from originality.errors import OriginalityError
from originality.shapes.vocabulary import COLOUR_REGIONS, RGB, Element

# Cell side as a fraction of the canvas side. At 64 px: big 16 px, small 9.6 px, so six
# elements still fit without overlap and a small empty one keeps a visible stroke.
DIAMETER: dict[str, float] = {"big": 0.25, "small": 0.15}
# Each size class's region, for renders whose sizes vary inside their class (a user's square may be
# drawn a little larger than the palette's): the cell side's range, as a fraction of the canvas.
# The regions do not meet, so a jittered size never crosses into the other class.
SIZE_REGIONS: dict[str, tuple[float, float]] = {"big": (0.21, 0.32), "small": (0.12, 0.18)}
# Outline width of an "empty" element, as a fraction of its cell side: thinner for the
# shapes with a small inradius, so that every empty shape keeps a visible hole.
STROKE: dict[str, float] = {"square": 0.14, "circle": 0.14, "hexagon": 0.13, "triangle": 0.09, "star": 0.07}
STAR_INNER = 0.45  # inner / outer radius of the five-pointed star
SQUARE_SIDE = 0.85  # square side / cell side: close to the circle's visual weight
MAX_SUPERSAMPLED_SIDE = 1024  # supersample less at large sizes; 512 px is smooth already


@dataclass(frozen=True)
class Placed:
    """An element at a position. ``centre`` and ``bbox`` (x0, y0, x1, y1) are in pixels."""

    element: Element
    centre: tuple[float, float]
    bbox: tuple[float, float, float, float]
    side: float  # the cell's side in pixels (see :func:`cell_side`, :func:`jittered_side`)


def _unit_outline(shape: str) -> list[tuple[float, float]] | None:
    """Polygon vertices for a cell of side 1 centred on the origin (None for the circle)."""
    r = 0.5
    if shape == "circle":
        return None
    if shape == "square":
        h = SQUARE_SIDE / 2
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    if shape == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in np.radians([-90, 30, 150])]
        shift = r / 4  # spans y in [-r, r/2]: centre it vertically
        return [(x, y + shift) for x, y in pts]
    if shape == "hexagon":
        return [(r * math.cos(a), r * math.sin(a)) for a in np.radians(np.arange(0, 360, 60))]
    if shape == "star":
        pts = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * STAR_INNER
            a = math.radians(-90 + 36 * i)
            pts.append((radius * math.cos(a), radius * math.sin(a)))
        top, bottom = min(y for _, y in pts), max(y for _, y in pts)
        shift = -(top + bottom) / 2
        return [(x, y + shift) for x, y in pts]
    raise OriginalityError(f"unknown shape {shape!r}")


_UNIT = {s: _unit_outline(s) for s in ("square", "circle", "triangle", "hexagon", "star")}


def cell_side(element: Element, size: int) -> float:
    """Side in pixels of the square cell the element is inscribed in."""
    return DIAMETER[element.size] * size


def jittered_side(element: Element, size: int, rng: np.random.Generator) -> float:
    """A cell side in pixels drawn uniformly from the element's size class (:data:`SIZE_REGIONS`)."""
    low, high = SIZE_REGIONS[element.size]
    return float(rng.uniform(low, high)) * size


def tight_box(element: Element, centre: tuple[float, float], d: float) -> tuple[float, float, float, float]:
    """The box of the shape drawn in a cell of side ``d`` pixels centred on ``centre``."""
    cx, cy = centre
    unit = _UNIT[element.shape]
    if unit is None:
        return (cx - d / 2, cy - d / 2, cx + d / 2, cy + d / 2)
    xs = [cx + x * d for x, _ in unit]
    ys = [cy + y * d for _, y in unit]
    return (min(xs), min(ys), max(xs), max(ys))


def place(element: Element, centre: tuple[float, float], size: int, side: float | None = None) -> Placed:
    """``element`` centred on ``centre``, in a cell of ``side`` pixels (default: its size class's)."""
    side = cell_side(element, size) if side is None else side
    return Placed(element=element, centre=centre, bbox=tight_box(element, centre, side), side=side)


def _cells_overlap(a: Placed, b: Placed) -> bool:
    reach = (a.side + b.side) / 2
    return abs(a.centre[0] - b.centre[0]) < reach and abs(a.centre[1] - b.centre[1]) < reach


def sample_layout(
    elements: Sequence[Element],
    size: int,
    rng: np.random.Generator,
    *,
    allow_overlap: bool = False,
    fixed_centres: Sequence[tuple[float, float]] | None = None,
    sides: Sequence[float] | None = None,
    max_restarts: int = 100,
) -> list[Placed]:
    """Place each element uniformly at random, wholly inside the canvas.

    Without ``allow_overlap`` the cells of different elements may not intersect: a
    rejected position is drawn again, so positions are uniform given no overlap.
    ``fixed_centres`` (fractions of the canvas) pins element ``i`` to centre ``i``;
    ``sides``: element ``i``'s cell side in pixels (default: its size class's).
    """
    sides = [cell_side(e, size) for e in elements] if sides is None else list(sides)
    if fixed_centres is not None:
        if len(fixed_centres) < len(elements):
            raise OriginalityError(f"{len(elements)} elements but only {len(fixed_centres)} fixed centres")
        pinned = zip(elements, fixed_centres, sides, strict=False)
        return [place(e, (fx * size, fy * size), size, side) for e, (fx, fy), side in pinned]
    for _ in range(max_restarts):
        placed: list[Placed] = []
        for element, side in zip(elements, sides, strict=True):
            half = side / 2
            for _ in range(100):
                centre = tuple(rng.uniform(half, size - half, size=2).tolist())
                candidate = place(element, centre, size, side)
                if allow_overlap or not any(_cells_overlap(candidate, p) for p in placed):
                    placed.append(candidate)
                    break
            else:
                break  # this element found no room: start the layout again
        if len(placed) == len(elements):
            return placed
    raise OriginalityError(f"cannot place {len(elements)} elements without overlap on a {size} px canvas")


def _supersample(size: int) -> int:
    return max(1, min(4, MAX_SUPERSAMPLED_SIDE // size))


def jittered_colour(colour: str, rng: np.random.Generator) -> tuple[int, int, int]:
    """An RGB colour drawn uniformly from ``colour``'s class region (:data:`COLOUR_REGIONS`)."""
    hue, spread, (s0, s1), (v0, v1) = COLOUR_REGIONS[colour]
    h = ((hue + rng.uniform(-spread, spread)) % 360.0) / 360.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(s0, s1), rng.uniform(v0, v1))
    return round(r * 255), round(g * 255), round(b * 255)


def render(
    placed: Sequence[Placed],
    size: int = 64,
    supersample: int | None = None,
    colours: Sequence[tuple[int, int, int]] | None = None,
) -> Image.Image:
    """Draw the placed elements, in order, on a white ``size`` x ``size`` RGB image; ``colours``:
    one RGB per element in place of the palette's (see :func:`jittered_colour`)."""
    if size < 8:
        raise OriginalityError(f"image size must be at least 8 px, got {size}")
    k = supersample or _supersample(size)
    canvas = Image.new("RGB", (size * k, size * k), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, p in enumerate(placed):
        colour = RGB[p.element.colour] if colours is None else tuple(colours[i])
        d = p.side * k
        cx, cy = p.centre[0] * k, p.centre[1] * k
        hollow = p.element.texture == "empty"
        width = max(1, round(STROKE[p.element.shape] * d))
        unit = _UNIT[p.element.shape]
        if unit is None:
            box = (cx - d / 2, cy - d / 2, cx + d / 2, cy + d / 2)
            if hollow:
                draw.ellipse(box, outline=colour, width=width)
            else:
                draw.ellipse(box, fill=colour)
        else:
            pts = [(cx + x * d, cy + y * d) for x, y in unit]
            if hollow:
                draw.polygon(pts, outline=colour, width=width)
            else:
                draw.polygon(pts, fill=colour)
    if k > 1:
        canvas = canvas.resize((size, size), Image.Resampling.BOX)
    return canvas


def png_bytes(image: Image.Image) -> bytes:
    """Lossless PNG bytes; fast compression, since the dataset is written once and read often."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
