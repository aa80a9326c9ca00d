"""Dataset specs: what goes into each image, as named presets or user files.

A spec is a distribution over images. Every image is one of:

* **empty** (``empty_fraction`` of all images; the paper uses 10%);
* a **component** image (e.g. the originality mix's common circle+square pair): exactly
  one element of each listed shape, other attributes drawn from the spanning set,
  optionally at fixed centres (the App. C ablation);
* a **rest** image (whatever fraction is left): 1..``max_elements`` elements, the count
  uniform, each element uniform over the spanning set minus the held-out elements. If
  ``at_most_one_of`` lists shapes, a rest image holds at most one element of those
  shapes (that is how the mix keeps its rare and unseen pairs rare and unseen).

Presets (see :func:`list_presets`):

* ``ladder-{4,6,9,15,30,60}-{big-full,big-empty,small-full,small-empty}``: the diversity
  ladder of Section 2 / App. B. The level's spanning set grows from {square, circle} x
  {red, blue} to all 60 elements; the held-out element is the blue circle in the
  variant's size and texture, so the four variants hold out four different elements.
* ``originality-mix``: App. E.1 (big, full; common 30%, rare 0.1%, unseen never).
* ``originality-mix-fixed``: the same with the common pair at one fixed place (App. C).
* ``originality-mix-rarer``: the same with the rare pair ten times rarer (0.01%, about 10
  images in 100K): at 0.1% a CPU-trained model draws the rare pair as well as the common one.
* ``all-elements``: all 60 elements, nothing held out (the detector's training data).
* ``frequency-ladder`` / ``frequency-background``: pairs at exact, log-spaced training
  frequencies, and the same pairs at one shared frequency (``shapes.frequency_ladder``).

A spec with ``planned`` images is not drawn image by image: its counts are exact. The
planned images, the empty ones and single-element filler that makes every element equally
common are laid out once and placed by a seeded shuffle (:meth:`DatasetSpec.plan`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from originality.errors import OriginalityError
from originality.shapes import frequency_ladder as fl
from originality.shapes.captions import parse_caption
from originality.shapes.vocabulary import COLOURS, SHAPES, SIZES, TEXTURES, Element, check_value, elements_from


@dataclass
class Component:
    """A fixed kind of image: one element of each shape in ``shapes``."""

    name: str
    fraction: float
    shapes: list[str]
    fixed_centres: list[tuple[float, float]] | None = None


@dataclass
class Planned:
    """Exactly ``count`` images (or ``fraction`` of the dataset, rounded) holding exactly ``elements``;
    ``identical``: every one of them the same image (one layout), as a duplicated training image."""

    name: str
    elements: list[str]  # caption phrases
    fraction: float | None = None
    count: int | None = None
    identical: bool = False

    def images(self, n: int) -> int:
        return self.count if self.count is not None else round(self.fraction * n)


@dataclass
class DatasetSpec:
    name: str
    shapes: list[str] = field(default_factory=lambda: list(SHAPES))
    colours: list[str] = field(default_factory=lambda: list(COLOURS))
    sizes: list[str] = field(default_factory=lambda: list(SIZES))
    textures: list[str] = field(default_factory=lambda: list(TEXTURES))
    held_out: list[str] = field(default_factory=list)  # caption phrases, e.g. "big blue full circle"
    empty_fraction: float = 0.1
    max_elements: int = 4
    components: list[Component] = field(default_factory=list)
    at_most_one_of: list[str] = field(default_factory=list)
    allow_overlap: bool = False
    planned: list[Planned] = field(default_factory=list)
    description: str = ""

    def __post_init__(self) -> None:
        self.components = [c if isinstance(c, Component) else _component(c) for c in self.components]
        self.planned = [p if isinstance(p, Planned) else _planned(p) for p in self.planned]
        self.validate()

    # -- validation --------------------------------------------------------------------
    def validate(self) -> None:
        for attribute, values in (
            ("shape", self.shapes),
            ("colour", self.colours),
            ("size", self.sizes),
            ("texture", self.textures),
        ):
            if not values:
                raise OriginalityError(f"spec {self.name!r}: no {attribute} values")
            for value in values:
                check_value(attribute, value)
        spanning = set(self.spanning_set)
        for phrase in self.held_out:
            element = _one_element(phrase)
            if element not in spanning:
                raise OriginalityError(f"spec {self.name!r}: held-out element {phrase!r} is not in the spanning set")
        if not isinstance(self.max_elements, int) or self.max_elements < 1:
            raise OriginalityError(
                f"spec {self.name!r}: max_elements must be an integer >= 1, got {self.max_elements!r}"
            )
        fractions = [("empty_fraction", self.empty_fraction)] + [(c.name, c.fraction) for c in self.components]
        for name, value in fractions:
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise OriginalityError(f"spec {self.name!r}: fraction {name} must be in [0, 1], got {value!r}")
        total = sum(v for _, v in fractions)
        if total > 1 + 1e-9:
            raise OriginalityError(f"spec {self.name!r}: fractions add up to {total:g} > 1 (empty + components)")
        if self.rest_fraction > 0 and not self.allowed:
            raise OriginalityError(f"spec {self.name!r}: every element is held out")
        names = [c.name for c in self.components]
        if len(set(names)) != len(names) or {"empty", "rest"} & set(names):
            raise OriginalityError(f"spec {self.name!r}: component names must be unique and not 'empty' or 'rest'")
        for c in self.components:
            if not c.shapes:
                raise OriginalityError(f"spec {self.name!r}: component {c.name!r} has no shapes")
            for s in c.shapes:
                check_value("shape", s)
                if s not in self.shapes:
                    raise OriginalityError(
                        f"spec {self.name!r}: component {c.name!r} uses shape {s!r} outside the spanning set"
                    )
            if c.fixed_centres is not None:
                if len(c.fixed_centres) != len(c.shapes):
                    raise OriginalityError(f"spec {self.name!r}: component {c.name!r} needs one fixed centre per shape")
                for centre in c.fixed_centres:
                    if len(centre) != 2 or not all(0 <= v <= 1 for v in centre):
                        raise OriginalityError(f"spec {self.name!r}: fixed centres are (x, y) fractions in [0, 1]")
        for s in self.at_most_one_of:
            check_value("shape", s)
        if self.planned:
            self._validate_planned(spanning)

    def _validate_planned(self, spanning: set[Element]) -> None:
        if self.components or self.at_most_one_of:
            raise OriginalityError(f"spec {self.name!r}: planned images do not mix with components or at_most_one_of")
        for p in self.planned:
            if (p.fraction is None) == (p.count is None):
                raise OriginalityError(f"spec {self.name!r}: planned {p.name!r} needs one of fraction or count")
            if p.fraction is not None and (not isinstance(p.fraction, int | float) or not 0 <= p.fraction <= 1):
                raise OriginalityError(f"spec {self.name!r}: planned {p.name!r} fraction must be in [0, 1]")
            if p.count is not None and (not isinstance(p.count, int) or p.count < 0):
                raise OriginalityError(f"spec {self.name!r}: planned {p.name!r} count must be an integer >= 0")
            if not p.elements:
                raise OriginalityError(f"spec {self.name!r}: planned {p.name!r} has no elements")
            for phrase in p.elements:
                if _one_element(phrase) not in spanning:
                    raise OriginalityError(
                        f"spec {self.name!r}: planned element {phrase!r} is outside the spanning set"
                    )

    # -- derived sets --------------------------------------------------------------------
    @property
    def spanning_set(self) -> list[Element]:
        return elements_from(self.shapes, self.colours, self.sizes, self.textures)

    @property
    def held_out_elements(self) -> list[Element]:
        return [_one_element(p) for p in self.held_out]

    @property
    def allowed(self) -> list[Element]:
        held = set(self.held_out_elements)
        return [e for e in self.spanning_set if e not in held]

    @property
    def rest_fraction(self) -> float:
        return max(0.0, 1.0 - self.empty_fraction - sum(c.fraction for c in self.components))

    # -- planned specs: exact counts ----------------------------------------------------------
    def plan_counts(self, n: int) -> dict[str, Any]:
        """How many images of each kind a planned spec of ``n`` images holds: ``empty``, ``planned``
        (one count per entry) and ``filler`` (one count per allowed element, chosen so that every
        element is in as many images as the others, to one image)."""
        allowed = self.allowed
        empty = round(self.empty_fraction * n)
        planned = [p.images(n) for p in self.planned]
        mass = dict.fromkeys(allowed, 0)
        for p, k in zip(self.planned, planned, strict=True):
            for phrase in p.elements:
                element = _one_element(phrase)
                if element not in mass:
                    raise OriginalityError(f"spec {self.name!r}: planned element {phrase!r} is held out")
                mass[element] += k
        filler_total = n - empty - sum(planned)
        if filler_total < 0:
            raise OriginalityError(
                f"spec {self.name!r} plans {empty + sum(planned):,} images; --n {n:,} is too small for it"
            )
        level = (filler_total + sum(mass.values())) / len(allowed)  # each element's images, once balanced
        wanted = {e: level - m for e, m in mass.items()}
        short = min(wanted, key=wanted.get)
        if wanted[short] < 0:
            raise OriginalityError(
                f"spec {self.name!r} at --n {n:,}: {short.phrase} is in {mass[short]:,} planned images, more than "
                f"the {level:,.0f} that balanced filler gives every element; use a larger --n"
            )
        filler = {e: int(np.floor(v)) for e, v in wanted.items()}
        by_remainder = sorted(wanted, key=lambda e: (-(wanted[e] - filler[e]), e.index))
        for e in by_remainder[: filler_total - sum(filler.values())]:  # largest remainders get the leftover
            filler[e] += 1
        return {"empty": empty, "planned": planned, "filler": filler}

    def plan(self, n: int, seed: int) -> np.ndarray:
        """Image i's kind in a planned spec of ``n`` images: -1 empty, ``k`` the planned entry ``k``,
        ``len(planned) + j`` a single ``allowed[j]``. The kinds' exact counts are laid out and shuffled."""
        counts = self.plan_counts(n)
        kinds = [-1] * counts["empty"]
        for k, c in enumerate(counts["planned"]):
            kinds += [k] * c
        for j, e in enumerate(self.allowed):
            kinds += [len(self.planned) + j] * counts["filler"][e]
        return np.random.default_rng([seed, PLAN_STREAM]).permutation(np.array(kinds, dtype=np.int64))

    def planned_image(
        self, kind: int, index: int, seed: int, rng: np.random.Generator
    ) -> tuple[str, list[Element], np.random.Generator]:
        """The component name, the elements and the layout's random stream of image ``index`` of ``kind``
        (see :meth:`plan`); an identical planned image draws from one stream for all its copies."""
        if kind < 0:
            return "empty", [], rng
        if kind >= len(self.planned):
            return "filler", [self.allowed[kind - len(self.planned)]], rng
        p = self.planned[kind]
        if p.identical:
            rng = np.random.default_rng([seed, PLAN_STREAM, kind])
        elements = [_one_element(phrase) for phrase in p.elements]
        rng.shuffle(elements)  # caption order carries no information
        return p.name, elements, rng

    # -- sampling --------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> tuple[str, list[Element], list[tuple[float, float]] | None]:
        """Draw one image's contents: (component name, elements in drawing order, fixed centres)."""
        if self.planned:
            raise OriginalityError(f"spec {self.name!r} plans its images: draw them with plan(), not sample()")
        u = rng.random()
        if u < self.empty_fraction:
            return "empty", [], None
        u -= self.empty_fraction
        for c in self.components:
            if u < c.fraction:
                return c.name, self.component_elements(c, rng), c.fixed_centres
            u -= c.fraction
        return "rest", self.rest_elements(rng), None

    def component_elements(self, c: Component, rng: np.random.Generator) -> list[Element]:
        allowed = set(self.allowed)
        by_shape = {s: [e for e in self.spanning_set if e.shape == s and e in allowed] for s in c.shapes}
        chosen = [by_shape[s][rng.integers(len(by_shape[s]))] for s in c.shapes]
        if c.fixed_centres is None:
            rng.shuffle(chosen)  # caption order carries no information
        return chosen

    def rest_elements(self, rng: np.random.Generator) -> list[Element]:
        allowed = self.allowed
        restricted = set(self.at_most_one_of)
        free = [e for e in allowed if e.shape not in restricted]
        count = int(rng.integers(1, self.max_elements + 1))
        chosen: list[Element] = []
        used_restricted = False
        for _ in range(count):
            pool = free if used_restricted else allowed
            element = pool[rng.integers(len(pool))]
            used_restricted |= element.shape in restricted
            chosen.append(element)
        return chosen

    # -- (de)serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for c in data["components"]:
            if c["fixed_centres"] is not None:
                c["fixed_centres"] = [list(p) for p in c["fixed_centres"]]
        if not data["planned"]:  # the specs written before planned images existed read the same
            del data["planned"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> DatasetSpec:
        if not isinstance(data, dict):
            raise OriginalityError(f"{source}: a spec is a mapping of keys to values")
        data = dict(data)
        base = data.pop("base", None)
        if base is not None:
            merged = preset(base).to_dict()
            merged.update(data)
            data = merged
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OriginalityError(f"{source}: unknown spec key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        if "name" not in data:
            raise OriginalityError(f"{source}: the spec needs a 'name'")
        return cls(**data)


def _component(data: Any) -> Component:
    if not isinstance(data, dict):
        raise OriginalityError("a component is a mapping with name, fraction and shapes")
    known = {f.name for f in dataclasses.fields(Component)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise OriginalityError(f"unknown component key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    missing = sorted({"name", "fraction", "shapes"} - set(data))
    if missing:
        raise OriginalityError(f"component needs key {missing[0]!r}")
    centres = data.get("fixed_centres")
    return Component(
        name=data["name"],
        fraction=data["fraction"],
        shapes=list(data["shapes"]),
        fixed_centres=None if centres is None else [tuple(p) for p in centres],
    )


def _planned(data: Any) -> Planned:
    if not isinstance(data, dict):
        raise OriginalityError("a planned entry is a mapping with name, elements and fraction or count")
    known = {f.name for f in dataclasses.fields(Planned)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise OriginalityError(f"unknown planned key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    missing = sorted({"name", "elements"} - set(data))
    if missing:
        raise OriginalityError(f"planned entry needs key {missing[0]!r}")
    return Planned(**{**data, "elements": list(data["elements"])})


def _one_element(phrase: str) -> Element:
    elements = parse_caption(phrase)
    if len(elements) != 1:
        raise OriginalityError(f"{phrase!r} must name exactly one element")
    return elements[0]


# -- presets ---------------------------------------------------------------------------------
LADDER_LEVELS: dict[int, dict[str, list[str] | None]] = {
    # level -> spanning shapes, colours, and whether size / texture vary (None: the variant's)
    4: {"shapes": ["square", "circle"], "colours": ["red", "blue"], "sizes": None, "textures": None},
    6: {"shapes": ["square", "circle", "triangle"], "colours": ["red", "blue"], "sizes": None, "textures": None},
    9: {"shapes": ["square", "circle", "triangle"], "colours": list(COLOURS), "sizes": None, "textures": None},
    15: {"shapes": list(SHAPES), "colours": list(COLOURS), "sizes": None, "textures": None},
    30: {"shapes": list(SHAPES), "colours": list(COLOURS), "sizes": list(SIZES), "textures": None},
    60: {"shapes": list(SHAPES), "colours": list(COLOURS), "sizes": list(SIZES), "textures": list(TEXTURES)},
}
VARIANTS: dict[str, tuple[str, str]] = {
    "big-full": ("big", "full"),
    "big-empty": ("big", "empty"),
    "small-full": ("small", "full"),
    "small-empty": ("small", "empty"),
}
LADDER_MAX_ELEMENTS = 6
MIX_MAX_ELEMENTS = 4
PLAN_STREAM = 0x504C414E  # "PLAN": the shuffle's (and identical images') random stream, apart from images'

DEFAULT_FIXED_CENTRES = [(0.3, 0.5), (0.7, 0.5)]
RARER_FRACTION = 0.0001


def ladder(level: int, variant: str) -> DatasetSpec:
    """The diversity-ladder spec for ``level`` elements and a symmetric ``variant``."""
    if level not in LADDER_LEVELS:
        raise OriginalityError(f"unknown ladder level {level}; known: {', '.join(map(str, LADDER_LEVELS))}")
    if variant not in VARIANTS:
        raise OriginalityError(f"unknown ladder variant {variant!r}; known: {', '.join(VARIANTS)}")
    size, texture = VARIANTS[variant]
    lv = LADDER_LEVELS[level]
    return DatasetSpec(
        name=f"ladder-{level}-{variant}",
        shapes=list(lv["shapes"]),
        colours=list(lv["colours"]),
        sizes=list(lv["sizes"] or [size]),
        textures=list(lv["textures"] or [texture]),
        held_out=[Element("circle", "blue", size, texture).phrase],
        max_elements=LADDER_MAX_ELEMENTS,
        description=f"Diversity ladder, {level}-element spanning set, {variant} variant; blue circle held out.",
    )


MIX_UNSEEN_PAIR = ("square", "triangle")  # never together in the mix: `at_most_one_of` keeps rest images apart


def originality_mix(fixed_location: bool = False, rare_fraction: float = 0.001, name: str | None = None) -> DatasetSpec:
    common = Component(
        "common", 0.30, ["circle", "square"], fixed_centres=list(DEFAULT_FIXED_CENTRES) if fixed_location else None
    )
    return DatasetSpec(
        name=name or ("originality-mix-fixed" if fixed_location else "originality-mix"),
        sizes=["big"],
        textures=["full"],
        max_elements=MIX_MAX_ELEMENTS,
        components=[common, Component("rare", rare_fraction, ["circle", "triangle"])],
        at_most_one_of=["circle", "square", "triangle"],
        description=(
            f"App. E.1 originality mix: common (circle, square) 30%, rare (circle, triangle) {rare_fraction * 100:g}%, "
            f"unseen ({', '.join(MIX_UNSEEN_PAIR)}) never"
            + ("; common pair at fixed centres (App. C)." if fixed_location else ".")
        ),
    )


def all_elements() -> DatasetSpec:
    return DatasetSpec(
        name="all-elements",
        max_elements=LADDER_MAX_ELEMENTS,
        description="All 60 elements, nothing held out: detector training data.",
    )


def _pair_phrases(pair: tuple[Element, Element]) -> list[str]:
    return [e.phrase for e in pair]


def frequency_ladder(copies: tuple[int, ...] = fl.COPIES) -> DatasetSpec:
    """Pairs at exact, log-spaced shares of the images, a duplication ladder, balanced filler."""
    planned = [
        Planned(f"ladder {fl.level_name(rate)}", _pair_phrases(pair), fraction=rate)
        for rate, pairs in zip(fl.LEVELS, fl.ladder_pairs(), strict=True)
        for pair in pairs
    ]
    planned += [
        Planned(f"copies x{k}", _pair_phrases(pair), count=k, identical=True)
        for k, pairs in zip(copies, fl.copied_pairs(), strict=True)
        for pair in pairs
    ]
    return DatasetSpec(
        name="frequency-ladder",
        sizes=["big"],
        textures=["full"],
        planned=planned,
        description=(
            f"Frequency ladder: {len(fl.LEVELS) * fl.PAIRS_PER_LEVEL} pairs of big full elements alone in an "
            f"image, {fl.PAIRS_PER_LEVEL} per level at exact shares {', '.join(map(fl.level_name, fl.LEVELS))}; "
            f"{fl.IMAGES_PER_COPY_LEVEL} fixed images each repeated {', '.join(map(str, copies))} times; 10% empty; "
            "single-element filler makes every element equally common."
        ),
    )


def frequency_background(copies: tuple[int, ...] = fl.COPIES) -> DatasetSpec:
    """The ladder's pairs at one shared share (the same share of pair images in all), the copied
    images' pairs as fresh renders at the same counts, the same empty share and filler."""
    pairs = [pair for level in fl.ladder_pairs() for pair in level]
    shared = fl.PAIRS_PER_LEVEL * sum(fl.LEVELS) / len(pairs)
    planned = [Planned("background pair", _pair_phrases(pair), fraction=shared) for pair in pairs]
    planned += [
        Planned(f"fresh x{k}", _pair_phrases(pair), count=k)
        for k, pairs in zip(copies, fl.copied_pairs(), strict=True)
        for pair in pairs
    ]
    return DatasetSpec(
        name="frequency-background",
        sizes=["big"],
        textures=["full"],
        planned=planned,
        description=(
            f"Background for the frequency ladder: its {len(pairs)} pairs (the never-seen ones too) each at "
            f"{fl.level_name(shared)} of the images, the copied images' pairs as fresh renders at the same counts, "
            "10% empty, balanced single-element filler."
        ),
    )


def list_presets() -> list[str]:
    names = [f"ladder-{lv}-{v}" for lv in LADDER_LEVELS for v in VARIANTS]
    return names + [
        "originality-mix",
        "originality-mix-fixed",
        "originality-mix-rarer",
        "all-elements",
        "frequency-ladder",
        "frequency-background",
    ]


def preset(name: str) -> DatasetSpec:
    """A named preset spec."""
    if name == "originality-mix":
        return originality_mix()
    if name == "originality-mix-fixed":
        return originality_mix(fixed_location=True)
    if name == "originality-mix-rarer":
        return originality_mix(rare_fraction=RARER_FRACTION, name=name)
    if name == "all-elements":
        return all_elements()
    if name == "frequency-ladder":
        return frequency_ladder()
    if name == "frequency-background":
        return frequency_background()
    if name.startswith("ladder-"):
        parts = name.split("-", 2)
        if len(parts) == 3 and parts[1].isdigit():
            return ladder(int(parts[1]), parts[2])
    raise OriginalityError(f"unknown spec preset {name!r}; known: {', '.join(list_presets())}")


def load_spec(name_or_path: str | Path) -> DatasetSpec:
    """A preset by name, or a spec file (.json, .yaml, .yml) a user wrote."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix.lower() not in {".json", ".yaml", ".yml"}:
        return preset(text)
    if not path.is_file():
        raise OriginalityError(f"spec file not found: {path}")
    try:
        raw = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise OriginalityError(f"cannot read spec file {path}: {exc}") from exc
    try:
        data = json.loads(raw) if path.suffix.lower() == ".json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OriginalityError(f"cannot parse spec file {path}: {first_line}") from exc
    return DatasetSpec.from_dict(data, source=str(path))
