"""A shapes dataset as training tensors, and its captions' embeddings, cached when they fit."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from originality.errors import OriginalityError
from originality.models.config import TrainConfig
from originality.models.text_encoders import encode_prompts
from originality.shapes.dataset import read_info, read_table

TEXT_CACHE_BYTES = 2 * 1024**3  # cache caption embeddings when they fit in this much memory


def load_images(dataset: Path, config: TrainConfig, progress: bool) -> tuple[torch.Tensor, list[str], dict[str, Any]]:
    """Decode the dataset into a uint8 tensor (N, 3, H, W) and its captions."""
    info = read_info(dataset)
    if info["size"] != config.resolution:
        raise OriginalityError(
            f"dataset {dataset} is {info['size']} px but the model is {config.resolution} px "
            f"(make the data with --size {config.resolution} or change the resolution)"
        )
    table = read_table(dataset, columns=["image", "caption"])
    if config.max_images is not None:
        table = table.slice(0, config.max_images)
    images = np.empty((table.num_rows, config.resolution, config.resolution, 3), dtype=np.uint8)
    for i, item in enumerate(
        tqdm(table.column("image").to_pylist(), desc="decoding images", disable=not progress, unit="img")
    ):
        try:
            images[i] = np.asarray(Image.open(io.BytesIO(item["bytes"])).convert("RGB"))
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a corrupt dataset
            raise OriginalityError(f"corrupt image {i} in dataset {dataset}: {exc}") from exc
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), table.column("caption").to_pylist(), info


def latent_shard(n: int, processes: int, index: int) -> slice:
    """The contiguous run of ``n`` images that process ``index`` encodes. Only trailing shards may
    be short, so gathering them in order and trimming to ``n`` restores the order; an empty shard
    would leave a process nothing to encode, so that is refused."""
    size = -(-n // processes)
    if size * (processes - 1) >= n:
        raise OriginalityError(f"{n} images cannot be shared by {processes} training processes; use fewer processes")
    return slice(index * size, (index + 1) * size)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


class CaptionEmbeddings:
    """Frozen-encoder embeddings of captions: cached per unique caption when they fit."""

    def __init__(self, tokenizer, encoder, captions: list[str], device: torch.device, progress: bool):
        self.tokenizer, self.encoder, self.device = tokenizer, encoder, device
        unique = sorted(set(captions) | {""})
        self.index = {c: i for i, c in enumerate(unique)}
        length, width = tokenizer.model_max_length, encoder.config.hidden_size
        self.cache: torch.Tensor | None = None
        if len(unique) * length * width * 4 <= TEXT_CACHE_BYTES:
            chunks = [
                self._encode(unique[i : i + 256])
                for i in tqdm(range(0, len(unique), 256), desc="encoding captions", disable=not progress)
            ]
            self.cache = torch.cat(chunks)

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.tokenizer, self.encoder, prompts)

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[torch.tensor([self.index[p] for p in prompts], device=self.cache.device)]
        return self._encode(prompts)
