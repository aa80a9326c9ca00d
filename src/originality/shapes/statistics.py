"""Dataset statistics, and a check of them against the spec that made the dataset.

Every check compares an observed count with what the spec says, within a binomial
tolerance of ``Z`` standard deviations (``Z = 5``: a correct dataset fails a check
about once in 3.5 million); "never" and "always" are checked exactly.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from originality.shapes.captions import parse_caption
from originality.shapes.dataset import read_info, read_table
from originality.shapes.specs import DatasetSpec
from originality.shapes.vocabulary import Element

Z = 5.0


@dataclass
class Check:
    name: str
    expected: float
    observed: float
    tolerance: float
    ok: bool


def _binomial(name: str, hits: int, trials: int, p: float) -> Check:
    observed = hits / trials if trials else 0.0
    if p in (0.0, 1.0) or trials == 0:
        return Check(name, p, observed, 0.0, observed == p or trials == 0)
    tol = Z * math.sqrt(p * (1 - p) / trials)
    return Check(name, p, observed, tol, abs(observed - p) <= tol)


def compute_statistics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Frequencies of components, element counts, elements and shape pairs."""
    n = len(rows)
    components = Counter(r["component"] for r in rows)
    counts = Counter(len(r["elements"]) for r in rows)
    elements: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    exact_pairs: Counter[str] = Counter()
    for r in rows:
        elements.update(_element(e).phrase for e in r["elements"])
        shapes = sorted({e["shape"] for e in r["elements"]})
        pairs.update(f"{a}+{b}" for a, b in itertools.combinations(shapes, 2))
        if len(r["elements"]) == 2:
            exact_pairs[pair_key(r["elements"])] += 1
    return {
        "images": n,
        "components": {k: v / n for k, v in sorted(components.items())},
        "element_counts": {k: v / n for k, v in sorted(counts.items())},
        "elements": {k: v for k, v in sorted(elements.items(), key=lambda kv: -kv[1])},
        "pairs": {k: v / n for k, v in sorted(pairs.items())},
        # In a query's own unit: images of exactly these two elements, nothing else.
        "exact_pairs": {k: v / n for k, v in sorted(exact_pairs.items(), key=lambda kv: -kv[1])},
    }


def pair_key(elements: list[dict[str, Any]] | list[Element]) -> str:
    """One name for an unordered pair of elements: ``big blue full circle + big red full square``."""
    phrases = sorted(e.phrase if isinstance(e, Element) else _element(e).phrase for e in elements)
    return " + ".join(phrases)


def _element(d: dict[str, Any]) -> Element:
    return Element(shape=d["shape"], colour=d["colour"], size=d["size"], texture=d["texture"])


def check_statistics(rows: list[dict[str, Any]], spec: DatasetSpec) -> list[Check]:
    """Compare the rows with the spec's stated frequencies."""
    if spec.planned:
        return check_planned(rows, spec)
    n = len(rows)
    checks: list[Check] = []
    by_component = Counter(r["component"] for r in rows)
    checks.append(_binomial("empty images", by_component["empty"], n, spec.empty_fraction))
    for c in spec.components:
        checks.append(_binomial(f"{c.name} images", by_component[c.name], n, c.fraction))
    checks.append(_binomial("rest images", by_component["rest"], n, spec.rest_fraction))

    rest = [r for r in rows if r["component"] == "rest"]
    count_hist = Counter(len(r["elements"]) for r in rest)
    for k in range(1, spec.max_elements + 1):
        checks.append(_binomial(f"rest images with {k} elements", count_hist[k], len(rest), 1 / spec.max_elements))

    # Held-out and out-of-set elements never appear, anywhere.
    allowed = set(spec.allowed)
    seen = Counter(_element(e) for r in rows for e in r["elements"])
    outside = sum(v for e, v in seen.items() if e not in allowed)
    checks.append(Check("held-out or out-of-set elements", 0, outside, 0, outside == 0))
    for e in spec.held_out_elements:
        checks.append(Check(f"held out: {e.phrase}", 0, seen[e], 0, seen[e] == 0))

    # Without an at-most-one constraint, each rest element is uniform over the allowed set.
    if not spec.at_most_one_of:
        rest_elements = Counter(_element(e) for r in rest for e in r["elements"])
        total = sum(rest_elements.values())
        for e in spec.allowed:
            checks.append(_binomial(f"element {e.phrase}", rest_elements[e], total, 1 / len(spec.allowed)))

    # Pairs of constrained shapes co-occur only through components.
    for a, b in itertools.combinations(sorted(spec.at_most_one_of), 2):
        p = sum(c.fraction for c in spec.components if a in c.shapes and b in c.shapes)
        hits = sum(1 for r in rows if {a, b} <= {e["shape"] for e in r["elements"]})
        checks.append(_binomial(f"images with {a}+{b}", hits, n, p))

    # Component images hold exactly one element of each listed shape.
    for c in spec.components:
        wrong = sum(
            1
            for r in rows
            if r["component"] == c.name and sorted(e["shape"] for e in r["elements"]) != sorted(c.shapes)
        )
        checks.append(Check(f"{c.name} images hold exactly {'+'.join(c.shapes)}", 0, wrong, 0, wrong == 0))
    return checks


def _exact(name: str, expected: int, observed: int) -> Check:
    return Check(name, expected, observed, 0, expected == observed)


def check_planned(rows: list[dict[str, Any]], spec: DatasetSpec) -> list[Check]:
    """A planned spec's counts are exact: every kind of image, every pair, every element."""
    n = len(rows)
    counts = spec.plan_counts(n)
    by_component = Counter(r["component"] for r in rows)
    checks = [_exact("empty images", counts["empty"], by_component["empty"])]
    checks.append(_exact("filler images", sum(counts["filler"].values()), by_component["filler"]))
    names: dict[str, int] = Counter()
    for p, k in zip(spec.planned, counts["planned"], strict=True):
        names[p.name] += k
    checks += [_exact(f"{name} images", k, by_component[name]) for name, k in names.items()]
    # Each planned pair in exactly its count of images, alone: one key per pair.
    wanted: Counter[str] = Counter()
    for p, k in zip(spec.planned, counts["planned"], strict=True):
        wanted[pair_key(parse_caption(" and ".join(p.elements)))] += k
    seen = Counter(pair_key(r["elements"]) for r in rows if len(r["elements"]) >= 2)
    for key, k in wanted.items():
        checks.append(_exact(f"images of exactly {key}", k, seen[key]))
    unplanned = sum(v for key, v in seen.items() if key not in wanted)
    checks.append(_exact("images of any other pair", 0, unplanned))
    copies = [(p, k) for p, k in zip(spec.planned, counts["planned"], strict=True) if p.identical]
    by_pair_images: dict[str, set[tuple]] = {}
    for r in rows:
        if r["component"] in {p.name for p, _ in copies}:
            layout = tuple((e["shape"], e["colour"], tuple(e["bbox"])) for e in r["elements"])
            by_pair_images.setdefault(pair_key(r["elements"]), set()).add(layout)
    distinct = sum(len(v) for v in by_pair_images.values())
    checks.append(_exact("distinct layouts among the copied images", len(copies), distinct))
    # Every element in as many images as the others (within 10%).
    per_element = Counter(_element(e) for r in rows for e in r["elements"])
    low, high = min(per_element[e] for e in spec.allowed), max(per_element[e] for e in spec.allowed)
    spread = high / low - 1 if low else math.inf
    checks.append(Check("elements' image counts, max / min - 1", 0.0, spread, 0.1, spread <= 0.1))
    return checks


def dataset_report(path: str | Path) -> dict[str, Any]:
    """Statistics and checks of a dataset folder, as one JSON-able dict."""
    info = read_info(path)
    spec = DatasetSpec.from_dict(info["spec"])
    rows = read_table(path, columns=["component", "elements"]).to_pylist()
    checks = check_statistics(rows, spec)
    return {
        "spec": spec.name,
        "statistics": compute_statistics(rows),
        "checks": [asdict(c) for c in checks],
        "ok": all(c.ok for c in checks),
    }
