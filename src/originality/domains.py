"""Domains: the initial token, training templates and reconstruction prompt per kind of image.

Real-world domains follow Table 1 and App. E.2 of the paper (object templates of textual
inversion, the 20 art templates for artwork); ``shapes`` is for the synthetic models. A user
domain is a JSON or YAML file with the same keys (``name``, ``initializer``, optionally
``templates``, ``prompt``, ``edit_prompts``, ``edit_concept``, ``inference_steps``,
``distance``, ``check``).

A domain also names what suits its images: the reconstruction distance and in-distribution
check (``elements`` / ``positions`` for the shapes models, ``dreamsim`` / ``editability`` for
real ones, Sec. 3.1) and the sampler steps (paper: 50 for the shapes models, 35 for Stable
Diffusion). A score's config may override each.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from originality.errors import OriginalityError

# The object templates of textual inversion (Gal et al. 2022), used for every domain but art.
OBJECT_TEMPLATES = (
    "a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}",
    "a photo of a clean {}", "a photo of a dirty {}", "a dark photo of the {}", "a photo of my {}",
    "a photo of the cool {}", "a close-up photo of a {}", "a bright photo of the {}", "a cropped photo of a {}",
    "a photo of the {}", "a good photo of the {}", "a photo of one {}", "a close-up photo of the {}",
    "a rendition of the {}", "a photo of the clean {}", "a rendition of a {}", "a photo of a nice {}",
    "a good photo of a {}", "a photo of the nice {}", "a photo of the small {}", "a photo of the weird {}",
    "a photo of the large {}", "a photo of a cool {}", "a photo of a small {}",
)  # fmt: skip

# App. E.2: the art templates.
ART_TEMPLATES = (
    "a detailed image of the artwork titled {}", "a high-resolution photo of the artwork {}",
    "a close-up view of the artwork known as {}", "a digital representation of the art piece {}",
    "the famous artwork {}", "a full view of the art piece titled {}", "an artistic interpretation of {}",
    "a gallery display of the artwork {}", "a photographic capture of the art {}", "the artwork {} in full detail",
    "a visual study of the artwork {}", "the complete artwork known as {}", "an exhibition view of {}",
    "a curated image of the artwork {}", "a detailed scan of {}", "an artistic rendering of {}",
    "a high-quality image of the artwork {}", "the full artwork titled {}", "a museum display of {}",
    "an archival photograph of the artwork {}",
)  # fmt: skip


@dataclass
class Domain:
    name: str
    initializer: str
    templates: tuple[str, ...] = OBJECT_TEMPLATES
    prompt: str = "a photo of {}"  # the reconstruction prompt (paper: "a photo of S*")
    # Editability (real-world domains): samples of these prompts must still show the concept.
    edit_prompts: tuple[str, ...] = ("cat in {}",)
    edit_concept: str = "cat"
    inference_steps: int = 35
    distance: str = "dreamsim"
    check: str | None = "editability"

    def __post_init__(self) -> None:
        self.templates = tuple(self.templates)
        self.edit_prompts = tuple(self.edit_prompts)
        for text in (*self.templates, self.prompt, *self.edit_prompts):
            if text.count("{}") != 1:
                raise OriginalityError(f"domain {self.name!r}: template {text!r} must hold one '{{}}'")
        if not isinstance(self.initializer, str) or not self.initializer.strip():
            raise OriginalityError(f"domain {self.name!r}: missing initial token ('initializer')")
        if self.check == "editability" and not (self.edit_prompts and self.edit_concept.strip()):
            raise OriginalityError(f"domain {self.name!r}: the editability check needs edit_prompts and edit_concept")
        if not isinstance(self.inference_steps, int) or self.inference_steps < 1:
            raise OriginalityError(f"domain {self.name!r}: inference_steps must be a positive integer")


DOMAINS: dict[str, Domain] = {
    # Synthetic shapes: the captions are bare element lists, so the tokens stand alone.
    "shapes": Domain(
        "shapes",
        "shapes",
        templates=("{}",),
        prompt="{}",
        edit_prompts=(),
        edit_concept="",
        inference_steps=50,
        distance="elements",
        check="positions",
    ),
    "houses": Domain("houses", "house"),
    "art": Domain("art", "painting", templates=ART_TEMPLATES),
    "animals": Domain("animals", "animal", edit_prompts=("a hat on {}",), edit_concept="hat"),
    "dogs": Domain("dogs", "dog"),
    "cats": Domain("cats", "cat", edit_prompts=("dog in {}",), edit_concept="dog"),
    "birds": Domain("birds", "bird"),
    "sport": Domain("sport", "sport"),
    "people": Domain("people", "person"),
    "objects": Domain("objects", "object"),
}


def load_domain(name_or_path: str | Path) -> Domain:
    """A named domain, or a domain file (.json / .yaml) a user wrote."""
    text = str(name_or_path)
    if text in DOMAINS:
        return DOMAINS[text]
    path = Path(text)
    if path.suffix.lower() not in {".json", ".yaml", ".yml"}:
        raise OriginalityError(f"unknown domain {text!r}; known: {', '.join(DOMAINS)} (or a .json/.yaml file)")
    if not path.is_file():
        raise OriginalityError(f"domain file not found: {path}")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
        else:
            data = yaml.safe_load(path.read_text())
    except Exception as exc:  # noqa: BLE001 - any parse error is a bad file
        raise OriginalityError(f"cannot parse domain file {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or "name" not in data:
        raise OriginalityError(f"domain file {path} needs a 'name'")
    if "initializer" not in data:
        raise OriginalityError(f"domain file {path}: missing initial token ('initializer')")
    unknown = set(data) - {f.name for f in dataclasses.fields(Domain)}
    if unknown:
        raise OriginalityError(f"domain file {path}: unknown key {sorted(unknown)[0]!r}")
    try:
        return Domain(**data)
    except (TypeError, AttributeError) as exc:
        raise OriginalityError(f"domain file {path}: {exc}") from exc
