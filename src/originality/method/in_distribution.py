"""In-distribution checks: ``check(query, samples, *, render) -> Verdict`` (passed, with evidence).

``render(prompt)`` draws the score's N seeds from ``prompt`` (``"cat in {}"``) with the learned
tokens; checks that need more than the reconstructions (editability) call it.

A reconstruction only counts when the learned tokens are still a concept of the model's
distribution, not a memorised copy of the query (Sec. 3.1).

* ``positions`` (shapes models, App. C): the training data place elements uniformly at
  random, so samples of an in-distribution concept put their elements in different places
  from seed to seed and do not copy the query's layout. Among the samples whose elements
  match the query's, the check measures each one's layout distance to the query (mean
  distance between matched element centres, as a fraction of the image side) and to the
  other samples. It fails when more than ``max_copies`` of them sit within ``tolerance`` of
  the query's layout.
* ``editability`` (real models, Sec. 3.1, after Gal et al. 2022): the learned tokens must still
  compose with other words. Samples of each of the domain's edit prompts ("cat in {}") go
  through a CLIP zero-shot classifier that chooses between the edit's concept ("a photo of a
  cat") and the domain's own word ("a photo of a house"); the check passes when at least
  ``min_fraction`` of them show the concept. The edited samples ride along on the verdict
  (``verdict.images``) for the report.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment

from originality.detection.detector import ElementDetector, element_multiset
from originality.errors import OriginalityError


@dataclass
class Verdict:
    name: str
    passed: bool
    evidence: dict[str, Any] = field(default_factory=dict)


Check = Callable[..., Verdict]  # (query, samples, *, render=None) -> Verdict


def layout_distance(a, b) -> float:
    """Mean centre distance between two same-content layouts under the best element matching."""
    cost = np.full((len(a), len(b)), 1e6)
    for i, da in enumerate(a):
        for j, db in enumerate(b):
            if da.element == db.element:
                cost[i, j] = np.hypot(da.centre[0] - db.centre[0], da.centre[1] - db.centre[1])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean()) if len(rows) else 0.0


class PositionsCheck:
    def __init__(self, detector=None, *, tolerance: float = 0.08, max_copies: float = 0.5):
        self.detector = detector or ElementDetector.load()
        self.tolerance, self.max_copies = tolerance, max_copies

    def __call__(self, query: Image.Image, samples: Sequence[Image.Image], *, render=None) -> Verdict:
        found = self.detector.detect([query, *samples])
        side = float(query.width)
        want = element_multiset(found[0])
        matching = [d for d in found[1:] if element_multiset(d) == want and d]
        to_query = [layout_distance(found[0], d) / side for d in matching]
        between = [layout_distance(a, b) / side for a, b in itertools.combinations(matching, 2)]
        copies = sum(v < self.tolerance for v in to_query)
        fraction = copies / len(matching) if matching else 0.0
        return Verdict(
            name="positions",
            passed=fraction <= self.max_copies,
            evidence={
                "matching_samples": len(matching),
                "copies_of_query_layout": copies,
                "copy_fraction": fraction,
                "mean_distance_to_query": float(np.mean(to_query)) if to_query else None,
                "mean_distance_between_samples": float(np.mean(between)) if between else None,
                "tolerance": self.tolerance,
                "max_copies": self.max_copies,
            },
        )


class ClipClassifier:
    """Zero-shot CLIP (transformers ``CLIPModel``): which of some texts an image shows."""

    def __init__(self, model: str = "openai/clip-vit-base-patch32", device=None):
        from transformers import CLIPModel, CLIPProcessor

        try:
            self.model = CLIPModel.from_pretrained(model, use_safetensors=True).eval()
            self.processor = CLIPProcessor.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise OriginalityError(
                f"cannot load CLIP classifier {model!r} (a hub id needs the network or the hub cache; a folder needs "
                f"safetensors weights): {str(exc).splitlines()[0]}"
            ) from exc
        if device is not None:
            self.model.to(device)

    @classmethod
    def from_model(cls, model, processor, device=None) -> ClipClassifier:
        """A classifier on a ``CLIPModel`` and ``CLIPProcessor`` the caller built (``models/random_weights.py``)."""
        classifier = cls.__new__(cls)
        classifier.model, classifier.processor = model.eval(), processor
        if device is not None:
            classifier.model.to(device)
        return classifier

    def probabilities(self, images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        """(images, texts) softmax probabilities."""
        inputs = self.processor(text=list(texts), images=list(images), return_tensors="pt", padding=True)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        with torch.no_grad():
            logits = self.model(**inputs).logits_per_image
        return logits.softmax(-1).float().cpu().numpy()


class EditabilityCheck:
    def __init__(self, domain, classifier: ClipClassifier | None = None, *, min_fraction: float = 0.5, **kw):
        if not domain.edit_prompts or not domain.edit_concept:
            raise OriginalityError(f"domain {domain.name!r} defines no edit prompts for the editability check")
        self.domain, self.min_fraction = domain, min_fraction
        self.classifier = classifier or ClipClassifier(**kw)

    def __call__(self, query: Image.Image, samples: Sequence[Image.Image], *, render=None) -> Verdict:
        if render is None:
            raise OriginalityError("the editability check needs a renderer for its edit prompts")
        concept, word = self.domain.edit_concept, self.domain.initializer
        texts = [f"a photo of a {concept}", f"a photo of a {word}"]
        per_prompt, images = {}, []
        for prompt in self.domain.edit_prompts:
            edited = render(prompt)
            shows = self.classifier.probabilities(edited, texts)[:, 0] > 0.5
            per_prompt[prompt] = float(shows.mean())
            images.extend(edited)
        fraction = float(np.mean(list(per_prompt.values())))
        verdict = Verdict(
            name="editability",
            passed=fraction >= self.min_fraction,
            evidence={
                "concept": concept,
                "shows_concept": fraction,
                "per_prompt": per_prompt,
                "min_fraction": self.min_fraction,
                "texts": texts,
            },
        )
        verdict.images = images  # not a field: kept out of result.json, drawn in the report
        return verdict


def _editability(domain=None, clip_model: str = "openai/clip-vit-base-patch32", min_fraction=0.5, device=None, **_):
    if domain is None:
        raise OriginalityError("the editability check needs a domain")
    return EditabilityCheck(domain, ClipClassifier(clip_model, device), min_fraction=min_fraction)


CHECKS: dict[str, Callable[..., Check]] = {
    "positions": lambda detector=None, **_: PositionsCheck(detector),
    "editability": _editability,
}


def get_check(name: str, **kwargs) -> Check:
    if name not in CHECKS:
        raise OriginalityError(f"unknown in-distribution check {name!r}; known: {', '.join(CHECKS)}")
    return CHECKS[name](**kwargs)
