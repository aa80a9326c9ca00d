"""Build, save and load Stable-Diffusion-style pipelines; sample image grids from them.

A saved model is a diffusers ``StableDiffusionPipeline`` folder. A *shared* text encoder
(``minilm``, which every install of the package has) is referenced, not copied: its
``text_encoder/`` holds the config and ``originality_reference.json`` instead of 90 MB of
weights, so that a dozen experiment models do not carry a dozen copies, and the shipped
model stays small. :func:`load_pipeline` fills the reference in; plain
``StableDiffusionPipeline.from_pretrained(folder)`` works on folders saved with
``bundle_text_encoder`` and on those with a non-shared (e.g. ``tiny``) encoder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import diffusers
import torch
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from huggingface_hub.constants import HF_HUB_CACHE
from PIL import Image
from transformers import AutoTokenizer

from originality.digests import file_sha256
from originality.errors import OriginalityError
from originality.models.config import TrainConfig
from originality.models.text_encoders import SHARED, encode_prompts, encoder_reference, load_text_encoder

SCHEDULER_CONFIG = {
    # Stable Diffusion's noise schedule: pipelines and samplers made for SD work unchanged.
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
}


def quiet_libraries() -> None:
    """Silence diffusers' and transformers' per-load chatter (type notes, load reports, bars)."""
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def build_vae(config: TrainConfig) -> AutoencoderKL:
    torch.manual_seed(config.seed)
    return AutoencoderKL(**config.vae.diffusers_kwargs(), sample_size=config.resolution)


def build_unet(config: TrainConfig, cross_attention_dim: int) -> UNet2DConditionModel:
    factor = 2 ** (len(config.vae.block_out_channels) - 1)
    torch.manual_seed(config.seed + 1)
    return UNet2DConditionModel(
        **config.unet.diffusers_kwargs(config.resolution // factor, config.vae.latent_channels, cross_attention_dim)
    )


def training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULER_CONFIG)


def sampling_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG, set_alpha_to_one=False, steps_offset=1)


def assemble(vae, text_encoder, tokenizer, unet) -> StableDiffusionPipeline:
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sampling_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_pipeline(
    pipeline: StableDiffusionPipeline,
    out: Path,
    *,
    bundle_text_encoder: bool = False,
    card: str | None = None,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Save ``pipeline`` to ``out`` (safetensors only), atomically replacing the pipeline parts."""
    quiet_libraries()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.save-{uuid.uuid4().hex[:8]}"
    try:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        source = getattr(pipeline.text_encoder.config, "originality_source", None)
        if source in SHARED and not bundle_text_encoder:
            for weights in (tmp / "text_encoder").glob("*.safetensors"):
                weights.unlink()
            (tmp / "text_encoder" / "originality_reference.json").write_text(json.dumps({"source": source}) + "\n")
        if card is not None:
            (tmp / "README.md").write_text(card)
        for name, path in (extra_files or {}).items():
            shutil.copy2(path, tmp / name)
        for item in tmp.iterdir():
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _check_folder(folder: Path) -> None:
    if not (folder / "model_index.json").is_file():
        raise OriginalityError(f"{folder} is not a diffusers pipeline folder (no model_index.json)")
    pickled = [p for p in folder.rglob("*") if p.suffix in {".bin", ".ckpt", ".pt", ".pth", ".pkl"}]
    if pickled and not any(folder.rglob("*.safetensors")):
        raise OriginalityError(f"{folder} holds only pickled weights ({pickled[0].name}); safetensors only")


def pretrained_vae(source: str, config: TrainConfig | None = None) -> AutoencoderKL:
    """The VAE of a pipeline folder (or of a VAE folder; "shipped": the shipped model's)."""
    folder = default_model() if source == "shipped" else Path(source)
    folder = folder / "vae" if (folder / "vae").is_dir() else folder
    if not (folder / "config.json").is_file():
        raise OriginalityError(f"no VAE found in {source} (a pipeline folder, a VAE folder or 'shipped')")
    vae = AutoencoderKL.from_pretrained(folder, use_safetensors=True)
    if config is not None:
        want = (len(config.vae.block_out_channels), config.vae.latent_channels)
        have = (len(vae.config.block_out_channels), vae.config.latent_channels)
        if want != have:
            raise OriginalityError(
                f"the VAE in {source} has {have[0]} blocks and {have[1]} latent channels; the settings ask for "
                f"{want[0]} and {want[1]}"
            )
    return vae


def default_model() -> Path:
    """The model shipped inside the package."""
    path = Path(__file__).resolve().parent.parent / "assets" / "shapes-model"
    if not (path / "model_index.json").is_file():
        raise OriginalityError("no shipped default model in this install; pass --model")
    return path


def model_identity(model: str | Path | None) -> str:
    """What a run records of its model: the folder or hub id, plus a digest of a local UNet's
    weights, so that a model retrained at the same place (a new shipped model) is not taken
    for the one a resumed run started with."""
    label = "shipped default" if model is None else str(model)
    folder = default_model() if model is None else Path(model)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        return label  # a hub id, or a folder that loading will reject
    return f"{label} (unet sha256 {file_sha256(weights)})"


DEFAULT_REAL_MODEL = "CompVis/stable-diffusion-v1-4"  # the paper's real-world model
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``: the first GPU when there is one, else the CPU. A device this machine does not have
    is a one-line error here, not a traceback once the model is on its way."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise OriginalityError(f"unknown device {str(device)!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OriginalityError(f"device {str(device)!r}: torch sees no CUDA GPU on this machine (use cpu or auto)")
        if chosen.index is not None and chosen.index >= count:
            raise OriginalityError(f"device {str(device)!r}: this machine has {count} CUDA GPU(s)")
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise OriginalityError(f"device {str(device)!r}: MPS is not available on this machine")
    elif chosen.type not in ("cpu", "cuda", "mps"):
        raise OriginalityError(f"device {str(device)!r} is not supported: use auto, cpu, cuda, cuda:N or mps")
    return chosen


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/"auto": fp32 on the CPU; bf16 on GPUs that have it (its fp32-sized exponent keeps the
    inversion's small gradients from underflowing, which fp16 without loss scaling risks), else fp16."""
    names = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in names:
        raise OriginalityError(f"unknown dtype {dtype!r}; use auto, fp32, fp16 or bf16")
    return names[dtype]


def is_hub_id(model: str) -> bool:
    """``owner/name`` that is not a local path: a Hugging Face hub id."""
    return bool(HUB_ID.match(model)) and not Path(model).exists()


def load_pipeline(
    model: str | Path | None = None,
    *,
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype | None = None,
    cache_dir: str | Path | None = None,
) -> StableDiffusionPipeline:
    """Load a Stable Diffusion pipeline: the shipped shapes model (``None``), a local folder, or a
    hub id such as ``CompVis/stable-diffusion-v1-4`` (downloaded to, or read offline from, the
    Hugging Face cache, ``cache_dir`` if given). Safetensors weights only; the safety checker is
    not loaded (the scorer never shows its samples to anyone but the user)."""
    quiet_libraries()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    kwargs = {}
    if model is not None and is_hub_id(str(model)):
        source: str | Path = str(model)
    else:
        source = default_model() if model is None else Path(model)
        if not source.exists():
            raise OriginalityError(f"model folder not found: {source}")
        _check_folder(source)
        reference = encoder_reference(source)
        if reference is not None:
            tokenizer = AutoTokenizer.from_pretrained(source / "tokenizer")
            _, encoder = load_text_encoder(reference, max_length=tokenizer.model_max_length)
            kwargs = {"text_encoder": encoder, "tokenizer": tokenizer}
    try:
        pipeline = StableDiffusionPipeline.from_pretrained(
            source,
            use_safetensors=True,
            safety_checker=None,
            requires_safety_checker=False,
            dtype=dtype,
            cache_dir=cache_dir,
            **kwargs,
        )
    except (OSError, ValueError) as exc:
        if isinstance(source, str):
            # The hub's own text points at a stack trace the user does not see.
            detail = str(exc).splitlines()[0].replace("Please check out the root cause in the stacktrace above.", "")
            raise OriginalityError(
                f"model {source!r} is no local folder, and no hub model of that id loads from the hub or the "
                f"cache {cache_dir or HF_HUB_CACHE} (offline, a wrong id, or no safetensors weights): {detail.strip()}"
            ) from exc
        raise OriginalityError(f"cannot load pipeline {source}: {str(exc).splitlines()[0]}") from exc
    check_text_encoder(pipeline, str(source))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def check_same_latent_space(pipeline, other, name: str = "the background model") -> None:
    """Refuse, in one line, a second model whose VAE is not the first's: a likelihood ratio between
    two models compares them in one latent space."""
    a, b = pipeline.vae, other.vae
    same = (
        a.config.scaling_factor == b.config.scaling_factor
        and a.state_dict().keys() == b.state_dict().keys()
        and all(torch.equal(x.cpu(), b.state_dict()[k].cpu()) for k, x in a.state_dict().items())
    )
    if not same:
        raise OriginalityError(f"{name} has another VAE than the model: their latent spaces differ")


def check_text_encoder(pipeline, name: str = "model") -> None:
    """Textual inversion needs a text encoder with an input embedding table."""
    encoder = getattr(pipeline, "text_encoder", None)
    table = None
    if encoder is not None and hasattr(encoder, "get_input_embeddings"):
        table = encoder.get_input_embeddings()
    if not isinstance(table, torch.nn.Embedding) or getattr(pipeline, "tokenizer", None) is None:
        raise OriginalityError(f"{name} has no text encoder embedding table (with a tokenizer) to learn tokens in")


@torch.no_grad()
def generate(
    pipeline: StableDiffusionPipeline,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int = 50,
    guidance_scale: float = 3.0,
    batch_size: int = 32,
) -> list[Image.Image]:
    """One image per (prompt, seed) pair, each reproducible from its seed alone.

    The prompts are encoded here, exactly as the inversion encodes its training prompts, and handed
    to the pipeline as embeddings. Passing text would let diffusers' textual-inversion loader
    rewrite it: a prompt holding ``<s*>`` is expanded to ``<s*> <s*>_1 ...`` for every
    ``<s*>_k`` the tokenizer knows, so an m-token prompt would silently pick up the vectors of
    larger, earlier inversions.
    """
    if len(prompts) != len(seeds):
        raise OriginalityError("generate needs one seed per prompt")
    images: list[Image.Image] = []
    device = pipeline.device
    dtype = pipeline.unet.dtype
    # The unconditional embedding is the same for every image: encoded once, sliced per chunk.
    uncond_all = encode_prompts(pipeline.tokenizer, pipeline.text_encoder, [""]).to(dtype)
    for start in range(0, len(prompts), batch_size):
        chunk_prompts = list(prompts[start : start + batch_size])
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[start : start + batch_size]]
        shape = (pipeline.unet.config.in_channels, pipeline.unet.config.sample_size, pipeline.unet.config.sample_size)
        latents = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device, dtype)
        cond = encode_prompts(pipeline.tokenizer, pipeline.text_encoder, chunk_prompts).to(dtype)
        uncond = uncond_all.expand(len(chunk_prompts), -1, -1)
        out = pipeline(
            prompt_embeds=cond,
            negative_prompt_embeds=uncond,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            latents=latents,
            height=pipeline.unet.config.sample_size * pipeline.vae_scale_factor,
            width=pipeline.unet.config.sample_size * pipeline.vae_scale_factor,
        )
        images.extend(out.images)
    return images
