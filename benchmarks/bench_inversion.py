"""Inversion step cost: ours against a bare UNet step and against the common recipe's step.

    python benchmarks/bench_inversion.py [--model shipped] [--batch 8] [--steps 20] [--m 3]

* bare: UNet forward + backward at the batch (what no implementation can avoid);
* ours: :func:`originality.method.inversion.invert` (latents cached, m vectors optimised,
  distinct prompts encoded once);
* recipe: the common example script's step (VAE re-encode of the image every step, Adam over
  the whole embedding table, frozen rows restored after every step).
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image

from originality.method.inversion import (
    InversionSettings,
    encode_prompts,
    image_latents,
    invert,
    placeholder_phrase,
)
from originality.method.reference_inversion import recipe_invert
from originality.models.pipeline import load_pipeline
from originality.shapes.dataset import render_example
from originality.shapes.specs import preset


def query(size: int) -> Image.Image:
    return Image.open(io.BytesIO(render_example(preset("originality-mix"), 3, 7, size)["image"]["bytes"]))


def bare(pipeline, batch: int, steps: int) -> float:
    unet = pipeline.unet.requires_grad_(False)
    side, c = unet.config.sample_size, unet.config.in_channels
    z = torch.randn(batch, c, side, side)
    cond = torch.randn(batch, pipeline.tokenizer.model_max_length, unet.config.cross_attention_dim, requires_grad=True)
    t = torch.randint(0, 1000, (batch,))
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        unet(z, t, encoder_hidden_states=cond).sample.square().mean().backward()
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def ours_per_step(pipeline, image: Image.Image, m: int, batch: int, steps: int) -> float:
    """Seconds per step of :func:`invert`, set-up excluded (two run lengths, differenced)."""
    latents = image_latents(pipeline, image)
    seconds = []
    for n in (2, steps + 2):
        settings = InversionSettings(steps=n, batch_size=batch, initializer="shapes", templates=("{}",))
        start = time.perf_counter()
        invert(pipeline, image, m, settings, latents=latents)
        seconds.append(time.perf_counter() - start)
    return (seconds[1] - seconds[0]) / steps


def encoder_pass(pipeline, m: int) -> float:
    """Text encoder forward + backward for one prompt, the gradient reaching only an added
    input vector (as in :func:`invert`): what a step must add to the UNet's."""
    embedding = pipeline.text_encoder.get_input_embeddings()
    delta = torch.nn.Parameter(torch.zeros(embedding.weight.shape[1]))
    hook = embedding.register_forward_hook(lambda _module, _inputs, output: output + delta)
    times = []
    try:
        for _ in range(12):
            start = time.perf_counter()
            encode_prompts(pipeline, [placeholder_phrase(m)]).sum().backward()
            times.append(time.perf_counter() - start)
    finally:
        hook.remove()
    return float(np.median(times[2:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="default: the shipped shapes model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--m", type=int, default=3)
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    image = query(pipeline.unet.config.sample_size * pipeline.vae_scale_factor)
    b = bare(pipeline, args.batch, args.steps)
    ours = ours_per_step(pipeline, image, args.m, args.batch, args.steps)
    text = encoder_pass(pipeline, args.m)
    _, times = recipe_invert(pipeline, image, args.m, steps=args.steps + 2, batch=args.batch)
    r = float(np.median(times[2:]))
    print(f"batch {args.batch}, m = {args.m}, {torch.get_num_threads()} threads")
    print(f"bare UNet forward + backward: {b * 1000:7.1f} ms")
    print(f"text encoder fwd + backward:  {text * 1000:7.1f} ms  (one prompt; the gradient must pass through it)")
    print(
        f"ours, per inversion step:     {ours * 1000:7.1f} ms  (ratio {ours / b:.2f}; "
        f"without the encoder pass {(ours - text) / b:.2f})"
    )
    print(f"common recipe, per step:      {r * 1000:7.1f} ms  (ratio {r / b:.2f})")


if __name__ == "__main__":
    main()
