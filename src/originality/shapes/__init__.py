"""The synthetic shapes framework: vocabulary, rendering, captions, specs, datasets."""

from originality.shapes.captions import ElementQuery, caption, parse_caption, parse_description
from originality.shapes.rendering import Placed, render, sample_layout
from originality.shapes.specs import DatasetSpec, list_presets, load_spec, preset
from originality.shapes.vocabulary import ALL_ELEMENTS, Element

__all__ = [
    "ALL_ELEMENTS",
    "DatasetSpec",
    "Element",
    "ElementQuery",
    "Placed",
    "caption",
    "list_presets",
    "load_spec",
    "parse_caption",
    "parse_description",
    "preset",
    "render",
    "sample_layout",
]
