"""A query's familiarity to the model: the signals, their prompt, and where they fall among the
model's own samples.

The signals that need a prompt (``needs="prompt"`` in :data:`~originality.method.signals.REGISTRY`) read the query
with, in this order:

1. ``user``: a prompt the user gives (``--prompt``, or a ``prompt`` / ``caption`` column);
2. ``reading``: the caption the domain can read off the query (shapes: the detector's reading);
3. ``tokens``: the learned tokens of an inversion that ran (prompt-free: the paper's setting);
4. ``domain``: the domain's prompt with its initial word.

A raw loss means nothing to a reader, so each value is also placed against a :class:`Reference`:
the same signals on K images the model draws by itself (seeded, cached per model). The
percentile reads "more familiar than this share of what the model draws by itself", and it
compares like with like: a signal that needs a prompt is placed only among reference samples
whose prompt came from the same source as the query's (on shapes, samples the detector read,
drawn until K of them are read; a user's prompt is placed among those too, the nearest kind).
A signal that needs nothing is placed among every sample drawn.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file
from tqdm.auto import tqdm

from originality.detection.detector import ElementDetector
from originality.domains import Domain
from originality.errors import OriginalityError
from originality.method.inversion import PLACEHOLDER, placeholder_phrase, set_embeddings
from originality.method.signals import (
    REGISTRY,
    SignalConfig,
    compute_signals,
    from_readings,
    percentile,
    query_latents,
    readings,
    signal_grid,
    signal_names,
)
from originality.models.pipeline import generate
from originality.runs import read_json, write_json
from originality.shapes.captions import caption

REFERENCE_SEED = 9_000_000  # the reference samples' seeds: apart from the scorer's and the experiments'
REFERENCE_VERSION = 2  # 2: drawn until K samples are read, each with its prompt's source
MAX_DRAWS = 8  # at most this many times K samples are drawn in search of K read ones


def reading_prompt(
    domain: Domain, detector, threshold: float | None = None
) -> Callable[[Image.Image], str | None] | None:
    """What the domain can read off an image as a prompt, or None when it reads nothing (real
    domains). Shapes: the detector's elements (at ``threshold``, else the detector's own) as a
    caption; None for an image it reads empty."""
    if domain.name != "shapes" or detector is None:
        return None
    options = {} if threshold is None else {"threshold": threshold}

    def read(image: Image.Image) -> str | None:
        found = detector.detect([image], **options)[0]
        return caption([d.element for d in found]) if found else None

    return read


def domain_prompt(domain: Domain) -> str:
    return domain.prompt.format(domain.initializer)


def choose_prompt(
    image: Image.Image,
    domain: Domain,
    *,
    user: str | None = None,
    read: Callable[[Image.Image], str | None] | None = None,
    tokens: int | None = None,
) -> tuple[str, str]:
    """(prompt, source) by the order in the module's docstring; ``tokens``: m of the learned
    tokens in the pipeline, when an inversion ran."""
    if user:
        return user, "user"
    if read is not None and (text := read(image)):
        return text, "reading"
    if tokens:
        return domain.prompt.format(placeholder_phrase(tokens)), "tokens"
    return domain_prompt(domain), "domain"


@dataclass
class Reference:
    """The signals of K images the model draws by itself: what a query's percentile is read against."""

    model: str
    settings: dict[str, Any]
    values: dict[str, list[float]]
    prompts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # per grid timestep, the mean of each reading over the samples (what a signal can be normalised by)
    timestep_means: dict[str, list[float]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # where each sample's prompt came from
    drawn: int = 0

    def comparable(self, name: str, source: str) -> list[float]:
        """The reference values a query's ``name`` is placed among, given its prompt's ``source``."""
        values = self.values.get(name, [])
        signal = REGISTRY.get(name)
        if signal is not None and signal.needs == "nothing":
            return values
        want = "reading" if source == "user" and "reading" in self.sources else source
        if want == "user":
            want = "domain"  # no sample was read (real images): the domain's prompt is the reference's
        return [v for v, s in zip(values, self.sources, strict=True) if s == want]

    def percentiles(self, signals: dict[str, float], source: str = "reading") -> dict[str, float]:
        """Each signal's percentile among its comparable samples (none with fewer than two)."""
        out = {}
        for name, value in signals.items():
            pool = self.comparable(name, source)
            if len(pool) >= 2:
                out[name] = percentile(value, pool)
        return out

    def used(self, signals: dict[str, float], source: str = "reading") -> dict[str, int]:
        return {name: len(self.comparable(name, source)) for name in signals}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def reference_settings(config: SignalConfig, domain: Domain, samples: int, steps: int, guidance: float) -> dict:
    """What a reference depends on beside the model: it is reused only where these match."""
    prompt = "" if domain.name == "shapes" else domain_prompt(domain)
    return {
        "grid": config.to_dict(),
        "samples": samples,
        "prompt": prompt,
        "inference_steps": steps,
        "guidance_scale": guidance,
        "seed": REFERENCE_SEED,
        "domain": domain.name,
        "signals": list(signal_names()),  # a reference without a registered signal is drawn again
        "version": REFERENCE_VERSION,
    }


def load_reference(path: str | Path, model: str, settings: dict[str, Any]) -> Reference | None:
    """The cached reference at ``path``; None when absent. One made by another model, or with other
    settings, is refused rather than silently mixed in."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        saved = read_json(path)
        reference = Reference(**saved)
    except (ValueError, TypeError) as exc:
        raise OriginalityError(f"{path} is not a signal reference ({exc}); remove it or choose another") from exc
    if not _finite_lists(reference.values) or not _finite_lists(reference.timestep_means):
        raise OriginalityError(
            f"{path} holds values that are not finite numbers; remove it to draw the reference again"
        )
    if reference.model != model:
        raise OriginalityError(f"{path} holds a signal reference made by another model ({str(reference.model)[:40]})")
    redrawn = ("signals", "version")  # a reference of an older kind is drawn again, never used as it is
    others = {k: v for k, v in settings.items() if k not in redrawn}
    if {k: v for k, v in reference.settings.items() if k not in redrawn} != others:
        raise OriginalityError(f"{path} holds a signal reference made with other settings; remove it or choose another")
    wanted = settings.get("signals")
    if any(reference.settings.get(k) != settings.get(k) for k in redrawn) or set(reference.values) != set(wanted or ()):
        return None
    if len(reference.sources) != len(reference.prompts) or any(
        len(v) != len(reference.sources) for v in reference.values.values()
    ):
        raise OriginalityError(f"{path} is damaged (its samples, prompts and values differ in number); remove it")
    return reference


def _finite_lists(values: Any) -> bool:
    """A mapping of names to lists of finite numbers (not bools, not strings)."""
    if not isinstance(values, dict):
        return False
    return all(
        isinstance(v, list)
        and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v)
        for v in values.values()
    )


def build_reference(
    pipeline,
    domain: Domain,
    *,
    model: str,
    config: SignalConfig,
    samples: int,
    steps: int,
    guidance: float,
    read: Callable[[Image.Image], str | None] | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
) -> Reference:
    """Sample ``samples`` images (the empty prompt for shapes, the domain's prompt otherwise),
    read their signals as a query's would be read, and cache them at ``cache``."""
    settings = reference_settings(config, domain, samples, steps, guidance)
    if cache is not None and (found := load_reference(cache, model, settings)) is not None:
        return found
    if samples < 2:
        raise OriginalityError(f"a signal reference needs >= 2 samples, got {samples}")
    started = time.perf_counter()
    # Shapes: the samples the detector reads are what a read query is compared with; draw until K.
    target = "reading" if read is not None else "domain"
    images: list[Image.Image] = []
    prompts: list[str] = []
    sources: list[str] = []
    bar = tqdm(total=samples, desc="signal reference: the model's own samples", disable=not progress)
    while (counted := sources.count(target)) < samples and len(images) < MAX_DRAWS * samples:
        seeds = [REFERENCE_SEED + len(images) + i for i in range(min(32, samples - counted))]
        for image in generate(pipeline, [settings["prompt"]] * len(seeds), seeds, steps=steps, guidance_scale=guidance):
            prompt, source = choose_prompt(image, domain, read=read)
            images.append(image)
            prompts.append(prompt)
            sources.append(source)
        bar.update(min(samples, sources.count(target)) - bar.n)
    bar.close()
    grid = signal_grid(pipeline, config)
    raw = readings(pipeline, query_latents(pipeline, images), prompts, grid)
    reference = Reference(
        model=model,
        settings=settings,
        values={name: [float(x) for x in from_readings(raw, name, grid)] for name in signal_names()},
        prompts=prompts,
        seconds=time.perf_counter() - started,
        timestep_means={name: [float(x) for x in v.mean(dim=0)] for name, v in raw.items()},
        sources=sources,
        drawn=len(images),
    )
    if cache is not None:
        write_json(cache, reference.to_dict())
    return reference


def familiarity(
    pipeline,
    image: Image.Image,
    domain: Domain,
    *,
    config: SignalConfig | None = None,
    user_prompt: str | None = None,
    read: Callable[[Image.Image], str | None] | None = None,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """The query's signals, the prompt they used and its source, and their percentiles against
    ``reference``. Seconds per part are recorded: the cost of the signals."""
    config = config or SignalConfig()
    grid = signal_grid(pipeline, config)
    started = time.perf_counter()
    latents = query_latents(pipeline, [image])
    prompt, source = choose_prompt(image, domain, user=user_prompt, read=read)
    chosen = time.perf_counter()
    raw = readings(pipeline, latents, [prompt], grid)
    signals = {name: float(from_readings(raw, name, grid)[0]) for name in signal_names()}
    done = time.perf_counter()
    out: dict[str, Any] = {
        "signals": signals,
        "prompt": prompt,
        "prompt_source": source,
        "grid": config.to_dict(),
        "unet_evaluations": 2 * grid.size,
        "seconds": {"prompt": chosen - started, "signals": done - chosen},
    }
    if reference is not None:
        out["percentiles"] = reference.percentiles(signals, source)
        out["reference"] = {
            "samples": reference.settings["samples"],
            "prompt": reference.settings["prompt"],
            "drawn": reference.drawn,
            "read": reference.sources.count("reading"),
            "used": reference.used(signals, source),  # the samples each percentile was read among
        }
    return out


def likelihood_ratio(pipeline, background, image: Image.Image, config: SignalConfig | None = None) -> float:
    """The unconditional loss of ``pipeline`` minus ``background``'s on one grid and noise: how much
    better the model predicts the image than a model trained on everything but the frequencies
    (both on one VAE, so that they read one latent). Lower: more familiar to the model."""
    config = config or SignalConfig()
    latents = query_latents(pipeline, [image])
    target = compute_signals(pipeline, latents, None, signal_grid(pipeline, config), ["unconditional_loss"])
    other = compute_signals(background, latents, None, signal_grid(background, config), ["unconditional_loss"])
    return float(target["unconditional_loss"][0] - other["unconditional_loss"][0])


def learned_token_gaps(
    pipeline, image: Image.Image, domain: Domain, learned: dict[str, torch.Tensor], config: SignalConfig | None = None
) -> dict[str, float]:
    """The guidance gap of each set of learned tokens (``{"m1": vectors, ...}``) with the domain's
    reconstruction prompt: the prompt-free reading, the paper's setting."""
    grid = signal_grid(pipeline, config or SignalConfig())
    latents = query_latents(pipeline, [image])
    gaps = {}
    for key, vectors in learned.items():
        set_embeddings(pipeline, vectors)
        text = domain.prompt.format(placeholder_phrase(len(vectors)))
        gaps[key] = float(compute_signals(pipeline, latents, [text], grid, ["guidance_gap"])["guidance_gap"][0])
    return gaps


class SignalReader:
    """The familiarity of each image of a run: one reference per domain (cached in ``cache_dir``).
    ``detector``: a function that returns the run's one element detector (loaded when a shapes
    reference first needs it); ``steps``: the sampler steps of a domain's reference samples."""

    def __init__(
        self,
        pipeline,
        *,
        model: str,
        samples: int,
        steps: int | Callable[[Domain], int],
        guidance: float,
        detector: Callable[[], Any] | None = None,
        detector_threshold: float = 0.5,
        cache_dir: str | Path | None = None,
        config: SignalConfig | None = None,
        progress: bool = True,
    ):
        self.pipeline, self.model, self.config = pipeline, model, config or SignalConfig()
        self.samples, self.steps, self.guidance = samples, steps, guidance
        self.detector_threshold, self.cache_dir, self.progress = detector_threshold, cache_dir, progress
        self._references: dict[str, Reference] = {}
        self._detector = detector
        self._loaded = None

    def _get_detector(self):
        if self._detector is not None:
            return self._detector()
        if self._loaded is None:
            self._loaded = ElementDetector.load(threshold=self.detector_threshold)
        return self._loaded

    def _read(self, domain: Domain) -> Callable[[Image.Image], str | None] | None:
        if domain.name != "shapes":
            return None
        return reading_prompt(domain, self._get_detector(), self.detector_threshold)

    def reference(self, domain: Domain) -> Reference:
        if domain.name not in self._references:
            cache = None if self.cache_dir is None else Path(self.cache_dir) / f"reference-{domain.name}.json"
            steps = self.steps(domain) if callable(self.steps) else self.steps
            self._references[domain.name] = build_reference(
                self.pipeline,
                domain,
                model=self.model,
                config=self.config,
                samples=self.samples,
                steps=steps,
                guidance=self.guidance,
                read=self._read(domain),
                cache=cache,
                progress=self.progress,
            )
        return self._references[domain.name]

    def __call__(
        self, image: Image.Image, domain: Domain, *, prompt: str | None = None, reading: str | None = None
    ) -> dict[str, Any]:
        """The query's familiarity; ``reading``: the caption its reading gave (read once by the caller;
        "" when it read nothing), used as the prompt when the user gives none."""
        if prompt:
            read = None
        elif reading is not None:
            read = lambda _image: reading or None  # noqa: E731  the caller's one reading, not a second detection
        else:
            read = self._read(domain)
        return familiarity(
            self.pipeline,
            image,
            domain,
            config=self.config,
            user_prompt=prompt,
            read=read,
            reference=self.reference(domain),
        )

    def learned(self, image: Image.Image, domain: Domain, learned: dict[str, torch.Tensor]) -> dict[str, float]:
        started = time.perf_counter()
        gaps = learned_token_gaps(self.pipeline, image, domain, learned, self.config)
        return {"gaps": gaps, "seconds": time.perf_counter() - started}


def learned_vectors(folder: Path, counts: Sequence[int]) -> dict[str, torch.Tensor]:
    """The learned vectors a score saved, for each m in ``counts`` it has (``{"m1": ...}``)."""
    out = {}
    for m in dict.fromkeys(counts):
        path = folder / "embeddings" / f"learned_embeds_m{m}.safetensors"
        if path.is_file():
            out[f"m{m}"] = load_file(path)[PLACEHOLDER]
    return out
