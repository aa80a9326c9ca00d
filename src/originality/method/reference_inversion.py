"""The common textual-inversion recipe, kept as the reference our inversion is measured against.

The recipe of the widely copied example script: the image re-encoded by the VAE every step,
AdamW over the whole token-embedding table, and the frozen rows restored after each step.
:func:`originality.method.inversion.invert` learns the same vectors without that waste; the
benchmarks (``bench_inversion.py``, ``bench_end_to_end.py``) time the two side by side.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from PIL import Image

from originality.method.inversion import add_placeholders, encode_prompts, initial_vector, placeholder_phrase


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
