"""The frequency ladder: pairs of elements seen at known, exact training frequencies.

Does a model store how often it saw a pair? Here a pair is two elements (big, full; any of
5 shapes x 3 colours) alone in an image. The ladder mix holds:

* **pair images** of 45 pairs, 5 per level, at 8 log-spaced levels (three per decade, from
  2.15% down to 0.01%, with exactly 1% and 0.1% among them) plus never (0%). Each level's
  5 pairs hold every shape exactly twice and every colour three or four times, and each
  element sits in exactly 6 pairs, at 6 different levels: no shape or colour rides a level;
* a **duplication ladder**: 8 fixed images per level, each of a pair outside the ladder,
  repeated exactly 1, 4, 16, 64 and 256 times (one layout, identical bytes);
* **empty** images (10%, the paper's share) and **single-element filler** that makes every
  element's share of images equal: element familiarity is flat, only the pair's varies.

Counts are exact (placed by a shuffle, :meth:`DatasetSpec.plan`). The **background** mix
has the same filler and every ladder pair, the never-seen ones included, at one shared
count that fills the same share of images, and the duplicated images' pairs as fresh
renders at the same counts: a model of everything but the frequencies.

This module is the design (which pairs, at which level); ``specs.frequency_ladder`` and
``specs.frequency_background`` turn it into dataset specs.
"""

from __future__ import annotations

import itertools

import numpy as np

from originality.errors import OriginalityError
from originality.shapes.vocabulary import COLOURS, SHAPES, Element

# Three levels per decade: 10^(1/3) % = 2.154% ... 10^-2 % = 0.01%; then never.
LEVELS: tuple[float, ...] = tuple(10 ** (k / 3) / 100 for k in range(1, -7, -1)) + (0.0,)
PAIRS_PER_LEVEL = 5
COPIES: tuple[int, ...] = (1, 4, 16, 64, 256)
IMAGES_PER_COPY_LEVEL = 8
DESIGN_SEED = 0  # the search below is seeded: the same pairs on every machine

# Two edge-disjoint 5-cycles over the shapes: every level's pairs hold each shape twice.
_CYCLES = (
    ((0, 1), (1, 2), (2, 3), (3, 4), (4, 0)),
    ((0, 2), (2, 4), (4, 1), (1, 3), (3, 0)),
)

Pair = tuple[Element, Element]


def level_name(rate: float) -> str:
    """``2.15%``, ``1%``, ``0.1%``, ``0.0464%`` ... ``0%``: three significant digits."""
    return f"{float(f'{rate * 100:.3g}'):g}%"


def _missing_colours(rng: np.random.Generator) -> list[list[int]]:
    """missing[level][shape]: the colour that shape does not take at that level. Each level
    misses one colour once and the others twice (so that colour has four slots, the others
    three); each shape misses each colour exactly three times over the nine levels."""
    levels = len(LEVELS)
    for _ in range(10_000):
        missing: list[list[int]] = []
        left = np.full((len(SHAPES), len(COLOURS)), levels // len(COLOURS))
        ok = True
        for level in range(levels):
            rich = level % len(COLOURS)  # the colour with four slots at this level
            need = [1 if c == rich else 2 for c in range(len(COLOURS))]
            row = [-1] * len(SHAPES)
            for s in rng.permutation(len(SHAPES)):
                options = [c for c in range(len(COLOURS)) if need[c] > 0 and left[s, c] > 0]
                if not options:
                    ok = False
                    break
                weights = np.array([left[s, c] for c in options], dtype=float)
                c = options[rng.choice(len(options), p=weights / weights.sum())]
                row[s], need[c] = c, need[c] - 1
                left[s, c] -= 1
            if not ok:
                break
            missing.append(row)
        if ok:
            return missing
    raise OriginalityError("no colour design found for the frequency ladder")


def ladder_pairs(seed: int = DESIGN_SEED) -> list[list[Pair]]:
    """The ladder's pairs, one list of :data:`PAIRS_PER_LEVEL` per level in :data:`LEVELS` order."""
    rng = np.random.default_rng(seed)
    for _ in range(1_000):
        missing = _missing_colours(rng)
        used: set[frozenset[Element]] = set()
        levels: list[list[Pair]] = []
        for level, row in enumerate(missing):
            cycle = _CYCLES[level % 2]
            for _ in range(200):  # which of a shape's two colours goes to which of its two edges
                present = {s: [c for c in range(len(COLOURS)) if c != row[s]] for s in range(len(SHAPES))}
                for s in present:
                    rng.shuffle(present[s])
                taken = {s: 0 for s in present}
                pairs = []
                for a, b in cycle:
                    ea = Element(SHAPES[a], COLOURS[present[a][taken[a]]])
                    eb = Element(SHAPES[b], COLOURS[present[b][taken[b]]])
                    taken[a] += 1
                    taken[b] += 1
                    pairs.append(tuple(sorted((ea, eb))))
                if not {frozenset(p) for p in pairs} & used:
                    break
            else:
                break
            used |= {frozenset(p) for p in pairs}
            levels.append(pairs)
        if len(levels) == len(LEVELS):
            return levels
    raise OriginalityError("no pair design found for the frequency ladder")


def copied_pairs(seed: int = DESIGN_SEED) -> list[list[Pair]]:
    """Pairs outside the ladder for the duplication ladder: one list of
    :data:`IMAGES_PER_COPY_LEVEL` per entry of :data:`COPIES`."""
    ladder = {frozenset(p) for level in ladder_pairs(seed) for p in level}
    elements = [Element(s, c) for s in SHAPES for c in COLOURS]
    outside = [p for p in itertools.combinations(sorted(elements), 2) if frozenset(p) not in ladder]
    order = np.random.default_rng([seed, 1]).permutation(len(outside))
    chosen = [outside[i] for i in order[: len(COPIES) * IMAGES_PER_COPY_LEVEL]]
    return [chosen[i : i + IMAGES_PER_COPY_LEVEL] for i in range(0, len(chosen), IMAGES_PER_COPY_LEVEL)]
