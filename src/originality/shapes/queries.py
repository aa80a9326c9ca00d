"""The query groups of the originality mix (App. E.1): common, rare and unseen element pairs.

On a model trained on the originality mix, the circle+square pair fills 30% of the training
images (common), circle+triangle 0.1% (rare), and square+triangle never occurs (unseen). A query
of a group is a fresh render of its pair, colours drawn as the mix draws them, from a seed no
training set uses; :func:`check_not_in_training` makes sure no query is a training image.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from originality.errors import OriginalityError
from originality.runs import atomic_path, save_image
from originality.shapes.captions import caption
from originality.shapes.dataset import read_table
from originality.shapes.rendering import render, sample_layout
from originality.shapes.specs import MIX_UNSEEN_PAIR, Component, DatasetSpec, originality_mix

# (shapes of the pair, fraction of the originality-mix training images): App. E.1, read off the spec.
GROUPS: dict[str, tuple[tuple[str, ...], float]] = {
    **{c.name: (tuple(c.shapes), c.fraction) for c in originality_mix().components},
    "unseen": (MIX_UNSEEN_PAIR, 0.0),
}
APP_E1_FRACTIONS = {g: f for g, (_, f) in GROUPS.items()}
# Shape-matched controls: pairs the mix's rest images draw often, each holding one shape of the
# groups' pairs (or none), so that a signal's response to a pair's frequency can be told apart
# from its response to the shapes the pair holds.
CONTROLS: dict[str, tuple[str, ...]] = {
    "circle+hexagon": ("circle", "hexagon"),
    "square+hexagon": ("square", "hexagon"),
    "triangle+hexagon": ("triangle", "hexagon"),
    "hexagon+star": ("hexagon", "star"),
}
PAIRS: dict[str, tuple[str, ...]] = {**{g: shapes for g, (shapes, _) in GROUPS.items()}, **CONTROLS}


def render_query(group: str, index: int, seed: int, size: int = 64) -> tuple[Image.Image, str]:
    """Query ``index`` of ``group``: the pair's two shapes, colours drawn as the mix draws them."""
    image, text, _ = render_pair(group, index, seed, size)
    return image, text


def render_pair(group: str, index: int, seed: int, size: int = 64) -> tuple[Image.Image, str, list[Image.Image]]:
    """Query ``index`` of ``group`` (a group or a control), its caption, and each of its elements
    drawn alone where it stands in the query."""
    if group not in PAIRS:
        raise OriginalityError(f"unknown group {group!r}; known: {', '.join(PAIRS)}")
    # The groups keep the seeds they always had; the controls draw from their own streams.
    stream = list(GROUPS).index(group) if group in GROUPS else 100 + list(CONTROLS).index(group)
    rng = np.random.default_rng([seed, stream, index])
    elements = originality_mix().component_elements(Component(group, 1.0, list(PAIRS[group])), rng)
    placed = sample_layout(elements, size, rng)
    return render(placed, size), caption(elements), [render([one], size) for one in placed]


def pair_frequencies(
    spec: DatasetSpec, pairs: dict[str, tuple[str, ...]], draws: int = 200_000, seed: int = 0
) -> dict[str, float]:
    """The share of ``spec``'s images that hold every shape of each pair: exact for its component
    images, estimated from ``draws`` of its rest images (their elements only; nothing is rendered)."""
    rng = np.random.default_rng([seed, 0xFAB])
    counts = dict.fromkeys(pairs, 0)
    for _ in range(draws):
        shapes = {e.shape for e in spec.rest_elements(rng)}
        for name, pair in pairs.items():
            counts[name] += set(pair) <= shapes
    out = {}
    for name, pair in pairs.items():
        exact = sum(c.fraction for c in spec.components if set(pair) <= set(c.shapes))
        out[name] = exact + spec.rest_fraction * counts[name] / draws
    return out


def exact_pair_frequencies(spec: DatasetSpec, pairs: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """The share of ``spec``'s images that hold exactly two elements whose shapes are each pair's (a
    query's own unit), computed rather than drawn, so that pairs equal by symmetry tie exactly.

    Component images count when they hold exactly the pair; a rest image holds two elements with
    probability 1 / max_elements, the first drawn from the allowed elements, the second from them
    too, or only from the unrestricted ones when the first is restricted (``at_most_one_of``)."""
    allowed = spec.allowed
    restricted = set(spec.at_most_one_of)
    free = [e for e in allowed if e.shape not in restricted]

    def share(shape: str, pool) -> float:
        return sum(e.shape == shape for e in pool) / len(pool) if pool else 0.0

    out = {}
    for name, pair in pairs.items():
        a, b = pair
        exact = sum(c.fraction for c in spec.components if sorted(c.shapes) == sorted(pair))
        two = 0.0
        for first, second in {(a, b), (b, a)}:
            pool = free if first in restricted else allowed
            two += share(first, allowed) * share(second, pool)
        out[name] = exact + spec.rest_fraction * two / spec.max_elements
    return out


def save_queries(
    out: Path, queries: Iterable[tuple[str, str, Image.Image, str]], subfolder: str = "queries"
) -> list[dict[str, str]]:
    """The one queries writer: each ``(name, group, image, caption)`` as ``<subfolder>/<name>`` (an
    image already there is kept), then ``queries.csv`` (image, group, caption), written atomically."""
    rows = []
    for name, group, image, text in queries:
        relative = f"{subfolder}/{name}" if subfolder else name
        if not (out / relative).is_file():
            save_image(image, out / relative)
        rows.append({"image": relative, "group": group, "caption": text})
    with atomic_path(out / "queries.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "group", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def make_queries(
    out: Path, queries: int, seed: int, size: int = 64, groups: tuple[str, ...] = tuple(GROUPS)
) -> list[dict[str, str]]:
    """Write ``queries/<group>-<i>.png`` and ``queries.csv`` (image, group, caption).

    The rows go index by index (common-00, rare-00, unseen-00, common-01, ...), so that a run
    stopped part way has scored the groups evenly."""

    def rendered():
        for i in range(queries):
            for group in groups:
                image, text = render_query(group, i, seed, size)
                yield f"{group}-{i:02d}.png", group, image, text

    return save_queries(out, rendered())


def _pixels_hash(image: Image.Image) -> str:
    return hashlib.sha256(np.asarray(image.convert("RGB")).tobytes()).hexdigest()


def check_not_in_training(out: Path, rows: list[dict[str, str]], training: str | Path) -> int:
    """Refuse if any query's pixels equal a training image's; returns the number compared."""
    wanted = {_pixels_hash(Image.open(out / r["image"])): r["image"] for r in rows}
    captions = {r["caption"] for r in rows}
    table = read_table(training, columns=["image", "caption"])
    compared = 0
    for record in table.to_pylist():
        if record["caption"] not in captions:  # different content: cannot be the same image
            continue
        compared += 1
        digest = _pixels_hash(Image.open(io.BytesIO(record["image"]["bytes"])))
        if digest in wanted:
            raise OriginalityError(f"query {wanted[digest]} is a training image; choose another --query-seed")
    return compared
