"""Generalization vs training diversity (Sec. 2, Fig. 2-3, App. B-D, Fig. 12-13).

For each level of the diversity ladder (a spanning set of 4 ... 60 elements) and each
symmetric variant (big-full, big-empty, small-full, small-empty; the held-out element is the
blue circle of that size and texture), make the dataset, train a model, generate images with
the empty prompt and with the held-out element's description, read them with the detector, and
measure how often the element the model never saw appears:

* ``frequency``: held-out detections / all detections (the paper's Fig. 3 y-axis);
* ``image_rate``: the share of images holding the held-out element at least once.

Every artefact is cached by the hash of the settings that made it (``cache/data-<key>``,
``cache/model-<key>``, ``cache/measure-<key>.json``; a measurement's key includes the digest of
the detector that read it): a killed run resumes where it stopped,
and a rerun with one level changed rebuilds only that level. A measurement is reused even when
the model that made it is gone (the committed ``results/`` keep them).

Several GPUs: ``accelerate launch --num_processes K -m originality.cli experiment generalization``
gives each process every K-th (level, variant) job on its own GPU (each trains its models alone,
not data-parallel); the first process then waits for all measurements and writes the outputs.
With ``data_parallel`` (``--data-parallel``) the processes instead train each model together, one
model after another, and the first process alone makes the data and measures: the better split
when there are fewer models than processes, e.g. one level on a two-core CPU under ``torchrun``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from originality.errors import OriginalityError
from originality.shapes.specs import LADDER_LEVELS, VARIANTS, ladder


@dataclass
class GeneralizationConfig:
    preset: str = "paper"
    levels: tuple[int, ...] = tuple(LADDER_LEVELS)
    variants: tuple[str, ...] = tuple(VARIANTS)
    images: int = 100_000  # per dataset (paper: 100K)
    size: int = 64
    data_seed: int = 0
    train: str = "paper"  # training preset (originality.models.config)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    samples: int = 1024  # per prompt type (paper: 1024)
    inference_steps: int = 50
    guidance_scale: float = 3.0
    detector_threshold: float = 0.9  # paper: 0.9
    seed: int = 0

    def validate(self) -> GeneralizationConfig:
        for level in self.levels:
            if level not in LADDER_LEVELS:
                raise OriginalityError(f"unknown ladder level {level}; known: {', '.join(map(str, LADDER_LEVELS))}")
        for variant in self.variants:
            if variant not in VARIANTS:
                raise OriginalityError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        if not self.levels or not self.variants:
            raise OriginalityError("the experiment needs at least one level and one variant")
        if self.images < 1 or self.samples < 1:
            raise OriginalityError("images and samples must be >= 1")
        self.training_config()  # unknown preset or setting: fail now
        return self

    def training_config(self):
        from originality.models.config import train_preset, with_overrides

        return with_overrides(train_preset(self.train), self.train_overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def generalization_preset(name: str, **overrides: Any) -> GeneralizationConfig:
    """``paper``: every level and variant, 100K images, the paper's training, 1024 samples (GPUs).
    ``quick``: this 2-core CPU in about 2 hours: one variant (big-full), 20K images per level, the
    cpu models' UNet for 2 epochs on the shipped model's VAE (frozen, as Sec. 4.1's pretrained VAE),
    256 samples per prompt at 25 sampler steps, read at detector confidence 0.5 (these briefly
    trained models draw elements the detector reads with less confidence; precision at 0.5 on
    rendered images is 0.999, results/detector). ``quick`` shows nothing yet (0-2% at every level:
    too little training); ``cpu`` is ``quick`` trained 12.8 times longer on four levels (4, 15, 30,
    60; 7,988 UNet steps a level), the smallest ladder that measured the paper's direction on this
    CPU (results/generalization/ladder-8000-steps): about 90 min a level on both cores with
    ``--data-parallel`` under torchrun, resumable."""
    quick = GeneralizationConfig(
        preset="quick",
        variants=("big-full",),
        images=20_000,
        train="cpu",
        train_overrides={"vae_from": "shipped", "unet_epochs": 2.0},
        samples=256,
        inference_steps=25,
        detector_threshold=0.5,
    )
    presets = {
        "paper": GeneralizationConfig(),
        "quick": quick,
        "cpu": dataclasses.replace(
            quick, preset="cpu", levels=(4, 15, 30, 60), train_overrides={**quick.train_overrides, "unet_epochs": 25.6}
        ),
        "tiny": GeneralizationConfig(  # tests: seconds
            preset="tiny",
            levels=(4, 60),
            variants=("big-full",),
            images=64,
            size=32,
            train="tiny",
            train_overrides={"unet_epochs": 1, "vae_epochs": 1},
            samples=4,
            inference_steps=2,
            detector_threshold=0.5,
        ),
    }
    if name not in presets:
        raise OriginalityError(f"unknown generalization preset {name!r}; known: {', '.join(presets)}")
    return dataclasses.replace(presets[name], **overrides).validate()


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Job:
    level: int
    variant: str
    data_key: str
    model_key: str
    measure_key: str
    detector: str  # the digest of the detector whose reading the measurement key stands for

    @property
    def name(self) -> str:
        return f"{self.level}-{self.variant}"


def data_key(spec, images: int, size: int, seed: int) -> str:
    return _key(spec.to_dict(), images, size, seed)


def model_key(data: str, train) -> str:
    return _key(data, train.fingerprint(), train.vae_epochs, train.unet_epochs)


def plan(config: GeneralizationConfig, detector: str | None = None) -> list[Job]:
    """The (level, variant) jobs with the keys of the data, model and measurement they need.
    ``detector`` is the reading detector's identity (the shipped one's when None)."""
    from originality.detection.detector import detector_identity

    train = config.training_config()
    detector = detector or detector_identity()
    jobs = []
    for level in config.levels:
        for variant in config.variants:
            data = data_key(ladder(level, variant), config.images, config.size, config.data_seed)
            model = model_key(data, train)
            measure_key = _key(
                model, config.samples, config.inference_steps, config.guidance_scale, config.detector_threshold,
                config.seed, detector,
            )  # fmt: skip
            jobs.append(Job(level, variant, data, model, measure_key, detector))
    return jobs


# -- cached datasets and models (shared with the fixed-location ablation) ---------------------------
def cached_dataset(spec, images: int, size: int, seed: int, cache: Path, progress: bool) -> Path:
    from originality.shapes.dataset import make_dataset

    key = data_key(spec, images, size, seed)
    folder = cache / f"data-{key}"
    if (folder / ".complete").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)  # a half-written dataset from a killed run
    make_dataset(spec, images, folder, size=size, seed=seed, progress=progress)
    (folder / ".complete").write_text(key)
    return folder


def cached_model(
    spec, images: int, size: int, seed: int, train, cache: Path, progress: bool, command: str, first: bool = True
) -> Path:
    """A model trained on ``spec``'s dataset with ``train``; resumes a killed training run, and
    continues the longest finished shorter run of the same settings in ``cache`` (more epochs
    train on rather than start again). ``first``: the process that makes the data and seeds the
    continued run; the others of a data-parallel run wait for it."""
    from originality.models import train as train_model
    from originality.models.training import is_trained

    key = data_key(spec, images, size, seed)
    folder = cache / f"model-{model_key(key, train)}"
    if is_trained(folder, train):  # a folder copied in from a shorter run is trained on, not reused
        return folder
    record = folder / "training" / "run.json"
    if not record.is_file() and (shorter := shorter_run(cache, key, train)) is not None:
        if first:
            _continue_from(shorter, folder, progress)
        else:
            _wait_for([record], 1.0)
    data = cached_dataset(spec, images, size, seed, cache, progress)
    return train_model(train, data, folder, progress=progress, command=command)


def shorter_run(cache: Path, data: str, train) -> Path | None:
    """The finished model in ``cache`` trained on dataset ``data`` with ``train``'s settings for
    fewer UNet epochs (the same VAE epochs) that ran the most steps, or None."""
    from originality.models.training import finished_config, same_run, training_summary

    best, most = None, 0
    for folder in (record.parents[1] for record in cache.glob("model-*/training/run.json")):
        saved, summary = finished_config(folder), training_summary(folder)
        if (
            saved is not None
            and same_run(saved, train, epochs=False)
            and saved.unet_epochs < train.unet_epochs
            and Path(summary["dataset"]["path"]).name == f"data-{data}"
            and (folder / "training" / "checkpoint").is_dir()
            and summary["steps"]["unet"] > most
        ):
            best, most = folder, summary["steps"]["unet"]
    return best


def _continue_from(shorter: Path, folder: Path, progress: bool) -> None:
    """Seed ``folder`` with ``shorter``'s checkpoint, latents and run record; the record goes in
    last, so that a process waiting for it finds the rest in place."""
    source, work = shorter / "training", folder / "training"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "checkpoint", work / "checkpoint", dirs_exist_ok=True)
    if (source / "latents.safetensors").is_file():
        shutil.copy2(source / "latents.safetensors", work / "latents.safetensors")
    shutil.copy2(source / "run.json", work / "run.json.partial")
    os.replace(work / "run.json.partial", work / "run.json")
    if progress:
        print(f"continuing {shorter.name} into {folder.name} (more epochs of the same run)", flush=True)


# -- one job --------------------------------------------------------------------------------------
def held_out(job: Job):
    return ladder(job.level, job.variant).held_out_elements[0]


def model_for(job: Job, config: GeneralizationConfig, cache: Path, progress: bool, first: bool = True) -> Path:
    command = f"originality experiment generalization --preset {config.preset} (level {job.level}, {job.variant})"
    spec = ladder(job.level, job.variant)
    train = config.training_config()
    return cached_model(spec, config.images, config.size, config.data_seed, train, cache, progress, command, first)


def measure(pipeline, detector, element, config: GeneralizationConfig) -> dict[str, Any]:
    """Generate ``samples`` images per prompt type and count the held-out ``element``."""
    from originality.models.pipeline import generate

    result: dict[str, Any] = {}
    for offset, (kind, prompt) in enumerate((("empty", ""), ("element", element.phrase))):
        seeds = [config.seed * 1_000_000 + offset * 100_000 + i for i in range(config.samples)]
        images = generate(
            pipeline, [prompt] * len(seeds), seeds, steps=config.inference_steps, guidance_scale=config.guidance_scale
        )
        found = detector.detect(images)
        counts = Counter(d.element.phrase for ds in found for d in ds)
        total = sum(counts.values())
        hits = [(i, d) for i, ds in enumerate(found) for d in ds if d.element == element]
        result[kind] = {
            "prompt": prompt,
            "images": len(images),
            "detections": total,
            "held_out_detections": len(hits),
            "frequency": len(hits) / total if total else 0.0,
            "image_rate": float(np.mean([any(d.element == element for d in ds) for ds in found])),
            "elements_per_image": total / len(images),
            "element_counts": dict(counts.most_common()),
            "_images": images,
            "_hits": hits,
        }
    return result


def _record(job: Job, result: dict[str, Any], figures: Path) -> dict[str, Any]:
    """The measurement's numbers; its pictures (sample rows, held-out crops) go to ``figures``."""
    from originality.report.grids import image_grid

    figures.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"level": job.level, "variant": job.variant, "key": job.measure_key}
    for kind, r in result.items():
        images, hits = r.pop("_images"), r.pop("_hits")
        image_grid(images[:8], columns=8, cell=64).save(figures / f"{job.name}-{kind}-samples.png")
        crops = [_crop(images[i], d.box) for i, d in hits[:8]]
        held_out = figures / f"{job.name}-{kind}-held-out.png"
        if crops:
            image_grid(crops, columns=8, cell=64).save(held_out)
        else:  # none found: no crops left over from an earlier measurement of this level
            held_out.unlink(missing_ok=True)
        record[kind] = r
    return record


def _crop(image: Image.Image, box, pad: float = 3.0) -> Image.Image:
    x0, y0, x1, y1 = box
    return image.crop((max(0, x0 - pad), max(0, y0 - pad), min(image.width, x1 + pad), min(image.height, y1 + pad)))


# -- the experiment -----------------------------------------------------------------------------------
def _launched(data_parallel: bool = False) -> tuple[int, int]:
    """Under ``accelerate launch`` or ``torchrun``: this process's index and count. Each process
    then trains alone on its own GPU, so the launcher's process-group variables are cleared before
    any model is built; ``data_parallel`` keeps them, for training that joins the process group."""
    count = int(os.environ.get("WORLD_SIZE", "1"))
    if count <= 1:
        return 0, 1
    index, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if data_parallel:
        return index, count
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else None
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus[local % len(gpus)] if gpus else str(local)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(name, None)
    return index, count


def run_generalization(
    out: str | Path,
    config: GeneralizationConfig,
    *,
    progress: bool = True,
    wait_seconds: float = 5.0,
    measured_only: bool = False,
    data_parallel: bool = False,
) -> dict[str, Any] | None:
    """Run (or resume) the experiment into ``out``; returns the summary (None on helper processes).
    ``measured_only``: train and measure nothing, write the outputs of the levels measured so far
    (a look at a run that is still going, or one that outlasted its session).
    ``data_parallel``: under a launcher, train every model on all processes, one after another."""
    from tqdm.auto import tqdm

    config.validate()
    out = Path(out)
    marker = out / "experiment.json"
    index, count = _launched(data_parallel)
    # The first process alone checks and claims the folder; the others wait for its marker (had
    # they made cache/ first, the check would take the folder for someone else's).
    if index == 0 and out.exists() and any(out.iterdir()) and not marker.is_file():
        raise OriginalityError(f"output folder {out} exists and is not a generalization run; choose another --out")
    if measured_only:  # one writer, also when launched on several processes
        return write_measured(out, config) if index == 0 else None
    cache, figures = out / "cache", out / "figures"
    if index == 0:
        cache.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"config": config.to_dict()}, indent=1) + "\n")
    _wait_for([marker], wait_seconds)
    jobs = plan(config)
    started = time.perf_counter()
    mine = jobs if data_parallel else jobs[index::count]
    helper = data_parallel and index != 0
    for job in tqdm(mine, desc="levels", disable=not progress or helper, unit="model"):
        path = cache / f"measure-{job.measure_key}.json"
        if path.is_file():
            continue
        if not helper:
            _run_job(job, config, cache, figures, path, progress)
        else:  # train with the first process, let it measure
            _train_with_first(job, config, cache, wait_seconds)
            _wait_for([path], wait_seconds)
    if index != 0:
        return None
    _wait_for([cache / f"measure-{j.measure_key}.json" for j in jobs], wait_seconds)  # the other processes' jobs
    records = [json.loads((cache / f"measure-{j.measure_key}.json").read_text()) for j in jobs]
    summary = summarise(records, config)
    summary["seconds_this_call"] = time.perf_counter() - started
    write_outputs(out, summary)
    return summary


def _wait_for(paths: list[Path], seconds: float) -> None:
    """Poll until every file exists (no collective call, so no process-group timeout)."""
    pending = [p for p in paths if not p.is_file()]
    while pending:
        time.sleep(seconds)
        pending = [p for p in pending if not p.is_file()]


def _train_with_first(job: Job, config: GeneralizationConfig, cache: Path, wait_seconds: float) -> None:
    """A helper process's share of a data-parallel job: once the first process has made the
    dataset, join its training run (which resumes from the same checkpoint on every process)."""
    from originality.models.training import is_trained

    if is_trained(cache / f"model-{job.model_key}", config.training_config()):
        return
    _wait_for([cache / f"data-{job.data_key}" / ".complete"], wait_seconds)
    model_for(job, config, cache, progress=False, first=False)


def write_measured(out: str | Path, config: GeneralizationConfig) -> dict[str, Any]:
    """Summarise the levels of ``config`` already measured in ``out/cache`` into ``out``'s figures,
    summary.json and report.html (training and measuring nothing)."""
    out = Path(out)
    done = [j for j in plan(config) if (out / "cache" / f"measure-{j.measure_key}.json").is_file()]
    if not done:
        raise OriginalityError(f"no level of this experiment's settings is measured in {out} yet")
    records = [json.loads((out / "cache" / f"measure-{j.measure_key}.json").read_text()) for j in done]
    measured = dataclasses.replace(config, levels=tuple(dict.fromkeys(j.level for j in done)))
    summary = summarise(records, measured)
    summary["measured_only"] = [j.name for j in done]
    write_outputs(out, summary)
    return summary


def _run_job(job: Job, config: GeneralizationConfig, cache: Path, figures: Path, path: Path, progress: bool) -> None:
    from originality.detection.detector import ElementDetector
    from originality.models.pipeline import load_pipeline, resolve_device
    from originality.models.training import training_summary

    t0 = time.perf_counter()
    model = model_for(job, config, cache, progress)
    t1 = time.perf_counter()
    pipeline = load_pipeline(model, device=resolve_device(None))
    detector = ElementDetector.load(threshold=config.detector_threshold)
    result = measure(pipeline, detector, held_out(job), config)
    record = _record(job, result, figures)
    record["seconds"] = {"data_and_training": t1 - t0, "measurement": time.perf_counter() - t1}
    record["model"] = training_summary(model)["steps"]
    record["detector"] = job.detector
    tmp = path.with_suffix(".tmp")  # the file's existence marks the job done: write it whole
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)


def summarise(records: list[dict[str, Any]], config: GeneralizationConfig) -> dict[str, Any]:
    """Per level: each prompt type's frequency and image rate, averaged over variants (with spread)."""
    levels = {}
    for level in config.levels:
        rows = [r for r in records if r["level"] == level]
        entry: dict[str, Any] = {"variants": [r["variant"] for r in rows]}
        for kind in ("empty", "element"):
            freq = [r[kind]["frequency"] for r in rows]
            rate = [r[kind]["image_rate"] for r in rows]
            entry[kind] = {
                "frequency": float(np.mean(freq)),
                "frequency_range": [float(min(freq)), float(max(freq))],
                "image_rate": float(np.mean(rate)),
                "elements_per_image": float(np.mean([r[kind]["elements_per_image"] for r in rows])),
                "outside_spanning_set": float(np.mean([outside_spanning_set(r, kind) for r in rows])),
                "vs_average_element": float(np.mean([vs_average_element(r, kind) for r in rows])),
            }
        levels[str(level)] = entry
    top = str(max(config.levels))
    element = [levels[str(lv)]["element"]["frequency"] for lv in config.levels]
    return {
        "config": config.to_dict(),
        "levels": levels,
        "records": records,
        "checks": {
            "element_prompt_above_empty_at_every_level": all(
                v["element"]["frequency"] >= v["empty"]["frequency"] for v in levels.values()
            ),
            "element_rises_with_diversity": _rises(element),
            # The paper's Fig. 3 shape: higher at every step up the ladder, not only on average.
            "element_rises_at_every_level": len(element) > 1
            and all(b > a for a, b in zip(element, element[1:], strict=False)),
            "empty_rises_with_diversity": _rises([levels[str(lv)]["empty"]["frequency"] for lv in config.levels]),
            "prompted_image_rate_at_top_level": levels[top]["element"]["image_rate"],
        },
    }


def by_training_length(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pool the measurements of several runs into one ladder per training length.

    The question the ladders answer is whether the held-out element rises with diversity at
    *equal* training, so runs that trained some levels longer (e.g. a level continued from its
    checkpoint) are sorted by the steps each model saw, not by the run they were measured in.
    Runs pool only when they trained by one recipe (the training config's fingerprint, which
    leaves out the epoch counts: a model trained on is the same run at another length), and
    measurements read by different detectors are kept apart. A measurement found in two runs
    (same key) counts once; two of one model (another sampling seed) or of several variants are
    averaged. Each ladder: ``{"train", "recipe", "unet_steps", "detector", "levels": {level:
    {"element", "empty", "image_rate", "measurements"}}}``, shortest training first."""
    from originality.models.config import train_preset, with_overrides

    groups: dict[tuple[str, str, int, str], dict[int, list[dict[str, Any]]]] = {}
    seen: set[str] = set()
    for summary in summaries:
        config = summary["config"]
        recipe = with_overrides(train_preset(config["train"]), config["train_overrides"]).fingerprint()
        train = (config["train"], recipe)
        for record in summary["records"]:
            if record["key"] in seen:
                continue
            seen.add(record["key"])
            length = (*train, int(record["model"]["unet"]), record.get("detector") or "")
            groups.setdefault(length, {}).setdefault(record["level"], []).append(record)
    return [
        {
            "train": train,
            "recipe": recipe,
            "unet_steps": steps,
            "detector": detector,
            "levels": {
                str(level): {
                    "element": float(np.mean([r["element"]["frequency"] for r in records])),
                    "empty": float(np.mean([r["empty"]["frequency"] for r in records])),
                    "image_rate": float(np.mean([r["element"]["image_rate"] for r in records])),
                    "measurements": len(records),
                }
                for level, records in sorted(levels.items())
            },
        }
        for (train, recipe, steps, detector), levels in sorted(groups.items(), key=lambda item: (item[0][2], item[0]))
    ]


def compare_lengths(runs: list[str | Path], out: str | Path) -> list[dict[str, Any]]:
    """Fig. 3 once per training length, from finished runs' ``summary.json``: one figure and its
    numbers (``<out>.json`` beside the PNG). Trains and measures nothing."""
    summaries = []
    for run in runs:
        path = Path(run) / "summary.json"
        if not path.is_file():
            raise OriginalityError(f"{run} holds no summary.json: name folders written by `experiment generalization`")
        try:
            summary = json.loads(path.read_text())
            by_training_length([summary])  # reads every field the pooling needs
        except (ValueError, KeyError, TypeError) as error:
            raise OriginalityError(f"{path} is not a generalization run's summary (no {error})") from None
        summaries.append(summary)
    out = Path(out)
    if out.suffix != ".png":
        raise OriginalityError(f"--out {out} should name a .png file")
    from originality.report.plots import generalization_lengths_plot

    ladders = by_training_length(summaries)
    if not ladders:
        raise OriginalityError("these runs hold no measurement yet")
    generalization_lengths_plot(ladders, out)
    out.with_suffix(".json").write_text(json.dumps(ladders, indent=1) + "\n")
    return ladders


def outside_spanning_set(record: dict[str, Any], kind: str) -> float:
    """Share of a measurement's detections that are elements its model's data never spanned: a
    sign of samples the detector cannot read (blurry, half-formed shapes), not of generalization."""
    spanned = {e.phrase for e in ladder(record["level"], record["variant"]).spanning_set}
    counts = record[kind]["element_counts"]
    total = sum(counts.values())
    return sum(c for e, c in counts.items() if e not in spanned) / total if total else 0.0


def vs_average_element(record: dict[str, Any], kind: str) -> float:
    """The held-out element's share of detections times the spanning set's size: 1 when it is
    drawn as often as an average element of the set. The raw share is bounded by about 1/L, so it
    falls as the ladder grows even for a model that treats the held-out element as one of the rest;
    this rate does not."""
    return record[kind]["frequency"] * len(ladder(record["level"], record["variant"]).spanning_set)


def _rises(values: list[float]) -> bool:
    """Rank correlation with the level is positive (a noisy but upward trend)."""
    if len(values) < 2 or max(values) == min(values):
        return False
    from scipy.stats import spearmanr

    return bool(spearmanr(range(len(values)), values).statistic > 0)


def write_outputs(out: Path, summary: dict[str, Any]) -> None:
    from originality.report.html import generalization_report
    from originality.report.plots import generalization_plot

    generalization_plot(summary, out / "fig3.png")
    _quality_grids(out, summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    generalization_report(summary, out)


def _quality_grids(out: Path, summary: dict[str, Any]) -> None:
    """Fig. 12 (held-out element crops per level, prompted) and Fig. 13 (sample rows per model)."""
    from PIL import ImageDraw

    figures, label = out / "figures", 110
    for kind, name in (("element-held-out", "fig12-quality.png"), ("element-samples", "fig13-samples.png")):
        rows = []
        for r in summary["records"]:
            path = figures / f"{r['level']}-{r['variant']}-{kind}.png"
            image = Image.open(path).convert("RGB") if path.is_file() else Image.new("RGB", (64, 64), "white")
            rows.append((f"{r['level']} elements\n{r['variant']}", image))
        width = label + max(im.width for _, im in rows)
        sheet = Image.new("RGB", (width, sum(im.height for _, im in rows)), "white")
        draw, y = ImageDraw.Draw(sheet), 0
        for text, image in rows:
            sheet.paste(image, (label, y))
            draw.multiline_text((6, y + image.height // 2 - 12), text, fill="black")
            y += image.height
        sheet.save(out / name)
