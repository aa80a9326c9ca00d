"""The originality search: the fewest tokens that reconstruct the query in-distribution.

For m = 1..M: invert m tokens, generate N samples from the domain's prompt with them,
measure the mean distance to the query, run the in-distribution check. The image's
originality is the smallest m whose distance is <= the threshold and whose check passes,
or "+" when none within M does (Sec. 3.1, Fig. 4). By default the search stops at the first
passing m; ``full_curve`` runs every m.

Beside the count, ``soft_tokens`` places the query between counts: the m at which the
distance curve crosses the threshold, interpolated linearly between the last failing and
the first passing m (1.0 when m = 1 passes, M + 1 when none does). Each m also reports the
spread of the per-sample distances over the N seeds.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import diffusers
import numpy as np
import torch
import transformers
from PIL import Image

from originality import __version__
from originality.detection.detector import ElementDetector
from originality.domains import Domain, load_domain
from originality.errors import OriginalityError
from originality.method.distances import Distance, get_distance, reads_elements
from originality.method.in_distribution import Check, Verdict, get_check
from originality.method.inversion import (
    Inversion,
    InversionSettings,
    add_placeholders,
    image_latents,
    invert,
    placeholder_phrase,
)
from originality.method.query_reading import QueryReading, read_query
from originality.method.reconstruction import reconstruct
from originality.presets import from_preset


@dataclass
class ScoreConfig:
    """The defaults are the paper's numbers (the ``paper`` preset); ``score_preset`` names the others."""

    preset: str = "paper"
    max_tokens: int = 5  # M
    inversion_steps: int = 2000  # textual-inversion steps per m (paper: 2000)
    batch_size: int = 20  # paper: 20
    lr: float = 5e-4  # paper: 5e-4
    check_every: int = 0  # convergence stop (0: off)
    min_improvement: float = 0.01
    samples: int = 20  # N reconstructions per m (paper: 20)
    # None: the domain's (paper: 50 for the shapes models, 35 for Stable Diffusion).
    inference_steps: int | None = None
    guidance_scale: float = 3.0
    # "domain": the domain's own (elements / positions for shapes, dreamsim / editability for
    # real images). check None: no in-distribution check.
    distance: str = "domain"
    threshold: float | None = None  # None: the distance's default for the preset (THRESHOLDS)
    check: str | None = "domain"
    # Confidence at which the element detector reads samples (``elements`` distance, ``positions``
    # check). The paper keeps detections at >= 0.9.
    detector_threshold: float = 0.9
    # DreamSim (real images): its weights folder and variant; see method/dreamsim.py.
    dreamsim_cache: str | None = None
    dreamsim_type: str = "ensemble"
    # Editability check: the CLIP zero-shot classifier and the share of edited samples that must
    # show the concept.
    clip_model: str = "openai/clip-vit-base-patch32"
    min_editability: float = 0.5
    full_curve: bool = False
    flip: bool = False
    norm_cap: float = 0.0  # cap on each learned vector's norm, x the vocabulary's mean norm (0: none)
    # Invert on this many views of the query translated on its plain background (0: the query
    # alone; method/inversion.py, shifted_views).
    shift_views: int = 0
    # Fill this many prompt positions with the m tokens, repeated in turn (0: m positions). The
    # shapes models never saw a caption shorter than four words; a one-token prompt is far shorter.
    phrase_length: int = 0
    # Warm-start m tokens from the (m-1)-token solution plus one new initial token, instead of
    # m copies of the initial token (the paper).
    progressive: bool = False
    # Trade compute for memory in the inversion's backward pass (method/inversion.py).
    gradient_checkpointing: bool = False
    seed: int = 0
    # Familiarity signals beside the token count (method/signals.py): "none" (the token count
    # alone), "fast" (the signals alone: no inversion at all) or "all" (both, and the learned
    # tokens' gap); the percentiles are read against this many of the model's own samples.
    signals: str = "all"
    reference_samples: int = 64
    # Score a shapes query the detector could not read in full (method/query_reading.py) anyway.
    force: bool = False
    # The old spelling of inversion_steps: still taken for one release, with a warning.
    steps: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.steps is not None:
            warnings.warn(
                "ScoreConfig(steps=...) is deprecated and will be removed; use inversion_steps", FutureWarning, 3
            )
            self.inversion_steps, self.steps = self.steps, None

    def resolve(self, domain: Domain) -> ScoreConfig:
        """A copy with every "the domain's" / default setting filled in for ``domain``."""
        distance = domain.distance if self.distance == "domain" else self.distance
        check = domain.check if self.check == "domain" else self.check
        threshold = self.threshold
        if threshold is None:
            defaults = THRESHOLDS.get(distance, {})
            threshold = defaults.get(self.preset, defaults.get("paper"))
            if threshold is None:
                raise OriginalityError(f"distance {distance!r} has no default threshold; pass --threshold")
        steps = self.inference_steps or domain.inference_steps
        return dataclasses.replace(
            self, distance=distance, check=check, threshold=threshold, inference_steps=steps
        ).validate()

    def validate(self) -> ScoreConfig:
        if self.max_tokens < 1:
            raise OriginalityError(f"M (max tokens) must be >= 1, got {self.max_tokens}")
        if self.samples < 1 or self.inversion_steps < 1 or self.batch_size < 1:
            raise OriginalityError("samples, inversion steps and batch size must be >= 1")
        if self.shift_views < 0 or self.phrase_length < 0:
            raise OriginalityError("shift views and phrase length must be >= 0")
        if self.inference_steps is not None and self.inference_steps < 1:
            raise OriginalityError(f"inference steps must be >= 1, got {self.inference_steps}")
        if not 0 <= self.min_editability <= 1:
            raise OriginalityError(f"min editability must be in [0, 1], got {self.min_editability}")
        if not 0 < self.detector_threshold <= 1:
            raise OriginalityError(f"detector threshold must be in (0, 1], got {self.detector_threshold}")
        numbers = {
            "threshold": (self.threshold, 0.0, 1.0),
            "lr": (self.lr, 1e-12, 10.0),
            "guidance scale": (self.guidance_scale, 0.0, 100.0),
            "min improvement": (self.min_improvement, 0.0, 1.0),
            "norm cap": (self.norm_cap, 0.0, 100.0),
        }
        for label, (value, low, high) in numbers.items():
            if value is not None and not (math.isfinite(value) and low <= value <= high):
                raise OriginalityError(f"{label} must be a number in [{low:g}, {high:g}], got {value}")
        if self.signals not in SIGNAL_MODES:
            raise OriginalityError(f"unknown --signals {self.signals!r}; known: {', '.join(SIGNAL_MODES)}")
        if self.reference_samples < 2:
            raise OriginalityError(f"reference samples must be >= 2, got {self.reference_samples}")
        return self


SIGNAL_MODES = ("none", "fast", "all")

# Default pass thresholds per distance and preset. elements/quick: calibrated on the shipped model
# (results/calibration/): pass at half the share of exact samples its common captions draw.
# dreamsim: an uncalibrated placeholder; calibrate it on images known to be common before
# trusting a count.
THRESHOLDS: dict[str, dict[str, float]] = {
    "elements": {"paper": 0.5, "quick": 0.585},
    # shapes: >= 12 of 16 samples with the query's shape pair, chosen on min-tokens queries
    # (results/min-tokens/preregistration.md). Not a domain default.
    "shapes": {"paper": 0.25, "quick": 0.25},
    "ssim": {"paper": 0.5},
    "dreamsim": {"paper": 0.35},
}


def saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A ScoreConfig saved as a dict, with each setting added since then at its default: a run
    saved before a setting existed ran with the default, which keeps the behaviour it had. A
    config saved when inversion steps were called ``steps`` reads as the same config."""
    saved = dict(saved)
    if "inversion_steps" not in saved and saved.get("steps") is not None:
        saved["inversion_steps"], saved["steps"] = saved["steps"], None
    return {**{f.name: f.default for f in dataclasses.fields(ScoreConfig)}, **saved}


def score_preset(name: str, **overrides: Any) -> ScoreConfig:
    """``paper``: the paper's numbers. ``quick``: a CPU budget, calibrated on the shipped model."""
    presets = {
        "paper": ScoreConfig(preset="paper"),
        # A CPU budget, calibrated on calibration queries of the shipped model (results/calibration/
        # and results/inversion-ablation/): the fewest steps that reach the longer budgets' distance;
        # the norm capped where the paper's slower lr keeps one token, so it keeps the paper's reach
        # at a tenth of the steps; the detector's lowest confidence that still reads rendered images
        # exactly; a pass at half the exact share that true captions of common pairs reach.
        "quick": ScoreConfig(
            preset="quick",
            inversion_steps=300,
            batch_size=8,
            lr=5e-3,
            norm_cap=1.27,
            samples=16,
            inference_steps=25,
            detector_threshold=0.5,
        ),
    }
    return from_preset("scoring", presets, name, **overrides)


@dataclass
class TokenResult:
    m: int
    distance: float
    distance_std: float
    distances: list[float]
    in_distribution: Verdict | None
    passed: bool
    losses: list[float]
    inversion_steps: int
    stopped_early: bool
    seconds: dict[str, float]
    why: list[str] | None = None  # per sample, why it differs from the query (distances that read elements)


@dataclass
class OriginalityResult:
    image: str
    count: int | None  # None: "+" (not reconstructed within M tokens)
    soft_tokens: float | None
    per_m: list[TokenResult] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    # The familiarity signals beside the count (method/familiarity.py), when they were read.
    familiarity: dict[str, Any] | None = None
    # How the query was read (method/query_reading.py); ``unreadable``: why it was not scored.
    reading: dict[str, Any] | None = None
    unreadable: str | None = None
    forced: bool = False  # scored although the query was not read in full (--force)
    signals_only: bool = False  # --signals fast: the familiarity signals, no token count
    # In memory, not in result.json: the learned vectors ({m: (m, dim) tensor}, diffusers' "<s*>")
    # and the reconstructions of each m.
    learned: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)
    samples: dict[int, list[Image.Image]] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        if self.unreadable is not None:
            return "unreadable"
        if self.signals_only:
            return "signals only"
        return "+" if self.count is None else str(self.count)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(dataclasses.replace(self, learned={}, samples={}))
        del data["learned"], data["samples"]
        data["label"] = self.label
        return data


def soft_tokens(curve: list[tuple[int, float, bool]], threshold: float, max_tokens: int) -> float:
    """Interpolated token count at which the distance curve crosses the threshold."""
    previous: tuple[int, float] | None = None
    for m, distance, passed in curve:
        if passed:
            if previous is None or m == 1:
                return float(m)
            pm, pd = previous
            if pd == distance:
                return float(m)
            return pm + (m - pm) * (pd - threshold) / (pd - distance) if pd > threshold else float(m)
        previous = (m, distance)
    return float(max_tokens + 1)


def score(
    image: Image.Image,
    pipeline,
    config: ScoreConfig,
    domain: Domain | str = "shapes",
    *,
    distance: Distance | None = None,
    check: Check | None = None,
    name: str = "query",
    progress: bool = False,
    on_token: Callable[[TokenResult], None] | None = None,
    reading: QueryReading | None = None,
) -> OriginalityResult:
    """Score one image; the result holds the learned vectors and the samples in memory
    (``scorer.save_result`` writes them). ``originality.scorer.Scorer`` scores many images with
    one detector, distance and check; this function alone builds its own.

    ``distance`` and ``check`` default to the config's (resolved for the domain).
    A shapes query whose verdict would rest on a reading that misses part of it is not scored:
    its label is ``unreadable`` (``config.force`` scores it anyway). ``reading``: the query's
    reading when the caller made it (a scorer, with its one detector).
    """
    domain = load_domain(domain) if isinstance(domain, str) else domain
    if not is_resolved(config):
        config = config.resolve(domain)
    if reading is None and needs_reading(config, domain, distance):
        reading = read_query(image, domain, detector=shapes_detector(config))
    if distance is None or (check is None and config.check):
        built_distance, built_check = components(config, domain, device=pipeline.device)
        distance = distance or built_distance
        check = check or built_check
    seeds = sample_seeds(config)
    result = OriginalityResult(
        image=name,
        count=None,
        soft_tokens=float(config.max_tokens + 1),
        settings={"config": dataclasses.asdict(config), "domain": dataclasses.asdict(domain)},
        seeds=seeds,
        versions=library_versions(),
    )
    if reading is not None:
        result.reading = reading.to_dict()
        result.forced = not reading.readable and config.force
        if not reading.readable and not config.force:
            result.unreadable = reading.reason
            result.soft_tokens = None
            return result
    check_prompts_fit(pipeline, domain, config)
    curve = []
    latents = image_latents(pipeline, image, config.shift_views, config.seed)  # once for every m
    previous = None
    for m in range(1, config.max_tokens + 1):
        t0 = time.perf_counter()
        inversion, samples, split = invert_and_reconstruct(
            pipeline, image, m, config, domain, latents=latents, progress=progress, start=previous
        )
        previous = inversion.embeddings if config.progressive else None
        t1 = t0 + split["inversion"]
        t2 = time.perf_counter()
        explain = getattr(distance, "explain", None)
        d, why = explain(image, samples) if explain is not None else (distance(image, samples), None)
        t3 = time.perf_counter()
        verdict = None
        if check is not None:
            edits = _edit_renderer(pipeline, inversion.embeddings, config)
            verdict = check(image, samples, render=edits)
        t4 = time.perf_counter()
        mean = float(np.mean(d))
        passed = mean <= config.threshold and (verdict is None or verdict.passed)
        token = TokenResult(
            m=m,
            distance=mean,
            distance_std=float(np.std(d)),
            distances=[float(v) for v in d],
            in_distribution=verdict,
            passed=passed,
            losses=inversion.losses,
            inversion_steps=inversion.steps,
            stopped_early=inversion.stopped_early,
            seconds={"inversion": t1 - t0, "generation": t2 - t1, "distance": t3 - t2, "check": t4 - t3},
            why=why,
        )
        result.per_m.append(token)
        result.learned[m] = inversion.embeddings
        result.samples[m] = samples
        curve.append((m, mean, passed))
        if on_token:
            on_token(token)
        if passed and result.count is None:
            result.count = m
            if not config.full_curve:
                break
    result.soft_tokens = soft_tokens(curve, config.threshold, config.max_tokens)
    return result


def check_prompts_fit(pipeline, domain: Domain, config: ScoreConfig) -> None:
    """Every prompt the search writes with M learned tokens fits the tokenizer's positions. The
    tokenizer truncates a longer one, and the learned tokens, last in the templates, go first."""
    tokenizer = pipeline.tokenizer
    limit = getattr(tokenizer, "model_max_length", None)
    if not limit or limit > 100_000:  # a tokenizer without a limit
        return
    add_placeholders(pipeline, config.max_tokens)
    phrase = placeholder_phrase(config.max_tokens, config.phrase_length)
    edits = domain.edit_prompts if config.check == "editability" else ()
    for text in dict.fromkeys((*domain.templates, domain.prompt, *edits)):
        length = len(tokenizer(text.format(phrase)).input_ids)
        if length > limit:
            raise OriginalityError(
                f"the prompt {text!r} with {config.max_tokens} learned tokens takes {length} positions and the "
                f"text encoder reads {limit}: lower --max-tokens or use a domain with shorter templates"
            )


def is_resolved(config: ScoreConfig) -> bool:
    """Whether every "the domain's" or default setting of ``config`` is filled in."""
    return (
        config.distance != "domain"
        and config.check != "domain"
        and config.threshold is not None
        and config.inference_steps is not None
    )


def needs_reading(config: ScoreConfig, domain: Domain, distance: Distance | None = None) -> bool:
    """Whether a shapes verdict rests on the detector's reading of the query (no distance of the
    caller's own replaces the config's)."""
    return domain.name == "shapes" and distance is None and reads_elements(config.distance, config.check)


def sample_seeds(config: ScoreConfig) -> list[int]:
    """The N generation seeds of a score: fixed by the config's seed."""
    return [config.seed * 1000 + i for i in range(config.samples)]


def invert_and_reconstruct(
    pipeline,
    image: Image.Image,
    m: int,
    config: ScoreConfig,
    domain: Domain,
    *,
    latents: tuple | None = None,
    progress: bool = False,
    start=None,
) -> tuple[Inversion, list[Image.Image], dict[str, float]]:
    """One token count: learn m tokens for ``image`` (warm-started from ``start`` when given),
    then draw the N reconstructions."""
    settings = InversionSettings(
        steps=config.inversion_steps,
        batch_size=config.batch_size,
        lr=config.lr,
        templates=domain.templates,
        initializer=domain.initializer,
        flip=config.flip,
        check_every=config.check_every,
        min_improvement=config.min_improvement,
        norm_cap=config.norm_cap,
        shift_views=config.shift_views,
        phrase_length=config.phrase_length,
        gradient_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
    )
    t0 = time.perf_counter()
    inversion = invert(pipeline, image, m, settings, progress=progress, latents=latents, start=start)
    t1 = time.perf_counter()
    samples = reconstruct(
        pipeline,
        inversion.embeddings,
        sample_seeds(config),
        prompt=domain.prompt,
        steps=config.inference_steps or domain.inference_steps,
        guidance_scale=config.guidance_scale,
        phrase_length=config.phrase_length,
    )
    return inversion, samples, {"inversion": t1 - t0, "generation": time.perf_counter() - t1}


def components(config: ScoreConfig, domain: Domain, *, device=None, detector=None) -> tuple[Distance, Check | None]:
    """The distance and in-distribution check ``config`` names, built once; ``detector``: the
    caller's one element detector (else one is loaded here when they read elements)."""
    if not is_resolved(config):
        config = config.resolve(domain)
    detector = detector or shapes_detector(config)
    distance = get_distance(
        config.distance,
        detector=detector,
        cache_dir=config.dreamsim_cache,
        dreamsim_type=config.dreamsim_type,
        device=device,
    )
    check = None
    if config.check:
        check = get_check(
            config.check,
            detector=detector,
            domain=domain,
            clip_model=config.clip_model,
            min_fraction=config.min_editability,
            device=device,
        )
    return distance, check


def _edit_renderer(pipeline, embeddings, config: ScoreConfig) -> Callable[[str], list[Image.Image]]:
    """Samples of an edit prompt ("cat in {}") with the learned tokens, on the score's seeds."""

    def render(prompt: str) -> list[Image.Image]:
        return reconstruct(
            pipeline,
            embeddings,
            sample_seeds(config),
            prompt=prompt,
            steps=config.inference_steps,
            guidance_scale=config.guidance_scale,
            phrase_length=config.phrase_length,
        )

    return render


def shapes_detector(config: ScoreConfig):
    """One element detector shared by the ``elements`` / ``shapes`` distance and the ``positions`` check."""
    if not reads_elements(config.distance, config.check):
        return None

    return LastCallCache(ElementDetector.load(threshold=config.detector_threshold))


class LastCallCache:
    """A detector that remembers its last answer: the distance and the check of one token count
    read the same query and samples, so the second reading is free."""

    def __init__(self, detector):
        self.detector = detector
        self._last: tuple[tuple, list, list] | None = None

    def __getattr__(self, name: str):
        return getattr(self.detector, name)

    def detect(self, images, **kwargs):
        key = (tuple(id(im) for im in images), tuple(sorted(kwargs.items())))
        if self._last is None or self._last[0] != key:
            # The images are held with the key so that their ids cannot be reused meanwhile.
            self._last = (key, self.detector.detect(images, **kwargs), list(images))
        return self._last[1]


def library_versions() -> dict[str, str]:
    return {
        "originality": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
