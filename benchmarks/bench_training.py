"""UNet training throughput of a preset: the real loop against a bare step.

    python benchmarks/bench_training.py [--preset cpu] [--steps 30]

The bare step is UNet forward + backward + AdamW step on random tensors of the loop's
shapes. The loop is ``Trainer``'s UNet stage on a freshly made 64 px dataset, timed from
its step callbacks (the first steps are skipped as warm-up). Their ratio is the share of
the loop's time spent in the UNet step: data, text embeddings, EMA and logging are the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from originality.models.config import train_preset
from originality.models.pipeline import build_unet
from originality.models.training import Trainer
from originality.shapes.dataset import make_dataset
from originality.shapes.specs import preset


def bare_rate(config, width: int, steps: int) -> float:
    unet = build_unet(config, width)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.unet_lr)
    b, side = config.unet_batch, unet.config.sample_size
    z = torch.randn(b, unet.config.in_channels, side, side)
    cond = torch.randn(b, config.max_length, width)
    t = torch.randint(0, 1000, (b,))
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        loss = torch.nn.functional.mse_loss(unet(z, t, encoder_hidden_states=cond).sample, z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return b * steps / (time.perf_counter() - start)


def loop_rate(config, steps: int) -> tuple[float, int]:
    stamps: list[float] = []

    def on_step(stage: str, step: int) -> None:
        if stage == "unet":
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        n = 4096
        data = make_dataset(preset("originality-mix"), n, f"{tmp}/data", size=config.resolution, progress=False)
        config = dataclasses.replace(
            config,
            max_images=n,
            vae_epochs=2 * config.vae_batch / n,
            unet_epochs=(steps + 3) * config.unet_batch / n,
            checkpoint_every=10**9,
        )
        trainer = Trainer(config, data, f"{tmp}/model", progress=False, on_step=on_step)
        trainer.run()
        width = trainer_width(f"{tmp}/model")
    timed = stamps[3:]
    return config.unet_batch * (len(timed) - 1) / (timed[-1] - timed[0]), width


def trainer_width(folder: str) -> int:
    import json
    from pathlib import Path

    return json.loads((Path(folder) / "unet" / "config.json").read_text())["cross_attention_dim"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    config = train_preset(args.preset)
    loop, width = loop_rate(config, args.steps)
    bare = bare_rate(config, width, args.steps)
    print(f"preset {args.preset}, batch {config.unet_batch}, {config.resolution} px, {torch.get_num_threads()} threads")
    print(f"bare UNet step: {bare:7.1f} samples/s")
    print(f"training loop:  {loop:7.1f} samples/s  (ratio {loop / bare:.2f})")


if __name__ == "__main__":
    main()
