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
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from originality.method.inversion import (
    InversionSettings,
    add_placeholders,
    encode_prompts,
    image_latents,
    initial_vector,
    invert,
    placeholder_phrase,
)
from originality.models.pipeline import load_pipeline
from originality.shapes.dataset import render_example
from originality.shapes.specs import preset


def query(size: int) -> Image.Image:
    import io

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


def recipe_invert(
    pipeline,
    image: Image.Image,
    m: int,
    *,
    steps: int,
    batch: int,
    lr: float = 5e-4,
    templates: tuple[str, ...] = ("{}",),
    initializer: str = "shapes",
    seed: int = 0,
) -> tuple[torch.Tensor, list[float]]:
    """The common recipe's inversion; returns the learned vectors and the seconds of each step."""
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    ids = add_placeholders(pipeline, m)
    encoder, vae, unet = pipeline.text_encoder, pipeline.vae, pipeline.unet
    table = encoder.get_input_embeddings()
    with torch.no_grad():
        table.weight[ids] = initial_vector(pipeline, initializer)
    original = table.weight.detach().clone()
    keep = torch.ones(len(original), dtype=torch.bool)
    keep[ids] = False
    table.weight.requires_grad_(True)
    optimizer = torch.optim.AdamW(table.parameters(), lr=lr)
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    prompts = [t.format(placeholder_phrase(m)) for t in templates]
    times = []
    try:
        for _ in range(steps):
            start = time.perf_counter()
            z = vae.encode(x.repeat(batch, 1, 1, 1)).latent_dist.sample() * vae.config.scaling_factor
            noise = torch.randn_like(z)
            t = torch.randint(0, 1000, (batch,))
            cond = encode_prompts(pipeline, [prompts[i] for i in torch.randint(len(prompts), (batch,))])
            loss = F.mse_loss(unet(scheduler.add_noise(z, noise, t), t, encoder_hidden_states=cond).sample, noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                table.weight[keep] = original[keep]
            times.append(time.perf_counter() - start)
    finally:
        table.weight.requires_grad_(False)
    return table.weight[ids].detach().clone(), times


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
