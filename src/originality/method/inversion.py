"""Multi-token textual inversion (Gal et al. 2022, extended to m tokens as in Sec. 3.1).

Learn m new token embeddings S*_m (all initialised from the domain's initial token) with
which the frozen pipeline's UNet denoises the query image, prompted through templates
such as "a photo of {}". Done the efficient way:

* the query is encoded to latents once (posterior mean and std; a latent is sampled from
  them each step, as re-encoding would);
* the only optimised parameters are the m new vectors. They enter through a forward hook
  on the text encoder's input embedding, which swaps them in for the placeholder ids: no
  Adam state for the whole embedding table, no per-step restore of frozen rows, and the
  same code serves BERT (our shapes models) and CLIP (Stable Diffusion) encoders;
* each step encodes only the distinct prompts of its batch;
* horizontal flips are off by default: they change the image whose originality is measured;
* ``shift_views`` (off by default) trains on the query translated on its own plain background
  (:func:`shifted_views`): where the data place elements anywhere, as the shapes data do, the
  layout is no part of the concept, and a token that must reproduce one layout spends itself
  on it. A photo without a plain border has no room to move and is left as it is.

The placeholder tokens follow diffusers' multi-vector naming (``<s*>``, ``<s*>_1``, ...), so
the saved ``learned_embeds.safetensors`` (``{"<s*>": tensor(m, dim)}``) loads with
``pipeline.load_textual_inversion``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from PIL import Image
from safetensors.torch import save_file
from tqdm.auto import tqdm

from originality.errors import OriginalityError
from originality.models import text_encoders
from originality.runs import atomic_path

PLACEHOLDER = "<s*>"


def placeholder_tokens(m: int) -> list[str]:
    return [PLACEHOLDER] + [f"{PLACEHOLDER}_{i}" for i in range(1, m)]


def placeholder_phrase(m: int, length: int = 0) -> str:
    """The m placeholder tokens; with ``length`` > m, repeated in turn to fill that many positions.

    Repeating adds no vector: the phrase still carries m learned tokens, at a length of the
    model's own captions (method/search.py, ``phrase_length``).
    """
    tokens = placeholder_tokens(m)
    return " ".join(tokens[i % m] for i in range(max(length, m)))


@dataclass
class InversionSettings:
    steps: int = 2000  # paper: 2000
    batch_size: int = 20  # paper: 20
    lr: float = 5e-4  # paper: 5e-4
    templates: Sequence[str] = ("a photo of {}",)
    initializer: str = "house"
    flip: bool = False
    # Convergence stop (0 disables): every `check_every` steps compare the mean loss of the last
    # window with the window before; stop when it improved by less than `min_improvement`.
    check_every: int = 0
    min_improvement: float = 0.01
    # Cap on each learned vector's L2 norm, in units of the vocabulary's mean norm (0: none), so
    # that one number suits any text encoder. Unconstrained steps at a high lr push the learned
    # vectors past the vocabulary (results/inversion-ablation/).
    norm_cap: float = 0.0
    # Views of the query (itself, then translations on its background; 0 or 1: the query alone).
    shift_views: int = 0
    # Positions the m tokens fill in the prompt, repeated in turn (0: m; placeholder_phrase).
    phrase_length: int = 0
    # Recompute the UNet's activations in the backward pass instead of keeping them: more compute,
    # less memory (results/benchmarks: batch 20 at 512 px does not fit 24 GB without it).
    gradient_checkpointing: bool = False
    seed: int = 0


@dataclass
class Inversion:
    m: int
    embeddings: torch.Tensor  # (m, dim), float32, on the CPU
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    stopped_early: bool = False


def add_placeholders(pipeline, m: int) -> list[int]:
    """Make sure tokens ``<s*>``, ``<s*>_1``, ... (m of them) exist; return their ids."""
    tokenizer, encoder = pipeline.tokenizer, pipeline.text_encoder
    tokens = placeholder_tokens(m)
    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing)
        encoder.resize_token_embeddings(len(tokenizer))
    return tokenizer.convert_tokens_to_ids(tokens)


def initial_vector(pipeline, word: str) -> torch.Tensor:
    """The input embedding of the domain's initial token (mean of its pieces if it splits)."""
    ids = pipeline.tokenizer(word, add_special_tokens=False).input_ids
    if not ids:
        raise OriginalityError(f"initial token {word!r} is empty for this tokenizer")
    table = pipeline.text_encoder.get_input_embeddings().weight
    return table[torch.tensor(ids, device=table.device)].detach().float().mean(0)


def set_embeddings(pipeline, embeddings: torch.Tensor) -> None:
    """Write learned vectors into the placeholder rows, for generation through the pipeline."""
    ids = add_placeholders(pipeline, len(embeddings))
    table = pipeline.text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        table[torch.tensor(ids, device=table.device)] = embeddings.to(table.device, table.dtype)


def encode_prompts(pipeline, prompts: list[str]) -> torch.Tensor:
    """Prompt embeddings through the pipeline's own tokenizer and encoder."""
    return text_encoders.encode_prompts(pipeline.tokenizer, pipeline.text_encoder, prompts)


def shifted_views(image: Image.Image, count: int, seed: int = 0, tolerance: int = 24) -> list[Image.Image]:
    """``image`` itself, then ``count - 1`` random translations of it on its own background.

    The background is the median colour of the border; everything further from it than
    ``tolerance`` (summed over RGB) is content, and each shift keeps the whole content box in
    the frame, so no element is cut. Without a plain border (content touching every edge) every
    view is the image itself.
    """
    if count < 1:
        raise OriginalityError(f"views must be >= 1, got {count}")
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0).astype(np.int16)
    ys, xs = np.nonzero(np.abs(pixels - background).sum(-1) > tolerance)
    views = [image.convert("RGB")]
    if len(ys) == 0:
        return views * count
    (y0, y1), (x0, x1) = (ys.min(), ys.max() + 1), (xs.min(), xs.max() + 1)
    h, w = pixels.shape[:2]
    rng = np.random.default_rng([seed, 0x5EED])
    for _ in range(count - 1):
        dy = int(rng.integers(-y0, h - y1 + 1))
        dx = int(rng.integers(-x0, w - x1 + 1))
        moved = np.broadcast_to(background, pixels.shape).copy()
        moved[y0 + dy : y1 + dy, x0 + dx : x1 + dx] = pixels[y0:y1, x0:x1]
        views.append(Image.fromarray(moved.astype(np.uint8)))
    return views


def image_latents(pipeline, image: Image.Image, views: int = 0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of the query's latents, scaled by the VAE's scaling factor.

    One row per view (:func:`shifted_views`; ``views`` 0 or 1, as ``shift_views``: the query alone).
    """
    vae = pipeline.vae
    side = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    if image.size != (side, side):
        raise OriginalityError(f"query must be {side}x{side} for this model; got {image.width}x{image.height}")
    means, stds = [], []
    # One view at a time, each tensor laid out as it always was: the VAE's convolutions pick their
    # kernels by memory layout, and a batch would move the query's own latents by ~1e-7, enough to
    # flip a sample on the detector's edge in a run that should repeat an earlier one.
    for view in shifted_views(image, views, seed) if views > 1 else [image]:
        x = torch.from_numpy(np.asarray(view.convert("RGB"), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            dist = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
        means.append(dist.mean.float())
        stds.append(dist.std.float())
    scale = vae.config.scaling_factor
    return torch.cat(means) * scale, torch.cat(stds) * scale


@contextmanager
def deterministic_on_cpu(device: torch.device) -> Iterator[None]:
    """torch's deterministic kernels while inverting on the CPU, then the caller's setting again.

    The batch's prompt embeddings are rows picked by index, and on the CPU the backward of that
    pick sums rows in an order that varies with the threads' timing: with two threads, two runs
    of one seed ended a sample apart. One thread was already deterministic and stays bit for bit
    the same. GPUs are left alone (their deterministic mode needs a cuBLAS setting of its own).
    """
    if device.type != "cpu":
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def invert(
    pipeline,
    image: Image.Image,
    m: int,
    settings: InversionSettings,
    *,
    progress: bool = False,
    latents: tuple[torch.Tensor, torch.Tensor] | None = None,
    start: torch.Tensor | None = None,
) -> Inversion:
    """Learn ``m`` token embeddings that make the frozen ``pipeline`` reconstruct ``image``.

    ``start`` (k < m vectors, e.g. the (m-1)-token solution) warm-starts the first k tokens; the
    others start from the initial token, as all do by default.
    """
    if m < 1:
        raise OriginalityError(f"the number of tokens must be >= 1, got {m}")
    unet, encoder = pipeline.unet, pipeline.text_encoder
    device = unet.device
    ids = torch.tensor(add_placeholders(pipeline, m), device=device)
    views = max(settings.shift_views, 1)
    mean, std = latents if latents is not None else image_latents(pipeline, image, settings.shift_views, settings.seed)
    if len(mean) != views:
        raise OriginalityError(f"latents hold {len(mean)} views of the query; the settings ask for {views}")
    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    vectors = initial_vector(pipeline, settings.initializer).repeat(m, 1)
    if start is not None:
        if len(start) >= m:
            raise OriginalityError(f"a warm start needs fewer than {m} vectors, got {len(start)}")
        vectors[: len(start)] = start.to(vectors)
    learned = torch.nn.Parameter(vectors.to(device))
    optimizer = torch.optim.AdamW([learned], lr=settings.lr, weight_decay=0.0)
    embedding = encoder.get_input_embeddings()
    cap = settings.norm_cap * embedding.weight.detach().norm(dim=1).mean().item()

    def swap_in(_module, inputs, output):
        hits = inputs[0].unsqueeze(-1) == ids  # (batch, length, m)
        if not hits.any():
            return output
        replacement = hits.to(output.dtype) @ learned.to(output.dtype)  # rows of the learned vectors
        keep = (~hits.any(-1, keepdim=True)).to(output.dtype)
        return output * keep + replacement

    phrase = placeholder_phrase(m, settings.phrase_length)
    templates = [t.format(phrase) for t in settings.templates]
    generator = torch.Generator().manual_seed(settings.seed)
    result = Inversion(m=m, embeddings=learned.detach().cpu())
    with deterministic_on_cpu(device):
        hook = embedding.register_forward_hook(swap_in)
        states = [(p, p.requires_grad) for p in [*unet.parameters(), *encoder.parameters(), *pipeline.vae.parameters()]]
        for p, _ in states:
            p.requires_grad_(False)
        checkpointing = getattr(unet, "is_gradient_checkpointing", False)
        if settings.gradient_checkpointing and not checkpointing:
            unet.enable_gradient_checkpointing()
        try:
            bar = tqdm(range(settings.steps), desc=f"inverting m={m}", disable=not progress, leave=False)
            for step in bar:
                b = settings.batch_size
                which = torch.randint(len(templates), (b,), generator=generator)
                unique, inverse = torch.unique(which, return_inverse=True)
                cond = encode_prompts(pipeline, [templates[i] for i in unique.tolist()])[inverse.to(device)]
                noise_z = torch.randn((b, *mean.shape[1:]), generator=generator).to(device)
                if views > 1:  # drawn only then, so that one view keeps the random stream it always had
                    view = torch.randint(views, (b,), generator=generator).to(device)
                    z = mean[view] + std[view] * noise_z
                else:
                    z = mean + std * noise_z
                if settings.flip:
                    flip = torch.rand(b, generator=generator) < 0.5
                    z = torch.where(flip.to(device)[:, None, None, None], z.flip(-1), z)
                noise = torch.randn(z.shape, generator=generator).to(device)
                t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (b,), generator=generator).to(device)
                noisy = noise_scheduler.add_noise(z, noise, t)
                pred = unet(noisy.to(unet.dtype), t, encoder_hidden_states=cond.to(unet.dtype)).sample
                target = (
                    noise
                    if noise_scheduler.config.prediction_type == "epsilon"
                    else (noise_scheduler.get_velocity(z, noise, t))
                )
                loss = F.mse_loss(pred.float(), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if cap > 0:
                    with torch.no_grad():
                        learned.mul_(torch.clamp(cap / learned.norm(dim=1, keepdim=True), max=1.0))
                value = loss.detach().item()
                if not math.isfinite(value):
                    raise OriginalityError(f"inversion loss became {value} at step {step} (m={m}); lower the lr")
                result.losses.append(value)
                result.steps = step + 1
                if (
                    settings.check_every
                    and result.steps % settings.check_every == 0
                    and result.steps >= 2 * settings.check_every
                ):
                    k = settings.check_every
                    recent, before = np.mean(result.losses[-k:]), np.mean(result.losses[-2 * k : -k])
                    if before - recent < settings.min_improvement * before:
                        result.stopped_early = True
                        break
        finally:
            hook.remove()
            for p, flag in states:
                p.requires_grad_(flag)
            if settings.gradient_checkpointing and not checkpointing:
                unet.disable_gradient_checkpointing()
    result.embeddings = learned.detach().float().cpu()
    return result


@torch.no_grad()
def denoising_loss(
    pipeline,
    image: Image.Image,
    embeddings: torch.Tensor,
    *,
    template: str = "a photo of {}",
    samples: int = 64,
    seed: int = 0,
) -> float:
    """Mean denoising loss of ``embeddings`` on a fixed draw of latents, noise and timesteps.

    The training loss is noisy (random timesteps); this fixed draw compares two sets of
    vectors on equal terms. It says how well the tokens fit, not whether they reconstruct:
    that is judged on generated samples.
    """
    set_embeddings(pipeline, embeddings)
    mean, std = image_latents(pipeline, image)
    g = torch.Generator().manual_seed(seed)
    device = pipeline.unet.device
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    z = mean + std * torch.randn((samples, *mean.shape[1:]), generator=g).to(device)
    noise = torch.randn(z.shape, generator=g).to(device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (samples,), generator=g).to(device)
    cond = encode_prompts(pipeline, [template.format(placeholder_phrase(len(embeddings)))]).expand(samples, -1, -1)
    pred = pipeline.unet(scheduler.add_noise(z, noise, t), t, encoder_hidden_states=cond).sample
    return F.mse_loss(pred.float(), noise).item()


def save_embeddings(inversion: Inversion, path: str | Path) -> Path:
    """diffusers' format: ``{"<s*>": tensor(m, dim)}`` in a safetensors file."""
    with atomic_path(path) as tmp:
        save_file({PLACEHOLDER: inversion.embeddings.contiguous()}, tmp)
    return Path(path)
