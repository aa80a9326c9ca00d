"""The shapes vocabulary: four attributes whose cross product gives the 60 elements.

An :class:`Element` is one drawable object (e.g. a big red full circle). Attribute
values are plain lower-case words so that they double as caption words.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from originality.errors import OriginalityError

SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "hexagon", "star")
COLOURS: tuple[str, ...] = ("red", "green", "blue")
SIZES: tuple[str, ...] = ("big", "small")
TEXTURES: tuple[str, ...] = ("full", "empty")

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "size": SIZES,
    "colour": COLOURS,
    "texture": TEXTURES,
    "shape": SHAPES,
}

# RGB values drawn for each colour word: saturated primaries are unambiguous for
# both the detector and a human, and survive anti-aliasing at 64 px.
RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 20, 20),
    "green": (20, 160, 20),
    "blue": (20, 40, 220),
}
# Each colour class's region, for renders whose colours vary inside their class (a user's pure red
# is still red): hue in degrees around the class's, saturation and value ranges. The regions do
# not meet, so a jittered colour never crosses into another class.
COLOUR_REGIONS: dict[str, tuple[float, float, tuple[float, float], tuple[float, float]]] = {
    "red": (0.0, 20.0, (0.65, 1.0), (0.55, 1.0)),
    "green": (120.0, 25.0, (0.65, 1.0), (0.5, 1.0)),
    "blue": (232.0, 20.0, (0.65, 1.0), (0.55, 1.0)),
}


@dataclass(frozen=True, order=True)
class Element:
    """One element: shape, colour, size and texture (e.g. ``big red full circle``)."""

    shape: str
    colour: str
    size: str = "big"
    texture: str = "full"

    def __post_init__(self) -> None:
        for name, value in (
            ("shape", self.shape),
            ("colour", self.colour),
            ("size", self.size),
            ("texture", self.texture),
        ):
            check_value(name, value)

    @property
    def phrase(self) -> str:
        """The element's caption phrase, in the canonical word order."""
        return f"{self.size} {self.colour} {self.texture} {self.shape}"

    @property
    def index(self) -> int:
        """Position in :data:`ALL_ELEMENTS` (a stable class id, 0..59)."""
        return ELEMENT_INDEX[self]

    def as_dict(self) -> dict[str, str]:
        return {"shape": self.shape, "colour": self.colour, "size": self.size, "texture": self.texture}

    def __str__(self) -> str:
        return self.phrase


def check_value(attribute: str, value: str) -> str:
    """Return ``value`` if it is a known value of ``attribute``; raise a one-line error otherwise."""
    if attribute not in ATTRIBUTES:
        raise OriginalityError(f"unknown attribute {attribute!r}; known: {', '.join(ATTRIBUTES)}")
    if value not in ATTRIBUTES[attribute]:
        raise OriginalityError(f"unknown {attribute} {value!r}; known: {', '.join(ATTRIBUTES[attribute])}")
    return value


def elements_from(
    shapes: tuple[str, ...] | list[str] = SHAPES,
    colours: tuple[str, ...] | list[str] = COLOURS,
    sizes: tuple[str, ...] | list[str] = SIZES,
    textures: tuple[str, ...] | list[str] = TEXTURES,
) -> list[Element]:
    """The cross product of the given attribute values, in vocabulary order."""
    return [
        Element(shape=sh, colour=c, size=si, texture=t)
        for sh, c, si, t in itertools.product(shapes, colours, sizes, textures)
    ]


ALL_ELEMENTS: tuple[Element, ...] = tuple(elements_from())
ELEMENT_INDEX: dict[Element, int] = {e: i for i, e in enumerate(ALL_ELEMENTS)}
