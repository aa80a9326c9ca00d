"""Captions in the paper's style, and the parser back from caption to elements.

Grammar (canonical form, what :func:`caption` writes)::

    caption  := ""                                  # an empty image
              | phrase (" and " phrase)*
    phrase   := size " " colour " " texture " " shape
    size     := "big" | "small"
    colour   := "red" | "green" | "blue"
    texture  := "full" | "empty"
    shape    := "square" | "circle" | "triangle" | "hexagon" | "star"

Elements are listed one by one, never counted or grouped ("two red circles"): the
paper's footnote 3 found listing works better. The order of the phrases is the order
the elements were drawn in.

The parser is lenient where it costs nothing: case and extra spaces are ignored and
the attribute words of a phrase may come in any order ("small empty blue square"
parses). A *description* may omit attributes ("blue circle"); :func:`parse_description`
returns :class:`ElementQuery` objects whose missing attributes match anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from originality.errors import OriginalityError
from originality.shapes.vocabulary import ATTRIBUTES, Element

SEPARATOR = " and "
_WORD_TO_ATTRIBUTE = {value: name for name, values in ATTRIBUTES.items() for value in values}


def caption(elements: Iterable[Element]) -> str:
    """The canonical caption of ``elements`` (the empty string for none)."""
    return SEPARATOR.join(e.phrase for e in elements)


@dataclass(frozen=True)
class ElementQuery:
    """A partial element description; ``None`` attributes match any value."""

    shape: str
    colour: str | None = None
    size: str | None = None
    texture: str | None = None

    def matches(self, element: Element) -> bool:
        return all(
            want is None or want == getattr(element, name)
            for name, want in (
                ("shape", self.shape),
                ("colour", self.colour),
                ("size", self.size),
                ("texture", self.texture),
            )
        )

    @property
    def phrase(self) -> str:
        words = (self.size, self.colour, self.texture, self.shape)
        return " ".join(w for w in words if w is not None)

    def element(self) -> Element:
        """The full element; raises if an attribute is missing."""
        if None in (self.colour, self.size, self.texture):
            raise OriginalityError(f"{self.phrase!r} does not name size, colour, texture and shape")
        return Element(shape=self.shape, colour=self.colour, size=self.size, texture=self.texture)


def _parse_phrase(words: list[str], text: str) -> ElementQuery:
    if not words:
        raise OriginalityError(f"empty phrase in caption {text!r}")
    found: dict[str, str] = {}
    for word in words:
        attribute = _WORD_TO_ATTRIBUTE.get(word)
        if attribute is None:
            raise OriginalityError(f"unknown word {word!r} in caption {text!r}")
        if attribute in found:
            raise OriginalityError(f"two {attribute} words in phrase {' '.join(words)!r} of caption {text!r}")
        found[attribute] = word
    if words[-1] != found.get("shape"):
        raise OriginalityError(f"phrase {' '.join(words)!r} of caption {text!r} must end with a shape")
    return ElementQuery(**found)


def parse_description(text: str) -> list[ElementQuery]:
    """Parse a caption or a partial description ("blue circle") into element queries."""
    words = text.lower().split()
    if not words:
        return []
    phrases: list[list[str]] = [[]]
    for word in words:
        if word == "and":
            phrases.append([])
        else:
            phrases[-1].append(word)
    return [_parse_phrase(p, text) for p in phrases]


def parse_caption(text: str) -> list[Element]:
    """Parse a full caption back into its elements, in order."""
    return [q.element() for q in parse_description(text)]


def colour_count(text: str) -> int:
    """How many different colours a full caption's elements have (a pair of one colour needs no
    binding of colours to shapes; a pair of two does)."""
    return len({e.colour for e in parse_caption(text)})
