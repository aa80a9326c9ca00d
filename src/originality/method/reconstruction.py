"""Reconstruction: N samples from the frozen model prompted with the learned tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from originality.method.inversion import placeholder_phrase, set_embeddings
from originality.models.pipeline import generate


def reconstruct(
    pipeline,
    embeddings: torch.Tensor,
    seeds: Sequence[int],
    *,
    prompt: str = "a photo of {}",
    steps: int = 50,
    guidance_scale: float = 3.0,
    phrase_length: int = 0,
) -> list[Image.Image]:
    """One image per seed from ``prompt`` with ``{}`` replaced by the learned tokens (repeated in
    turn to ``phrase_length`` positions, as they were learned)."""
    set_embeddings(pipeline, embeddings)
    text = prompt.format(placeholder_phrase(len(embeddings), phrase_length))
    return generate(pipeline, [text] * len(seeds), list(seeds), steps=steps, guidance_scale=guidance_scale)
