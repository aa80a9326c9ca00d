"""Stable Diffusion 1.x and its metrics at real size with random weights, built offline.

Shapes, memory and time do not depend on the weights: a pipeline with SD 1.x's architecture (the
UNet with 768-wide cross-attention, the f = 8 VAE, CLIP ViT-L/14's 12-layer text tower) and random
weights runs every tensor a user's ``--domain houses --preset paper`` run will, so it sizes and times
the real-image path where no weights can be downloaded (``benchmarks/paper_score_one.py``). Nothing
here is ever a model to score with: its samples are noise.

- The tokenizer is CLIP's own BPE (49,408 entries), built from the vocabulary file that
  ``open_clip`` ships, so prompts split and fit the 77 positions exactly as with the real weights.
- DreamSim's ``ensemble`` (DINO, CLIP and OpenCLIP ViT-B/16 at 224 px) and the editability check's
  CLIP ViT-B/32 are built from the installed libraries' architectures. DreamSim's LoRA adapters are
  left out: at rank 16 on the attention inputs they add under 1% of its multiply-adds.

The configurations are those of ``CompVis/stable-diffusion-v1-4`` and
``openai/clip-vit-base-patch32`` as published with their weights.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image
from torchvision import transforms
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
)

from originality.errors import OriginalityError

CLIP_CONTEXT = 77  # CLIP's text positions, start and end tokens included

SD1_UNET: dict[str, Any] = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    layers_per_block=2,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
SD1_VAE: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
SD1_TEXT: dict[str, Any] = dict(  # CLIP ViT-L/14's text tower
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=CLIP_CONTEXT,
    hidden_act="quick_gelu",
    projection_dim=768,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)
SD1_SCHEDULER: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    skip_prk_steps=True,
    steps_offset=1,
    set_alpha_to_one=False,
)
CLIP_B32: dict[str, Any] = dict(  # openai/clip-vit-base-patch32: the editability check's classifier
    text_config=dict(
        vocab_size=49408,
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=8,
        max_position_embeddings=CLIP_CONTEXT,
        hidden_act="quick_gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    ),
    vision_config=dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
        hidden_act="quick_gelu",
    ),
    projection_dim=512,
)
# Parameter counts of the published SD v1-4 components: the builder must reproduce them exactly.
SD1_PARAMETERS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}


def _open_clip_bpe() -> tuple[Path, dict[int, str]]:
    """The CLIP BPE merges file that ``open_clip`` ships, and CLIP's byte -> character table."""
    try:
        from open_clip.tokenizer import bytes_to_unicode, default_bpe
    except ImportError as exc:
        raise OriginalityError("CLIP's vocabulary comes from open_clip: pip install 'originality[real]'") from exc
    return Path(default_bpe()), bytes_to_unicode()


def clip_tokenizer(folder: str | Path) -> CLIPTokenizer:
    """CLIP's tokenizer (49,408 entries, 77 positions) written to ``folder`` from the BPE merges file,
    in the order CLIP numbers it: bytes, bytes ending a word, merges, then the start and end tokens."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary, byte_symbols = _open_clip_bpe()
    with gzip.open(vocabulary, "rt", encoding="utf-8") as file:
        lines = file.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(byte_symbols.values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        model_max_length=CLIP_CONTEXT,
        pad_token="<|endoftext|>",
    )


def sd1_components(seed: int = 0) -> dict[str, torch.nn.Module]:
    """SD 1.x's UNet, VAE and text encoder with random weights (fp32, on the CPU)."""
    torch.manual_seed(seed)
    return {
        "unet": UNet2DConditionModel(**SD1_UNET),
        "vae": AutoencoderKL(**SD1_VAE),
        "text_encoder": CLIPTextModel(CLIPTextConfig(**SD1_TEXT)),
    }


def sd1_pipeline(folder: str | Path, seed: int = 0) -> StableDiffusionPipeline:
    """A ``StableDiffusionPipeline`` laid out as ``CompVis/stable-diffusion-v1-4`` (its scheduler
    included), random weights; ``folder`` takes the tokenizer's files."""
    parts = sd1_components(seed)
    pipeline = StableDiffusionPipeline(
        vae=parts["vae"].eval(),
        text_encoder=parts["text_encoder"].eval(),
        tokenizer=clip_tokenizer(Path(folder) / "tokenizer"),
        unet=parts["unet"].eval(),
        scheduler=PNDMScheduler(**SD1_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def clip_classifier_parts(folder: str | Path, seed: int = 0) -> tuple[CLIPModel, CLIPProcessor]:
    """CLIP ViT-B/32 (the editability check's default classifier) with random weights and its processor."""
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(**CLIP_B32)).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=clip_tokenizer(Path(folder) / "clip"))
    return model, processor


@contextlib.contextmanager
def _random_backbones(build: Callable[[str], Any]) -> Iterator[None]:
    """Have dreamsim build its backbones with ``build`` instead of loading them from files.
    dreamsim offers no hook for an untrained backbone; its ``create_model`` is its one loader."""
    from dreamsim.feature_extraction.extractor import ViTExtractor

    saved = ViTExtractor.__dict__["create_model"]
    ViTExtractor.create_model = staticmethod(lambda model_type, load_dir=None: build(model_type))
    try:
        yield
    finally:
        ViTExtractor.create_model = saved


def _backbone(model_type: str) -> tuple[torch.nn.Module, Any]:
    """One of the ensemble's ViT-B/16s, as dreamsim assembles it, with its projection head."""
    from dreamsim.feature_extraction.vision_transformer import DINOHead, vit_base

    vit = vit_base(patch_size=16)
    if model_type == "dino_vitb16":
        return vit, DINOHead(768, 2048)
    if model_type not in ("clip_vitb16", "open_clip_vitb16"):
        raise OriginalityError(f"no random-weights DreamSim backbone for {model_type!r}")
    # dreamsim runs (Open)CLIP as a DINO ViT with a LayerNorm before the blocks and a 768 -> 512 projection.
    vit.pos_drop = torch.nn.LayerNorm(vit.embed_dim, eps=1e-5)
    return vit, torch.randn(768, 512) / 768**0.5


def dreamsim_parts(device: str | torch.device = "cpu", seed: int = 0) -> tuple[torch.nn.Module, Callable]:
    """DreamSim's ``ensemble`` with random weights, and dreamsim's preprocessing (224 px, bicubic)."""
    try:
        from dreamsim.config import dreamsim_args
        from dreamsim.model import PerceptualModel
    except ImportError as exc:
        raise OriginalityError("DreamSim's architecture comes from dreamsim: pip install 'originality[real]'") from exc
    torch.manual_seed(seed)
    with _random_backbones(_backbone):
        model = PerceptualModel(
            **dreamsim_args["model_config"]["ensemble"], device=str(device), load_dir="", normalize_embeds=True
        )
    model.eval().requires_grad_(False)
    size = dreamsim_args["img_size"]
    to_tensor = transforms.Compose(
        [transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC), transforms.ToTensor()]
    )

    def preprocess(image: Image.Image) -> torch.Tensor:
        return to_tensor(image.convert("RGB")).unsqueeze(0)

    return model, preprocess


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
