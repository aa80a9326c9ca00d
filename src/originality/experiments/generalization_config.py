"""The generalization experiment's settings and presets (Sec. 2, Fig. 3): apart from the run
(``generalization``) and its summary (``generalization_summary``), which both read them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from originality.errors import OriginalityError
from originality.models.config import train_preset, with_overrides
from originality.presets import from_preset
from originality.shapes.specs import LADDER_LEVELS, VARIANTS


@dataclass
class GeneralizationConfig:
    preset: str = "paper"
    levels: tuple[int, ...] = tuple(LADDER_LEVELS)
    variants: tuple[str, ...] = tuple(VARIANTS)
    images: int = 100_000  # per dataset (paper: 100K)
    size: int = 64
    data_seed: int = 0
    train: str = "paper"  # training preset (originality.models.config)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    samples: int = 1024  # per prompt type (paper: 1024)
    inference_steps: int = 50
    guidance_scale: float = 3.0
    detector_threshold: float = 0.9  # paper: 0.9
    seed: int = 0

    def validate(self) -> GeneralizationConfig:
        for level in self.levels:
            if level not in LADDER_LEVELS:
                raise OriginalityError(f"unknown ladder level {level}; known: {', '.join(map(str, LADDER_LEVELS))}")
        for variant in self.variants:
            if variant not in VARIANTS:
                raise OriginalityError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        if not self.levels or not self.variants:
            raise OriginalityError("the experiment needs at least one level and one variant")
        if self.images < 1 or self.samples < 1:
            raise OriginalityError("images and samples must be >= 1")
        self.training_config()  # unknown preset or setting: fail now
        return self

    def training_config(self):
        return with_overrides(train_preset(self.train), self.train_overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def generalization_preset(name: str, **overrides: Any) -> GeneralizationConfig:
    """``paper``: every level and variant, 100K images, the paper's training, 1024 samples (GPUs).
    ``quick``: this 2-core CPU in about 2 hours: one variant (big-full), 20K images per level, the
    cpu models' UNet for 2 epochs on the shipped model's VAE (frozen, as Sec. 4.1's pretrained VAE),
    256 samples per prompt at 25 sampler steps, read at detector confidence 0.5 (these briefly
    trained models draw elements the detector reads with less confidence; precision at 0.5 on
    rendered images is 0.999, results/detector). ``quick`` shows nothing yet (0-2% at every level:
    too little training); ``cpu`` is ``quick`` trained 12.8 times longer on four levels (4, 15, 30,
    60; 7,988 UNet steps a level), the smallest ladder that measured the paper's direction on this
    CPU (results/generalization/ladder-8000-steps): about 90 min a level on both cores with
    ``--data-parallel`` under torchrun, resumable."""
    quick = GeneralizationConfig(
        preset="quick",
        variants=("big-full",),
        images=20_000,
        train="cpu",
        train_overrides={"vae_from": "shipped", "unet_epochs": 2.0},
        samples=256,
        inference_steps=25,
        detector_threshold=0.5,
    )
    presets = {
        "paper": GeneralizationConfig(),
        "quick": quick,
        "cpu": dataclasses.replace(
            quick, preset="cpu", levels=(4, 15, 30, 60), train_overrides={**quick.train_overrides, "unet_epochs": 25.6}
        ),
        "tiny": GeneralizationConfig(  # tests: seconds
            preset="tiny",
            levels=(4, 60),
            variants=("big-full",),
            images=64,
            size=32,
            train="tiny",
            train_overrides={"unet_epochs": 1, "vae_epochs": 1},
            samples=4,
            inference_steps=2,
            detector_threshold=0.5,
        ),
    }
    return from_preset("generalization", presets, name, **overrides)
