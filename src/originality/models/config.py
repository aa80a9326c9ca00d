"""Model and training settings as dataclasses, with named presets.

=========  ==========================================================================
preset     what it is for
=========  ==========================================================================
``tiny``   tests: a few thousand parameters, seconds on a CPU
``cpu``    experiments that train many models on this 2-core CPU (<= 90 min at 64 px)
``ship``   the shipped default model: longer, resumable in the background
``paper``  App. E.1's epochs, batches and learning rates on 100K images, for a GPU
=========  ==========================================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from originality.errors import OriginalityError
from originality.presets import from_preset


@dataclass
class VAEConfig:
    # Three blocks: 64 px -> 16 x 16 latents (f = 4; SD's f = 8 would leave a small 64 px
    # element about one latent pixel). Widths and mid-block attention chosen for CPU speed
    # (results/models/).
    block_out_channels: tuple[int, ...] = (16, 32, 64)
    latent_channels: int = 4
    layers_per_block: int = 1
    norm_num_groups: int = 16
    mid_attention: bool = False

    def diffusers_kwargs(self) -> dict[str, Any]:
        n = len(self.block_out_channels)
        return {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ("DownEncoderBlock2D",) * n,
            "up_block_types": ("UpDecoderBlock2D",) * n,
            "block_out_channels": tuple(self.block_out_channels),
            "latent_channels": self.latent_channels,
            "layers_per_block": self.layers_per_block,
            "norm_num_groups": self.norm_num_groups,
            "mid_block_add_attention": self.mid_attention,
        }


@dataclass
class UNetConfig:
    # Attention at every level, widths sized for a CPU (speeds in results/models/).
    block_out_channels: tuple[int, ...] = (32, 64, 128)
    # Which resolution levels (from the top) have self- and cross-attention to the caption.
    attention_levels: tuple[bool, ...] = (True, True, True)
    layers_per_block: int = 1
    # Heads per level (diffusers calls this attention_head_dim). One head per 32 channels:
    # many narrow heads are slow on a CPU (results/models/).
    attention_head_dim: tuple[int, ...] = (1, 2, 4)
    norm_num_groups: int = 32

    def diffusers_kwargs(self, latent_size: int, latent_channels: int, cross_attention_dim: int) -> dict[str, Any]:
        if len(self.attention_levels) != len(self.block_out_channels):
            raise OriginalityError("unet attention_levels needs one entry per block")
        down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in self.attention_levels)
        up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(self.attention_levels))
        return {
            "sample_size": latent_size,
            "in_channels": latent_channels,
            "out_channels": latent_channels,
            "down_block_types": down,
            "up_block_types": up,
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "block_out_channels": tuple(self.block_out_channels),
            "layers_per_block": self.layers_per_block,
            "attention_head_dim": tuple(self.attention_head_dim),
            "cross_attention_dim": cross_attention_dim,
            "norm_num_groups": self.norm_num_groups,
        }


# Settings added after runs had been saved: hashed only when set, so those runs still continue.
# A new optional setting (default None) belongs here.
ADDED_LATER: tuple[str, ...] = ("vae_from", "latent_scaling")


@dataclass
class TrainConfig:
    preset: str = "cpu"
    text_encoder: str = "minilm"
    max_length: int = 48
    resolution: int = 64
    vae: VAEConfig = field(default_factory=VAEConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    # A pretrained VAE to use frozen instead of stage 1: "shipped" (the shipped model's) or a pipeline
    # or VAE folder. Sec. 4.1 trains the synthetic models' UNets with a pretrained VAE; experiments
    # that train many models share one this way.
    vae_from: str | None = None
    # The latents' scaling factor: measured on the data (None), or "vae": the pretrained VAE's own, so
    # that UNets trained on different data over one frozen VAE share one latent space (a likelihood
    # ratio between two models compares them there).
    latent_scaling: str | None = None
    # Stage 1: the VAE (paper: 8 epochs, batch 32, lr 1e-5).
    vae_epochs: float = 0.25  # 25K images of a 100K dataset: ~11 min here
    vae_batch: int = 32
    vae_lr: float = 4e-4
    kl_weight: float = 1e-6
    # Stage 2: the UNet on cached latents (paper: 15 epochs, batch 64, lr 6.4e-5).
    unet_epochs: float = 2.4  # 240K samples of a 100K dataset: ~70 min here
    unet_batch: int = 64
    unet_lr: float = 4e-4
    warmup_steps: int = 200
    caption_dropout: float = 0.1  # empty caption for classifier-free guidance
    snr_gamma: float | None = 5.0  # min-SNR loss weighting (Hang et al. 2023); None: plain MSE
    ema_decay: float = 0.999
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    max_images: int | None = None  # train on the first n images of the dataset
    seed: int = 0
    mixed_precision: str = "no"  # "fp16" / "bf16" where the device has it
    checkpoint_every: int = 2000  # steps; a checkpoint is also written every checkpoint_minutes
    checkpoint_minutes: float = 10.0
    sample_steps: int = 50  # inference steps for the samples drawn at the end (paper: 50)
    guidance_scale: float = 3.0
    bundle_text_encoder: bool = False  # copy a shared encoder into the saved folder

    def __post_init__(self) -> None:
        if self.latent_scaling not in (None, "vae"):
            raise OriginalityError(
                f"latent_scaling is 'vae' or unset (measured on the data), got {self.latent_scaling!r}"
            )
        if self.latent_scaling == "vae" and not self.vae_from:
            raise OriginalityError("latent_scaling 'vae' needs a pretrained VAE (vae_from)")
        if not isinstance(self.caption_dropout, int | float) or not 0 <= self.caption_dropout < 1:
            raise OriginalityError(f"caption_dropout must be in [0, 1), got {self.caption_dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["vae"] = VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["vae"].items()})
        data["unet"] = UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["unet"].items()})
        return cls(**data)

    def changes(self) -> dict[str, Any]:
        """The settings that differ from the named preset's ("unet.block_out_channels" for nested ones),
        so that a model card says more than "ship preset" for a run made with ``--set``."""
        if self.preset not in PRESETS:
            return {}
        base, mine = PRESETS[self.preset]().to_dict(), self.to_dict()
        out: dict[str, Any] = {}
        for key, value in mine.items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items() if v != base[key][k]})
            elif value != base[key]:
                out[key] = value
        return out

    def fingerprint(self) -> str:
        """Hash of the settings a run cannot change midway.

        Left out: checkpoint cadence, sampling and saving options, and the epoch counts. The
        learning rate is constant after warm-up and the data order does not depend on the
        length of the run, so rerunning with more epochs continues the same run (train longer).
        """
        data = self.to_dict()
        for key in (
            "preset",  # a name for a bundle of settings; the settings themselves are hashed
            "checkpoint_every",
            "checkpoint_minutes",
            "sample_steps",
            "guidance_scale",
            "bundle_text_encoder",
            "vae_epochs",
            "unet_epochs",
        ):
            data.pop(key)
        for key in ADDED_LATER:
            if data[key] is None:
                data.pop(key)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _tiny() -> TrainConfig:
    return TrainConfig(
        preset="tiny",
        text_encoder="tiny",
        resolution=32,
        vae=VAEConfig(block_out_channels=(8, 16), latent_channels=4, norm_num_groups=8),
        unet=UNetConfig(
            block_out_channels=(16, 32), attention_levels=(True, False), attention_head_dim=(1, 1), norm_num_groups=8
        ),
        vae_epochs=1,
        vae_batch=8,
        vae_lr=1e-3,
        unet_epochs=2,
        unet_batch=8,
        unet_lr=1e-3,
        warmup_steps=0,
        ema_decay=0.9,
        checkpoint_every=1000,
        sample_steps=4,
    )


def _cpu() -> TrainConfig:
    return TrainConfig(preset="cpu")


def _ship() -> TrainConfig:
    # The cpu settings with the UNet trained longer (800K samples), resumable (``--hours`` runs
    # it in slices). The VAE stage is the cpu one, so a finished cpu run in the same folder
    # continues into a ship run.
    return TrainConfig(preset="ship", unet_epochs=8.0)


def _paper() -> TrainConfig:
    return TrainConfig(
        preset="paper",
        vae=VAEConfig(block_out_channels=(64, 128, 128), layers_per_block=2, norm_num_groups=32, mid_attention=True),
        unet=UNetConfig(block_out_channels=(128, 256, 256), layers_per_block=2, attention_head_dim=(4, 8, 8)),
        vae_epochs=8,
        vae_batch=32,
        vae_lr=1e-5,
        unet_epochs=15,
        unet_batch=64,
        unet_lr=6.4e-5,
        mixed_precision="bf16",
    )


def with_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with settings replaced; nested ones as ``"unet.layers_per_block"``."""
    data = config.to_dict()
    for key, value in overrides.items():
        part, _, sub = key.partition(".")
        if part not in data or (sub and (not isinstance(data[part], dict) or sub not in data[part])):
            raise OriginalityError(f"unknown training setting {key!r}")
        if sub:
            data[part][sub] = value
        else:
            data[part] = value
    return TrainConfig.from_dict(data)


PRESETS = {"tiny": _tiny, "cpu": _cpu, "ship": _ship, "paper": _paper}


def train_preset(name: str) -> TrainConfig:
    return from_preset("training", PRESETS, name)
