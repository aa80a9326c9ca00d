"""One scorer per command: everything a score is made with, built once and shared by every image.

A :class:`Scorer` holds the pipeline, the config (resolved once per domain), **one** element
detector (the query's reading, the ``elements`` distance, the ``positions`` check, the signals'
prompt and the reference samples all read with it), the distance and the check of each domain,
and the familiarity reader with its reference. Per image it reads the query **once** and hands
that reading to the verdict, to the signals' prompt and to the report::

    scorer = Scorer(load_pipeline(), score_preset("quick"))
    result = scorer.score(load_query("q.png", scorer.side), name="q.png")
    scorer.save(result, image, "scores/q")      # result.json, embeddings, grids, report.html

``result.learned`` holds the learned vectors in memory (``{m: tensor}``), ``result.samples`` the
reconstructions: nothing is written to disk to be read back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PIL import Image
from safetensors.torch import save_file

from originality import runs
from originality.detection.detector import ElementDetector
from originality.domains import Domain, load_domain
from originality.errors import OriginalityError
from originality.method.calibrated import FrequencyCalibration
from originality.method.distances import Distance, reads_elements
from originality.method.familiarity import SignalReader, likelihood_ratio
from originality.method.in_distribution import Check
from originality.method.inversion import PLACEHOLDER
from originality.method.query_reading import QueryReading, read_query
from originality.method.search import (
    LastCallCache,
    OriginalityResult,
    ScoreConfig,
    components,
    library_versions,
    score,
)
from originality.method.signals import REGISTRY, SignalConfig
from originality.method.typicality import TypicalityCheck
from originality.report.grids import image_grid
from originality.report.html import score_report
from originality.shapes.captions import caption, parse_caption

RESULT_SCHEMA = 2  # result.json and results.jsonl; 2: status, key, prompt, signals-only results as results


class Scorer:
    """See the module's docstring. ``distance`` / ``check``: the caller's own, in place of the
    config's (tests, benchmarks); ``model``: the model's identity as runs record it; ``cache_dir``:
    where the signals' reference is cached."""

    def __init__(
        self,
        pipeline,
        config: ScoreConfig,
        *,
        model: str | None = None,
        cache_dir: str | Path | None = None,
        distance: Distance | None = None,
        check: Check | None = None,
        background=None,
        signal_config: SignalConfig | None = None,
        progress: bool = False,
    ):
        self.pipeline, self.config, self.progress = pipeline, config, progress
        # A second model on the same VAE: the likelihood ratio (``method/familiarity.py``).
        self.background = background
        self.signal_config = signal_config  # the signals' grid (None: SignalConfig's defaults)
        # A pipeline built in memory has no folder: Path("") would be the working directory.
        name = str(pipeline.config.get("_name_or_path") or "")
        folder = name if name and Path(name).is_dir() else None
        self.calibration = FrequencyCalibration.load(folder) if folder else None
        self.typicality = TypicalityCheck.load(folder) if folder else None  # set on this model, if at all
        self.model = model or str(pipeline.config.get("_name_or_path", "unrecorded"))
        self.cache_dir = cache_dir
        self.distance, self.check = distance, check
        self._domains: dict[str, Domain] = {}
        self._resolved: dict[str, ScoreConfig] = {}
        self._parts: dict[str, tuple[Distance, Check | None]] = {}
        self._detector: LastCallCache | None = None
        self._signals: SignalReader | None = None

    @property
    def side(self) -> int:
        """The query side the model sees, in pixels."""
        return self.pipeline.unet.config.sample_size * self.pipeline.vae_scale_factor

    # -- built once ----------------------------------------------------------------------------------
    def domain(self, name: str | Domain | None = "shapes") -> Domain:
        if isinstance(name, Domain):
            return name
        key = name or "shapes"
        if key not in self._domains:
            self._domains[key] = load_domain(key)
        return self._domains[key]

    def resolved(self, domain: Domain) -> ScoreConfig:
        if domain.name not in self._resolved:
            self._resolved[domain.name] = self.config.resolve(domain)
        return self._resolved[domain.name]

    def detector(self) -> LastCallCache:
        """The one element detector of this scorer (loaded when first needed)."""
        if self._detector is None:
            self._detector = LastCallCache(ElementDetector.load(threshold=self.config.detector_threshold))
        return self._detector

    def parts(self, domain: Domain) -> tuple[Distance, Check | None]:
        """The distance and the check for ``domain``: the caller's, else the config's, built once."""
        config = self.resolved(domain)
        if domain.name not in self._parts:
            needs_own = self.distance is None or (self.check is None and config.check)
            built: tuple[Distance | None, Check | None] = (None, None)
            if needs_own:
                uses_detector = reads_elements(config.distance, config.check)
                detector = self.detector() if uses_detector else None
                built = components(config, domain, device=self.pipeline.device, detector=detector)
            self._parts[domain.name] = (self.distance or built[0], self.check or built[1])
        return self._parts[domain.name]

    def signal_reader(self) -> SignalReader:
        if self._signals is None:
            self._signals = SignalReader(
                self.pipeline,
                model=self.model,
                samples=self.config.reference_samples,
                steps=lambda domain: self.resolved(domain).inference_steps,
                guidance=self.config.guidance_scale,
                detector=self.detector,
                detector_threshold=self.config.detector_threshold,
                cache_dir=self.cache_dir,
                config=self.signal_config,
                progress=self.progress,
            )
        return self._signals

    # -- per image -------------------------------------------------------------------------------------
    def read(self, image: Image.Image, domain: Domain, prompt: str | None = None) -> QueryReading | None:
        """The query's reading where something rests on it: a shapes verdict read by the detector, or
        the signals' prompt when the user gives none. None where nothing does."""
        config = self.resolved(domain)
        if domain.name != "shapes":
            return None
        counts = config.signals != "fast" and self.distance is None and reads_elements(config.distance, config.check)
        prompts = config.signals != "none" and not prompt
        if not (counts or prompts):
            return None
        return read_query(image, domain, detector=self.detector())

    def reading_caption(self, reading: QueryReading | None) -> str | None:
        """The caption of the elements a reading holds at the scorer's detector confidence (the
        signals' prompt), or None when it holds none."""
        if reading is None:
            return None
        sure = [e["element"] for e in reading.elements if e["confidence"] >= self.config.detector_threshold]
        return caption([parse_caption(p)[0] for p in sure]) if sure else None

    def score(
        self, image: Image.Image, *, name: str = "query", domain: str | Domain | None = None, prompt: str | None = None
    ) -> OriginalityResult:
        """Score one query: its reading, the familiarity signals, the token count (as the config asks)."""
        the_domain = self.domain(domain)
        config = self.resolved(the_domain)
        reading = self.read(image, the_domain, prompt)
        skip = reading is not None and not reading.readable and not config.force
        familiarity = None
        if config.signals != "none" and not skip:  # the optimisation-free part first: a fast run stops there
            reader = self.signal_reader()
            read = None if reading is None else (self.reading_caption(reading) or "")  # "": read, nothing found
            shown, typical = self.typical(image, reading)
            familiarity = reader(shown, the_domain, prompt=prompt, reading=read)
            if typical is not None:
                familiarity["typicality"] = typical
                familiarity["read_on"] = "canonical re-render" if typical["flagged"] else "query"
            if self.background is not None:
                familiarity["signals"]["likelihood_ratio"] = likelihood_ratio(
                    self.pipeline, self.background, shown, reader.config
                )
            familiarity["calibrated"] = self.calibrated(familiarity, reading, typical)
        if config.signals == "fast" or skip:
            return OriginalityResult(
                image=name,
                count=None,
                soft_tokens=None,
                settings={"config": dataclasses.asdict(config), "domain": dataclasses.asdict(the_domain)},
                versions=library_versions(),
                familiarity=familiarity,
                reading=None if reading is None else reading.to_dict(),
                unreadable=reading.reason if skip else None,
                signals_only=not skip,
            )
        distance, check = self.parts(the_domain)
        result = score(
            image,
            self.pipeline,
            config,
            the_domain,
            distance=distance,
            check=check,
            name=name,
            progress=self.progress,
            reading=reading,
        )
        if familiarity is not None:  # the learned tokens' gap, prompt-free: m = 1 and the count
            learned = {f"m{m}": result.learned[m] for m in dict.fromkeys([1, result.count or 1]) if m in result.learned}
            gaps = self.signal_reader().learned(image, the_domain, learned)
            familiarity["learned_token_gap"] = gaps["gaps"]
            familiarity["seconds"]["learned_token_gap"] = gaps["seconds"]
            result.familiarity = familiarity
        return result

    def typical(self, image: Image.Image, reading: QueryReading | None) -> tuple[Image.Image, dict[str, Any] | None]:
        """The image the signals read, and the typicality verdict where the model carries a check and
        the query was read in full: a query drawn unlike the model's training images is read on its
        canonical re-render (its elements drawn by the renderer where they were read)."""
        if self.typicality is None or reading is None or not reading.readable:
            return image, None
        verdict, again = self.typicality(self.pipeline, image, reading)
        return (again if verdict["flagged"] else image), verdict

    def calibrated(
        self, familiarity: dict[str, Any], reading: QueryReading | None, typical: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The verdict in training frequency, where the model carries a calibration and the query's
        measure was read as the calibration's was (the same grid; the reading, not a user's prompt).
        None for a query read only under ``force`` (unreadable) or drawn unlike the training images
        (flagged): the calibration was fitted on rendered pairs, read in full."""
        cal = self.calibration
        if cal is None or (cal.grid is not None and cal.grid != familiarity["grid"]):
            return None
        if (reading is not None and not reading.readable) or (typical is not None and typical["flagged"]):
            return None
        signal = REGISTRY.get(cal.measure)
        if signal is not None and signal.needs == "prompt" and familiarity["prompt_source"] != "reading":
            return None
        value = familiarity["signals"].get(cal.measure)
        return None if value is None else cal.verdict(value)

    # -- writing ---------------------------------------------------------------------------------------
    def save(self, result: OriginalityResult, image: Image.Image, folder: str | Path) -> dict[str, Any]:
        """Write one score into ``folder``: query.png, result.json, the learned embeddings (diffusers'
        format), the sample grids and report.html. Returns result.json's content."""
        return save_result(result, image, folder)


def save_result(result: OriginalityResult, image: Image.Image, folder: str | Path) -> dict[str, Any]:
    """See :meth:`Scorer.save`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    runs.save_image(image, folder / "query.png")
    for m, vectors in result.learned.items():
        with runs.atomic_path(folder / "embeddings" / f"learned_embeds_m{m}.safetensors") as tmp:
            save_file({PLACEHOLDER: vectors.contiguous()}, tmp)
    for m, samples in result.samples.items():
        _grid(samples, folder / "samples" / f"m{m}.png")
    for token in result.per_m:
        edits = getattr(token.in_distribution, "images", None)
        if edits:
            _grid(edits, folder / "samples" / f"m{token.m}-edits.png")
    data = {"schema": RESULT_SCHEMA, **result.to_dict()}
    runs.write_json(folder / "result.json", data)
    score_report(data, image, folder)
    return data


def _grid(samples: list[Image.Image], path: Path) -> None:
    runs.save_image(image_grid(samples, columns=min(10, len(samples)), cell=96), path)


def check_prompt(prompt: str | None, where: str = "--prompt") -> str | None:
    """A prompt as a user typed it, or a one-line error for one that is not text."""
    if prompt is None:
        return None
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise OriginalityError(f"{where} is not valid UTF-8 text") from exc
    return prompt
