"""DreamSim distance (Fu et al. 2023; the paper's reconstruction distance, App. F).

``distance = 1 - cos(E(query), E(sample))`` with the embeddings of the ``dreamsim`` package
(install ``originality[real]``). The paper uses the ``ensemble`` (DINO + CLIP + OpenCLIP
ViT-B/16); single-backbone variants trade accuracy for speed.

Weights. ``dreamsim`` downloads its authors' release zip into a ``cache_dir`` on first use and
unzips it there. This module looks for the unzipped files first and only then lets dreamsim
download; offline, or when the download fails, it stops with one message naming the files to
place and where. The folder is ``cache_dir`` if given, else ``$ORIGINALITY_DREAMSIM_CACHE``,
else ``~/.cache/originality/dreamsim``. (The backbones are the authors' ``.pth`` files; dreamsim
reads them with ``torch.load(weights_only=True)``, which loads tensors and runs no code.)
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from originality.errors import OriginalityError

# What each variant needs in cache_dir once dreamsim's release zip is unzipped there.
REQUIRED = {
    "ensemble": ["dino_vitb16_pretrain.pth", "open_clip_vitb16_pretrain.pth.tar", "clip_vitb16_pretrain.pth.tar",
                 "ensemble_lora/"],
    "dino_vitb16": ["dino_vitb16_pretrain.pth", "dino_vitb16_single_lora/"],
    "dinov2_vitb14": ["dinov2_vitb14_pretrain.pth", "dinov2_vitb14_single_lora/"],
    "open_clip_vitb32": ["open_clip_vitb32_pretrain.pth.tar", "open_clip_vitb32_single_lora/"],
    "clip_vitb32": ["clip_vitb32_pretrain.pth.tar", "clip_vitb32_single_lora/"],
    "synclr_vitb16": ["synclr_vit_b_16.pth", "synclr_vitb16_single_lora/"],
}  # fmt: skip


def default_cache() -> Path:
    env = os.environ.get("ORIGINALITY_DREAMSIM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "originality" / "dreamsim"


def missing_files(cache_dir: Path, variant: str) -> list[str]:
    return [name for name in REQUIRED[variant] if not (cache_dir / name.rstrip("/")).exists()]


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in {"1", "true", "yes"} for k in ("HF_HUB_OFFLINE", "ORIGINALITY_OFFLINE"))


def preflight(cache_dir: str | Path | None, variant: str, *, allow_download: bool | None = None) -> Path:
    """The weights folder; fails now (not after loading a large pipeline) when the weights are
    missing and cannot be downloaded (``HF_HUB_OFFLINE`` / ``ORIGINALITY_OFFLINE`` set)."""
    if variant not in REQUIRED:
        raise OriginalityError(f"unknown DreamSim variant {variant!r}; known: {', '.join(REQUIRED)}")
    folder = Path(cache_dir) if cache_dir else default_cache()
    allow_download = (not _offline()) if allow_download is None else allow_download
    if missing_files(folder, variant) and not allow_download:
        raise OriginalityError(_missing_message(folder, variant, "downloads are off"))
    return folder


def _missing_message(folder: Path, variant: str, reason: str) -> str:
    return (
        f"DreamSim {variant!r} weights are not in {folder} and {reason}: place "
        f"{', '.join(REQUIRED[variant])} there (unzip the dreamsim release zip for {variant!r} into that folder), "
        "set --dreamsim-cache to a folder that has them, or use --distance ssim"
    )


class DreamSimDistance:
    """``distance(query, samples)``: DreamSim distances of the samples to the query."""

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        variant: str = "ensemble",
        device: str | torch.device | None = None,
        *,
        allow_download: bool | None = None,
        batch_size: int = 16,
    ):
        try:
            from dreamsim import dreamsim
        except ImportError as exc:
            raise OriginalityError(
                "the dreamsim distance needs the dreamsim package: pip install 'originality[real]' "
                "(or use --distance ssim)"
            ) from exc
        self.cache_dir = preflight(cache_dir, variant, allow_download=allow_download)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = batch_size
        missing = missing_files(self.cache_dir, variant)
        zip_path = self.cache_dir / "pretrained.zip"
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.redirect_stdout(io.StringIO()):  # dreamsim prints its cache use
                self.model, self.preprocess = dreamsim(
                    pretrained=True, device=str(self.device), cache_dir=str(self.cache_dir), dreamsim_type=variant
                )
        except Exception as exc:  # noqa: BLE001 - a failed download or load is one message
            if missing:
                zip_path.unlink(missing_ok=True)  # a half-downloaded zip would be taken as valid
                reason = f"the download failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                raise OriginalityError(_missing_message(self.cache_dir, variant, reason)) from exc
            raise OriginalityError(f"cannot load DreamSim {variant!r} from {self.cache_dir}: {exc}") from exc

    @classmethod
    def from_model(
        cls, model: torch.nn.Module, preprocess, device: str | torch.device | None = None, *, batch_size: int = 16
    ) -> DreamSimDistance:
        """A distance on a model the caller built (``models/random_weights.py``: the architecture at
        real size, to time it), with dreamsim's ``(model, preprocess)`` pair."""
        distance = cls.__new__(cls)
        distance.cache_dir = None
        distance.device = torch.device(device) if device is not None else torch.device("cpu")
        distance.batch_size = batch_size
        distance.model, distance.preprocess = model.to(distance.device), preprocess
        return distance

    @torch.no_grad()
    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.cat([self.preprocess(im) for im in images[start : start + self.batch_size]])
            out.append(self.model.embed(batch.to(self.device)).float())
        return torch.cat(out)

    def __call__(self, query: Image.Image, samples: Sequence[Image.Image]) -> np.ndarray:
        embeddings = self.embed([query, *samples])
        similarity = torch.nn.functional.cosine_similarity(embeddings[:1], embeddings[1:], dim=-1)
        return (1 - similarity).cpu().numpy().astype(np.float64)
