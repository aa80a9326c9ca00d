"""Familiarity signals: how well a model's own denoiser knows an image, with no optimisation.

The paper's idea is that a model represents what it saw often more concisely. The token count
reads that through textual inversion (minutes per image); the denoiser reads it directly, in a
few batched UNet passes:

* :func:`unconditional_loss`: the noise-prediction error with the empty prompt.
* :func:`conditional_loss`: the same error with a prompt (the image's caption, or learned tokens).
* :func:`guidance_gap`: the size of what the prompt changes in the prediction,
  ``|eps(x_t, prompt) - eps(x_t, "")|``, the text-conditional noise magnitude of Wen et al.
  (ICLR 2024, "Detecting, Explaining, and Mitigating Memorization in Diffusion Models").

All three take the same arguments, ``(pipeline, latents, prompts, grid)``, and return one value
per image (lower: more familiar). They share one :class:`Grid` of timesteps and noises drawn
once per run from a seed, so two images are compared on the same noise draws (common random
numbers) and a difference between them is the model's, not the draw's. The query's latents are
its VAE posterior mean times the scaling factor, encoded once (:func:`query_latents`).
:func:`compute_signals` computes any subset in one pass, each prompt encoded once.

Cost: ``grid.size`` UNet evaluations per image for the unconditional loss; twice that for the
conditional loss or the guidance gap (the empty-prompt pass is shared among all three).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from originality.errors import OriginalityError
from originality.method.inversion import image_latents
from originality.models.text_encoders import encode_prompts

WEIGHTINGS = ("uniform", "elbo")
GAP_FORMS = ("norm", "squared")


@dataclass(frozen=True)
class SignalConfig:
    """The grid the signals are read on, and how readings over it become one number."""

    timesteps: int = 64  # evenly spaced from t_min to t_max
    t_min: int = 20
    t_max: int = 980
    noises: int = 1  # noise draws per timestep
    seed: int = 0
    # uniform: the plain mean over the grid; elbo: each timestep weighted by the drop in log-SNR it
    # covers (the variational bound's weighting, for an eps-prediction model)
    weighting: str = "uniform"
    gap: str = "norm"  # the guidance gap's per-timestep form: L2 norm, or its square
    batch_size: int = 64  # UNet rows per call

    def validate(self) -> SignalConfig:
        if self.timesteps < 1 or self.noises < 1 or self.batch_size < 1:
            raise OriginalityError("signal grid: timesteps, noises and batch size must be >= 1")
        if not 0 <= self.t_min <= self.t_max:
            raise OriginalityError(f"signal grid: need 0 <= t_min <= t_max, got {self.t_min}, {self.t_max}")
        if self.weighting not in WEIGHTINGS:
            raise OriginalityError(f"unknown weighting {self.weighting!r}; known: {', '.join(WEIGHTINGS)}")
        if self.gap not in GAP_FORMS:
            raise OriginalityError(f"unknown guidance gap form {self.gap!r}; known: {', '.join(GAP_FORMS)}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Grid:
    """The common random numbers of a run: timestep k of the grid with noise k, for every image."""

    config: SignalConfig
    timesteps: torch.Tensor  # (K,) long
    noise: torch.Tensor  # (K, C, H, W)
    alphas_cumprod: torch.Tensor  # (K,) at the grid's timesteps
    slope: torch.Tensor  # (K,) -d log SNR / dt at the grid's timesteps: the ELBO's weight
    prediction_type: str

    @property
    def size(self) -> int:
        return len(self.timesteps)

    def weights(self) -> torch.Tensor:
        """Per-row weights summing to 1: uniform, or the ELBO's ``-d log SNR / dt``."""
        if self.config.weighting == "uniform":
            return torch.full((self.size,), 1.0 / self.size)
        return self.slope / self.slope.sum()


def signal_grid(pipeline, config: SignalConfig | None = None) -> Grid:
    """The run's timesteps and noises, drawn from ``config.seed`` alone: the same for every image."""
    config = (config or SignalConfig()).validate()
    check_conditional(pipeline)
    scheduler = pipeline.scheduler.config
    top = int(scheduler.num_train_timesteps) - 1
    if config.t_max > top:
        raise OriginalityError(f"signal grid: t_max {config.t_max} is past this model's last timestep {top}")
    steps = torch.linspace(config.t_min, config.t_max, config.timesteps).round().long()
    timesteps = steps.repeat_interleave(config.noises)
    unet = pipeline.unet.config
    shape = (len(timesteps), unet.in_channels, unet.sample_size, unet.sample_size)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(config.seed))
    alphas = _alphas_cumprod(pipeline).double()
    log_snr = torch.log(alphas / (1 - alphas))
    slope = -torch.from_numpy(np.gradient(log_snr.numpy())).float()
    prediction = scheduler.get("prediction_type", "epsilon")
    return Grid(config, timesteps, noise, alphas.float()[timesteps], slope[timesteps], prediction)


def _alphas_cumprod(pipeline) -> torch.Tensor:
    alphas = getattr(pipeline.scheduler, "alphas_cumprod", None)
    if alphas is None:
        raise OriginalityError("the model's scheduler has no noise schedule (alphas_cumprod) to read signals on")
    return alphas.float().cpu()


def check_conditional(pipeline) -> None:
    """The signals compare prompted and unprompted predictions: the model needs a text path."""
    unet = getattr(pipeline, "unet", None)
    if unet is None or getattr(unet.config, "cross_attention_dim", None) is None:
        raise OriginalityError("the model has no text-conditioned UNet: the familiarity signals need one")
    if getattr(pipeline, "text_encoder", None) is None or getattr(pipeline, "tokenizer", None) is None:
        raise OriginalityError("the model has no text encoder and tokenizer: no empty-prompt path to read signals on")


def query_latents(pipeline, images: Sequence[Image.Image]) -> torch.Tensor:
    """Each image's VAE posterior mean times the scaling factor, one row per image."""
    return torch.cat([image_latents(pipeline, image)[0] for image in images])


def prompt_embeddings(pipeline, prompts: Sequence[str]) -> torch.Tensor:
    """Prompts through the pipeline's own encoder, each distinct one once; a prompt past the
    tokenizer's limit is truncated, with a warning that says so."""
    tokenizer = pipeline.tokenizer
    limit = tokenizer.model_max_length
    distinct = list(dict.fromkeys(prompts))
    for text in distinct:
        length = len(tokenizer(text).input_ids)
        if length > limit:
            warnings.warn(
                f"prompt of {length} tokens truncated to the tokenizer's {limit}: {text[:60]!r}", stacklevel=2
            )
    encoded = encode_prompts(tokenizer, pipeline.text_encoder, distinct)
    index = {text: i for i, text in enumerate(distinct)}
    return encoded[torch.tensor([index[p] for p in prompts])]


@torch.no_grad()
def readings(
    pipeline,
    latents: torch.Tensor,
    prompts: Sequence[str] | None,
    grid: Grid,
    *,
    conditional: bool = True,
) -> dict[str, torch.Tensor]:
    """Per image and grid row: ``unconditional`` and (with ``conditional``) ``conditional`` squared
    errors, and ``gap``, the L2 norm of the prompted minus the unprompted prediction; each (B, K).

    Predictions are compared in noise (eps) space whatever the model predicts (v-prediction is
    converted), so the numbers mean the same on SD 1.x and 2.x."""
    if conditional and (prompts is None or len(prompts) != len(latents)):
        raise OriginalityError("the prompted signals need one prompt per image")
    unet = pipeline.unet
    device, dtype = unet.device, unet.dtype
    k = grid.size
    empty = prompt_embeddings(pipeline, [""]).to(device, dtype)
    cond = prompt_embeddings(pipeline, list(prompts)).to(device, dtype) if conditional else None
    a = grid.alphas_cumprod.view(-1, 1, 1, 1)
    out: dict[str, list[torch.Tensor]] = {"unconditional": [], "conditional": [], "gap": []}
    rows = max(1, grid.config.batch_size)
    for b in range(len(latents)):
        x0 = latents[b : b + 1].float().cpu()
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * grid.noise  # (K, C, H, W)
        parts: dict[str, list[torch.Tensor]] = {"unconditional": [], "conditional": [], "gap": []}
        for start in range(0, k, rows):
            sl = slice(start, start + rows)
            x_t, t, noise, a_t = noisy[sl], grid.timesteps[sl], grid.noise[sl], a[sl]
            eps_u = _eps(unet, x_t, t, empty.expand(len(t), -1, -1), a_t, grid.prediction_type)
            parts["unconditional"].append((eps_u - noise).square().mean(dim=(1, 2, 3)))
            if cond is not None:
                eps_c = _eps(unet, x_t, t, cond[b : b + 1].expand(len(t), -1, -1), a_t, grid.prediction_type)
                parts["conditional"].append((eps_c - noise).square().mean(dim=(1, 2, 3)))
                parts["gap"].append((eps_c - eps_u).flatten(1).norm(dim=1))
        for name, chunks in parts.items():
            if chunks:
                out[name].append(torch.cat(chunks))
    return {name: torch.stack(values) for name, values in out.items() if values}


def _eps(unet, x_t, t, context, a_t, prediction_type: str) -> torch.Tensor:
    device, dtype = unet.device, unet.dtype
    pred = unet(x_t.to(device, dtype), t.to(device), encoder_hidden_states=context).sample.float().cpu()
    if prediction_type == "epsilon":
        return pred
    if prediction_type == "v_prediction":  # v = sqrt(a) eps - sqrt(1 - a) x0  =>  eps = sqrt(a) v + sqrt(1 - a) x_t
        return a_t.sqrt() * pred + (1 - a_t).sqrt() * x_t.float()
    raise OriginalityError(f"signals need an eps- or v-prediction model, not {prediction_type!r}")


def aggregate(values: torch.Tensor, grid: Grid) -> np.ndarray:
    """(B, K) readings to one number per image, with the grid's weighting."""
    return (values * grid.weights()).sum(dim=1).numpy().astype(float)


# -- the signals, one entry each ---------------------------------------------------------------------
NEEDS = ("nothing", "prompt")  # "prompt": the user's, else the query's reading (automatic on shapes)


@dataclass(frozen=True)
class Signal:
    """One familiarity signal: everything the tool says and does about it, in one place.

    ``reduce`` takes :func:`readings`' per-timestep values (each (B, K)) and the grid's per-row
    weights (K,), and returns one value per image, lower meaning more familiar."""

    name: str
    needs: str  # one of NEEDS
    reads: tuple[str, ...]  # the per-timestep readings it uses: unconditional, conditional, gap
    reduce: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]
    meaning: str  # one line for the reports
    unet_passes: int  # UNet evaluations per grid row (the empty-prompt pass is shared by all)
    headline: bool = False  # the one a report leads with


REGISTRY: dict[str, Signal] = {}


def register(signal: Signal) -> Signal:
    """Add a signal: the scorer, the reference, the reports and the signals experiment all read it."""
    if signal.needs not in NEEDS:
        raise OriginalityError(f"signal {signal.name!r}: needs is one of {', '.join(NEEDS)}")
    REGISTRY[signal.name] = signal
    return signal


def signal_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def headline() -> str:
    return next((s.name for s in REGISTRY.values() if s.headline), next(iter(REGISTRY)))


def needs_prompt(names: Sequence[str]) -> bool:
    return any(REGISTRY[n].needs == "prompt" for n in names)


def _weighted(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum(dim=1)


register(
    Signal(
        "unconditional_loss",
        "nothing",
        ("unconditional",),
        lambda raw, w: _weighted(raw["unconditional"], w),
        "how well the model predicts the image's noise with no prompt",
        unet_passes=1,
    )
)
register(
    Signal(
        "conditional_loss",
        "prompt",
        ("conditional",),
        lambda raw, w: _weighted(raw["conditional"], w),
        "how well it predicts the noise with the prompt",
        unet_passes=2,
    )
)
register(
    Signal(
        "guidance_gap",
        "prompt",
        ("gap",),
        lambda raw, w: _weighted(raw["gap"], w),
        "how much the prompt changes the model's prediction (lower: the model expects this image)",
        unet_passes=2,
        headline=True,
    )
)


def compute_signals(
    pipeline,
    latents: torch.Tensor,
    prompts: Sequence[str] | None,
    grid: Grid,
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """The signals ``names`` (default: every registered one) for every image, from one shared pass
    (the empty prompt's once)."""
    names = signal_names() if names is None else names
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise OriginalityError(f"unknown signal {unknown[0]!r}; known: {', '.join(REGISTRY)}")
    raw = readings(pipeline, latents, prompts, grid, conditional=needs_prompt(names))
    return {name: from_readings(raw, name, grid) for name in names}


def from_readings(raw: dict[str, torch.Tensor], name: str, grid: Grid) -> np.ndarray:
    """One signal from :func:`readings`' per-timestep values, with the grid's weighting and gap form."""
    if grid.config.gap == "squared" and "gap" in raw:
        raw = {**raw, "gap": raw["gap"].square()}
    return REGISTRY[name].reduce(raw, grid.weights()).numpy().astype(float)


def unconditional_loss(pipeline, latents: torch.Tensor, prompts: Sequence[str] | None, grid: Grid) -> np.ndarray:
    """Mean noise-prediction error with the empty prompt (``prompts`` unused)."""
    return compute_signals(pipeline, latents, prompts, grid, ["unconditional_loss"])["unconditional_loss"]


def conditional_loss(pipeline, latents: torch.Tensor, prompts: Sequence[str] | None, grid: Grid) -> np.ndarray:
    """Mean noise-prediction error with each image's prompt."""
    return compute_signals(pipeline, latents, prompts, grid, ["conditional_loss"])["conditional_loss"]


def guidance_gap(pipeline, latents: torch.Tensor, prompts: Sequence[str] | None, grid: Grid) -> np.ndarray:
    """Mean size of what each image's prompt changes in the predicted noise."""
    return compute_signals(pipeline, latents, prompts, grid, ["guidance_gap"])["guidance_gap"]


def percentile(value: float, reference: Sequence[float]) -> float:
    """The share (0-100) of ``reference`` values above ``value``, ties counted half: with lower
    meaning more familiar, "more familiar than this share of the reference"."""
    ref = np.asarray(reference, dtype=float)
    if len(ref) == 0:
        raise OriginalityError("no reference values to place a signal against")
    return float(100.0 * ((ref > value).sum() + 0.5 * (ref == value).sum()) / len(ref))
