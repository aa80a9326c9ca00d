"""The positive control: does the model draw, by itself, each pair as often as it saw it?

Before asking any readout whether a model stores how often it saw a pair, ask the model: draw
unconditional samples (the empty prompt, seeded, resumable) until ``read`` of them are read by the
detector, and set each pair's share of the model's samples beside its share of the training
images. If the model's own rates do not follow the training rates, no signal read off the model
can be expected to.

Units. A pair is two elements alone in an image (the query's own unit); shares are taken among
images with at least one element (training: the non-empty images; model: the read samples). A
sample is *read* when the detector finds an element at ``detector_threshold``, *blank* when almost
no pixel is inked (the training data's empty images are 10% of it), *unread* otherwise; the
shares of all three are reported.

Pre-registered before any sample is drawn (``registered.json``): the pairs, elements and shape
pairs whose expected count among ``read`` samples is at least ``min_expected``. The Spearman of
model rate against training rate is read over those alone, with a bootstrap over the samples.

Outputs: ``samples.jsonl`` (one line per sample), ``registered.json``, ``summary.json``
(``positive_control: {rho, rho_ci, rates: {pair: [training, model]}}``, the same for elements and
shape pairs, the shares), ``positive-control.png``, ``report.html``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from originality import runs
from originality.detection.detector import ElementDetector, detector_identity
from originality.errors import OriginalityError
from originality.experiments.runner import Experiment
from originality.models.pipeline import generate, load_pipeline, model_identity
from originality.report.plots import rates_plot
from originality.shapes.dataset import dataset_identity, read_info, read_table
from originality.shapes.statistics import pair_key
from originality.stats import bootstrap_interval, spearman

INK = 200  # a pixel is inked when a channel is below this (the canvas is white, 255)
UNITS = ("pairs", "elements", "shape_pairs")


@dataclass
class PositiveControlConfig:
    model: str | None = field(default=None, metadata={"help": "pipeline folder (default: the shipped model)"})
    data: str = field(default="", metadata={"help": "the model's training dataset folder (its rates)"})
    read: int = field(default=2000, metadata={"help": "draw until this many samples are read"})
    max_samples: int = field(default=20_000, metadata={"help": "stop drawing here even if fewer were read"})
    batch: int = field(default=64, metadata={"help": "samples per batch"})
    inference_steps: int = field(default=50, metadata={"help": "sampler steps per sample"})
    detector_threshold: float = field(default=0.5, metadata={"help": "detector confidence that reads an element"})
    blank_ink: float = field(default=0.002, metadata={"help": "a sample inked below this share of pixels is blank"})
    min_expected: float = field(default=10.0, metadata={"help": "register units expected this often in the read"})
    seed: int = field(default=11_000_000, metadata={"help": "the first sample's seed"})
    bootstrap: int = field(default=2000, metadata={"help": "bootstrap draws for the interval of rho"})

    def validate(self) -> PositiveControlConfig:
        if not self.data:
            raise OriginalityError("the positive control needs --data: the model's training dataset folder")
        for name in ("read", "max_samples", "batch", "inference_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise OriginalityError(f"--{name.replace('_', '-')} must be an integer >= 1")
        if self.read > self.max_samples:
            raise OriginalityError(f"--read {self.read} is more than --max-samples {self.max_samples}")
        if not (math.isfinite(self.detector_threshold) and 0 < self.detector_threshold < 1):
            raise OriginalityError(f"--detector-threshold must be in (0, 1), got {self.detector_threshold}")
        if not (math.isfinite(self.blank_ink) and 0 <= self.blank_ink < 1):
            raise OriginalityError(f"--blank-ink must be in [0, 1), got {self.blank_ink}")
        if not (math.isfinite(self.min_expected) and self.min_expected > 0):
            raise OriginalityError(f"--min-expected must be positive, got {self.min_expected}")
        read_info(self.data)  # one line when it is no dataset
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS = {
    "default": PositiveControlConfig,
    # tests and a first look: a few samples at a few steps
    "quick": lambda: PositiveControlConfig(read=64, max_samples=256, batch=32, inference_steps=10, bootstrap=200),
}


# -- units ------------------------------------------------------------------------------------------
def units_of(elements: list[str]) -> dict[str, list[str]]:
    """The units an image counts in: its pair (exactly two elements), each element it holds, and
    its shape pair (the two elements' shapes, colours aside)."""
    out: dict[str, list[str]] = {"pairs": [], "elements": sorted(set(elements)), "shape_pairs": []}
    if len(elements) == 2:
        out["pairs"] = [" + ".join(sorted(elements))]
        out["shape_pairs"] = ["+".join(sorted(e.rsplit(" ", 1)[1] for e in elements))]
    return out


def training_rates(data: str | Path) -> dict[str, Any]:
    """Each unit's share of the non-empty training images, and the empty share."""
    rows = read_table(data, columns=["elements"]).to_pylist()
    counts: dict[str, Counter[str]] = {u: Counter() for u in UNITS}
    nonempty = 0
    for r in rows:
        if not r["elements"]:
            continue
        nonempty += 1
        phrases = [pair_key([e]) for e in r["elements"]]
        for unit, keys in units_of(phrases).items():
            counts[unit].update(keys)
    if not nonempty:
        raise OriginalityError(f"{data} holds no image with an element")
    return {
        "images": len(rows),
        "empty_share": 1 - nonempty / len(rows),
        "rates": {u: {k: v / nonempty for k, v in sorted(c.items())} for u, c in counts.items()},
    }


def ink_share(image: Image.Image) -> float:
    pixels = np.asarray(image.convert("RGB"))
    return float((pixels.min(axis=2) < INK).mean())


# -- run ---------------------------------------------------------------------------------------------
def run(out: Path, config: PositiveControlConfig, progress: bool) -> None:
    training = training_rates(config.data)
    registered_path = out / "registered.json"
    if not registered_path.is_file():  # written once, before the first sample
        runs.write_json(registered_path, register(training, config))
    records = runs.read_jsonl(out / "samples.jsonl")
    read = sum(r["class"] == "read" for r in records)
    if read >= config.read or len(records) >= config.max_samples:
        return
    pipeline = load_pipeline(config.model)
    detector = ElementDetector.load(threshold=config.detector_threshold)
    bar = tqdm(total=config.read, initial=read, desc="reading the model's own samples", disable=not progress)
    try:
        while read < config.read and len(records) < config.max_samples:
            count = min(config.batch, config.max_samples - len(records))
            seeds = [config.seed + len(records) + i for i in range(count)]
            # guidance 1: the empty prompt alone, no classifier-free guidance to double the cost
            images = generate(pipeline, [""] * count, seeds, steps=config.inference_steps, guidance_scale=1.0,
                              batch_size=count)  # fmt: skip
            for seed, image, found in zip(seeds, images, detector.detect(images), strict=True):
                record = sample_record(seed, image, found, config.blank_ink)
                runs.append_jsonl(out / "samples.jsonl", record)
                records.append(record)
                read += record["class"] == "read"
            bar.update(min(read, config.read) - bar.n)
    finally:
        bar.close()


def sample_record(seed: int, image: Image.Image, found, blank_ink: float) -> dict[str, Any]:
    ink = ink_share(image)
    kind = "read" if found else ("blank" if ink < blank_ink else "unread")
    return {
        "seed": seed,
        "class": kind,
        "elements": sorted(d.element.phrase for d in found),
        "confidences": [round(d.confidence, 3) for d in sorted(found, key=lambda d: d.element.phrase)],
        "ink": round(ink, 5),
    }


def register(training: dict[str, Any], config: PositiveControlConfig) -> dict[str, Any]:
    """The units whose expected count among ``config.read`` read samples is at least ``min_expected``."""
    return {
        "read": config.read,
        "min_expected": config.min_expected,
        "units": {
            unit: sorted(k for k, rate in rates.items() if rate * config.read >= config.min_expected)
            for unit, rates in training["rates"].items()
        },
    }


# -- summary -------------------------------------------------------------------------------------------
def summarise(out: Path, config: PositiveControlConfig) -> dict[str, Any]:
    training = training_rates(config.data)
    registered = runs.read_json(out / "registered.json")
    records = runs.read_jsonl(out / "samples.jsonl")
    classes = Counter(r["class"] for r in records)
    read = [r for r in records if r["class"] == "read"]
    drawn = len(records)
    summary: dict[str, Any] = {
        "samples": {
            "drawn": drawn,
            "read": len(read),
            "shares": {k: classes[k] / drawn if drawn else None for k in ("read", "blank", "unread")},
            "training_empty_share": training["empty_share"],
        }
    }
    per_sample = [units_of(r["elements"]) for r in read]
    for unit in UNITS:
        counts = Counter(k for s in per_sample for k in s[unit])
        train = training["rates"][unit]
        keys = sorted(set(train) | set(counts))
        rates = {k: [train.get(k, 0.0), counts[k] / len(read) if read else 0.0] for k in keys}
        chosen = [k for k in registered["units"][unit] if k in rates]
        result = spearman([rates[k][0] for k in chosen], [rates[k][1] for k in chosen]) if read else None
        summary[unit] = {
            "registered": len(chosen),
            "rho": None if result is None else result["rho"],
            "p": None if result is None else result["p"],
            "rho_ci": _rho_interval(per_sample, unit, chosen, train, config) if result else None,
            "rates": rates,
            "levels": _levels(config.data, rates) if unit == "pairs" else None,
        }
    summary["positive_control"] = {
        "rho": summary["pairs"]["rho"],
        "rho_ci": summary["pairs"]["rho_ci"],
        "rates": summary["pairs"]["rates"],
    }
    return summary


def _rho_interval(per_sample, unit: str, chosen: list[str], train: dict[str, float], config) -> list[float] | None:
    """95% interval of rho, redrawing the read samples with replacement (the training rates are fixed)."""
    index = {k: i for i, k in enumerate(chosen)}
    hits = np.zeros((len(per_sample), len(chosen)))
    for row, s in enumerate(per_sample):
        for k in s[unit]:
            if k in index:
                hits[row, index[k]] = 1
    x = [train.get(k, 0.0) for k in chosen]

    def rho_of(sample: list[int]) -> float | None:
        result = spearman(x, hits[sample].mean(axis=0).tolist())
        return None if result is None else result["rho"]

    samples = dict.fromkeys(range(len(per_sample)), 0)  # one stratum: every read sample
    return bootstrap_interval(samples, rho_of, draws=config.bootstrap, seed=config.seed)


def _levels(data: str | Path, rates: dict[str, list[float]]) -> dict[str, Any] | None:
    """For a planned dataset (the frequency ladder): each planned entry's pairs and their mean rates."""
    spec = read_info(data)["spec"]
    if not spec.get("planned"):
        return None
    levels: dict[str, dict[str, Any]] = {}
    for entry in spec["planned"]:
        key = " + ".join(sorted(entry["elements"]))
        level = levels.setdefault(entry["name"], {"pairs": [], "training": [], "model": []})
        level["pairs"].append(key)
        training, model = rates.get(key, [0.0, 0.0])
        level["training"].append(training)
        level["model"].append(model)
    return {
        name: {"pairs": len(v["pairs"]), "training": float(np.mean(v["training"])), "model": float(np.mean(v["model"]))}
        for name, v in levels.items()
    }


def figures(out: Path, summary: dict[str, Any]) -> list[Path]:
    registered = set(runs.read_json(out / "registered.json")["units"]["pairs"])
    return [rates_plot(summary["pairs"]["rates"], registered, summary["samples"]["read"], out / "positive-control.png")]


def table(summary: dict[str, Any]) -> str:
    s = summary["samples"]
    shares = ", ".join(f"{k} {v:.1%}" for k, v in s["shares"].items() if v is not None)
    lines = [
        f"{s['drawn']} samples drawn with the empty prompt: {shares} "
        f"(the training data is {s['training_empty_share']:.1%} empty)",
        "unit          registered  Spearman rho [95%]   model rate vs training rate",
    ]
    for unit in ("pairs", "elements", "shape_pairs"):
        u = summary[unit]
        rho = "-" if u["rho"] is None else f"{u['rho']:.2f}"
        ci = "" if not u["rho_ci"] else f" [{u['rho_ci'][0]:.2f}, {u['rho_ci'][1]:.2f}]"
        lines.append(f"{unit:13s} {u['registered']:10d}  {rho + ci:20s}")
    levels = summary["pairs"]["levels"]
    if levels:
        lines.append("planned entry        pairs  training  model (mean per pair)")
        for name, v in levels.items():
            lines.append(f"{name:20s} {v['pairs']:5d}  {v['training']:8.3%}  {v['model']:.3%}")
    return "\n".join(lines)


def identity(config: PositiveControlConfig) -> dict[str, Any]:
    return {
        "model": model_identity(config.model),
        "detector": detector_identity(),
        "dataset": dataset_identity(config.data),
    }


EXPERIMENT = Experiment(
    name="positive-control",
    title="Positive control: the model's own pair rates against its training rates",
    presets=PRESETS,
    run=run,
    summarise=summarise,
    table=table,
    figures=figures,
    identity=identity,
)
