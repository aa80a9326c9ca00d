"""Calibrate the shapes scorer on calibration queries (never the evaluated ones).

Two measurements on queries rendered with their own seed:

1. **Caption ceiling.** Prompt the model with each query's true caption and read N samples with
   the detector at several confidences. The fraction of samples that hold exactly the query's
   elements is the best a learned prompt can hope for; it tells which detector confidence reads
   this model's samples and where a distance threshold can sit (a threshold no caption reaches
   would make every image "+").
2. **Inversion budget.** Invert common calibration queries with m tokens for several step
   counts and measure the distance of the reconstructions: the cheapest budget that reaches the
   distance of the longest one is enough for the ``quick`` preset.

``calibration.json`` holds every number; the chosen preset values cite it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from originality import runs
from originality.detection.detector import ElementDetector, detector_identity, element_multiset, kind_shares
from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.experiments.runner import Experiment, run_experiment
from originality.method.inversion import image_latents
from originality.method.search import invert_and_reconstruct, score_preset
from originality.models.pipeline import generate, load_pipeline, model_identity
from originality.shapes.captions import colour_count
from originality.shapes.queries import GROUPS, render_query


@dataclass
class CalibrationConfig:
    # Per group. Colours are drawn as in the mix, so a third of the pairs share one colour; those
    # need no colour binding, and too few queries can leave a group without two-colour pairs.
    queries: int = 12
    query_seed: int = 5_000_011  # not the experiments' query seed
    # The quick preset's samples, sampler steps and guidance: the settings being calibrated.
    samples: int = field(default_factory=lambda: score_preset("quick").samples)
    inference_steps: int = field(default_factory=lambda: score_preset("quick").inference_steps)
    guidance_scale: float = field(default_factory=lambda: score_preset("quick").guidance_scale)
    detector_thresholds: tuple[float, ...] = (0.5, 0.7, 0.9)
    budgets: tuple[int, ...] = (100, 300, 600)  # inversion steps
    tokens: tuple[int, ...] = (1, 2)
    budget_queries: int = 2  # common queries inverted at each budget
    batch_size: int = field(default_factory=lambda: score_preset("quick").batch_size)
    lr: float = field(default_factory=lambda: score_preset("quick").lr)
    size: int = 64
    model: str | None = field(default=None, metadata={"help": "pipeline folder (default: the shipped shapes model)"})

    def validate(self) -> CalibrationConfig:
        if self.queries < 1 or self.samples < 1:
            raise OriginalityError("calibration needs at least one query and one sample")
        if self.budget_queries < 1:
            raise OriginalityError("--budget-queries must be >= 1")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS = {"default": CalibrationConfig}
REPORT = "calibration.json"


def calibrate(model: str | Path | None, out: str | Path, config: CalibrationConfig, *, progress: bool = True) -> dict:
    """The calibration into ``out`` (a rerun of the same settings measures nothing again)."""
    config = dataclasses.replace(config, model=None if model is None else str(model))
    run_experiment(EXPERIMENT, out, config, progress=progress)
    return runs.read_json(Path(out) / REPORT)


def run(out: Path, config: CalibrationConfig, progress: bool) -> None:
    if not (out / REPORT).is_file():
        runs.write_json(out / REPORT, measure(config, progress))


def measure(config: CalibrationConfig, progress: bool) -> dict[str, Any]:
    """The caption ceiling and the inversion budget (the module's docstring)."""
    model = config.model
    pipeline = load_pipeline(model)
    detector = ElementDetector.load()
    low = min(config.detector_thresholds)
    seeds = list(range(config.samples))

    def match_rates(query, samples) -> dict[str, dict[str, float]]:
        """Per detector confidence: the share of exact samples, and of samples with the query's
        shapes and colours but the colours on the other shapes (``swapped``)."""
        found = detector.detect([query, *samples], threshold=low)
        rates: dict[str, dict[str, float]] = {"exact": {}, "swapped": {}}
        for th in config.detector_thresholds:
            kept = [[d for d in ds if d.confidence >= th] for ds in found]
            shares = kind_shares(kept[1:], element_multiset(kept[0]))
            for kind in rates:
                rates[kind][str(th)] = shares[kind]
        return rates

    ceiling: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    queries = {g: [render_query(g, i, config.query_seed, config.size) for i in range(config.queries)] for g in GROUPS}
    started = time.perf_counter()
    for g, items in tqdm(queries.items(), desc="caption ceiling", disable=not progress):
        for image, text in items:
            samples = generate(
                pipeline, [text] * len(seeds), seeds, steps=config.inference_steps, guidance_scale=config.guidance_scale
            )
            rates = match_rates(image, samples)
            colours = colour_count(text)
            ceiling[g].append(
                {"caption": text, "colours": colours, "match_rate": rates["exact"], "swapped_rate": rates["swapped"]}
            )
    ceiling_seconds = time.perf_counter() - started

    domain = load_domain("shapes")
    budget_rows = []
    common = queries["common"][: config.budget_queries]
    quick = score_preset("quick")
    latents = [image_latents(pipeline, image, quick.shift_views, quick.seed) for image, _ in common]  # once a query
    jobs = [(q, m, steps) for q in range(len(common)) for m in config.tokens for steps in config.budgets]
    for q, m, steps in tqdm(jobs, desc="inversion budget", disable=not progress):
        image, text = common[q]
        score_config = score_preset(
            "quick",
            inversion_steps=steps,
            batch_size=config.batch_size,
            lr=config.lr,
            samples=config.samples,
            inference_steps=config.inference_steps,
            guidance_scale=config.guidance_scale,
        )
        inversion, samples, split = invert_and_reconstruct(pipeline, image, m, score_config, domain, latents=latents[q])
        seconds = split["inversion"]
        budget_rows.append(
            {
                "query": q,
                "caption": text,
                "m": m,
                "steps": steps,
                "seconds": seconds,
                "final_loss": float(np.mean(inversion.losses[-20:])),
                "match_rate": match_rates(image, samples)["exact"],
            }
        )
    report = {
        "config": dataclasses.asdict(config),
        "model": model_identity(model),
        "detector": detector_identity(),
        "caption_ceiling": {g: _ceiling_summary(rows, config.detector_thresholds) for g, rows in ceiling.items()},
        "caption_ceiling_seconds": ceiling_seconds,
        "inversion_budget": budget_rows,
    }
    return report


def _ceiling_summary(rows: list[dict[str, Any]], thresholds: tuple[float, ...]) -> dict[str, Any]:
    def means(key: str, rows: list[dict[str, Any]]) -> dict[str, float]:
        return {str(th): float(np.mean([r[key][str(th)] for r in rows])) for th in thresholds}

    by_colours = {}
    for n in sorted({r["colours"] for r in rows}):
        mine = [r for r in rows if r["colours"] == n]
        by_colours[str(n)] = {
            "queries": len(mine),
            "mean_match_rate": means("match_rate", mine),
            "mean_swapped_rate": means("swapped_rate", mine),
        }
    return {
        "mean_match_rate": means("match_rate", rows),
        "mean_swapped_rate": means("swapped_rate", rows),
        "by_colours": by_colours,
        "queries": rows,
    }


def summarise(out: Path, config: CalibrationConfig) -> dict[str, Any]:
    return runs.read_json(out / REPORT)


def format_calibration(report: dict) -> str:
    ths = report["config"]["detector_thresholds"]
    lines = ["caption ceiling: share of samples holding exactly the query's elements (swapped colours), by detector"]
    lines.append(f"{'queries':20s} " + " ".join(f"{th:>12}" for th in ths))

    def row(label: str, v: dict) -> str:
        cells = [f"{v['mean_match_rate'][str(th)]:.2f} ({v['mean_swapped_rate'][str(th)]:.2f})" for th in ths]
        return f"{label:20s} " + " ".join(f"{c:>12s}" for c in cells)

    for g, v in report["caption_ceiling"].items():
        lines.append(row(g, v))
        for n, part in v["by_colours"].items():
            lines.append(row(f"  {'one' if n == '1' else 'two'} colour{'s' * (n != '1')} ({part['queries']})", part))
    lines.append("inversion budget (common queries): match rate by detector confidence")
    for r in report["inversion_budget"]:
        rates = " ".join(f"{r['match_rate'][str(th)]:.2f}" for th in ths)
        lines.append(
            f"query {r['query']} m={r['m']} steps={r['steps']:4d} ({r['seconds']:.0f} s, "
            f"loss {r['final_loss']:.4f}): {rates}"
        )
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="calibrate",
    title="Calibration of the quick preset: caption ceiling and inversion budget",
    presets=PRESETS,
    run=run,
    summarise=summarise,
    table=format_calibration,
    identity=lambda config: {"model": model_identity(config.model), "detector": detector_identity()},
)
