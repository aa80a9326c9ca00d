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
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from originality import runs
from originality.detection.detector import ElementDetector, detector_identity
from originality.errors import OriginalityError
from originality.experiments.cached import cached_model, data_key, key, model_key
from originality.experiments.generalization_config import GeneralizationConfig
from originality.experiments.generalization_summary import summarise
from originality.models.card import is_trained, training_summary
from originality.models.pipeline import generate, load_pipeline, resolve_device
from originality.report.grids import image_grid
from originality.report.html import generalization_report
from originality.report.plots import generalization_plot
from originality.shapes.specs import ladder

MARKER = "experiment.json"


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


def plan(config: GeneralizationConfig, detector: str | None = None) -> list[Job]:
    """The (level, variant) jobs with the keys of the data, model and measurement they need.
    ``detector`` is the reading detector's identity (the shipped one's when None)."""
    train = config.training_config()
    detector = detector or detector_identity()
    jobs = []
    for level in config.levels:
        for variant in config.variants:
            data = data_key(ladder(level, variant), config.images, config.size, config.data_seed)
            model = model_key(data, train)
            measure_key = key(
                model, config.samples, config.inference_steps, config.guidance_scale, config.detector_threshold,
                config.seed, detector,
            )  # fmt: skip
            jobs.append(Job(level, variant, data, model, measure_key, detector))
    return jobs


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
    figures.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"level": job.level, "variant": job.variant, "key": job.measure_key}
    for kind, r in result.items():
        images, hits = r.pop("_images"), r.pop("_hits")
        runs.save_image(image_grid(images[:8], columns=8, cell=64), figures / f"{job.name}-{kind}-samples.png")
        crops = [_crop(images[i], d.box) for i, d in hits[:8]]
        held_out = figures / f"{job.name}-{kind}-held-out.png"
        if crops:
            runs.save_image(image_grid(crops, columns=8, cell=64), held_out)
        else:  # none found: no crops left over from an earlier measurement of this level
            held_out.unlink(missing_ok=True)
        record[kind] = r
    return record


def _crop(image: Image.Image, box, pad: float = 3.0) -> Image.Image:
    x0, y0, x1, y1 = box
    return image.crop((max(0, x0 - pad), max(0, y0 - pad), min(image.width, x1 + pad), min(image.height, y1 + pad)))


# -- the experiment -----------------------------------------------------------------------------------
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
    config.validate()
    out = Path(out)
    marker = out / MARKER
    procs = runs.processes_apart(data_parallel)
    index, count = procs.index, procs.count
    # The first process alone checks and claims the folder; the others wait for its marker (had
    # they made cache/ first, the check would take the folder for someone else's). Runs of other
    # settings share a folder: every artefact in cache/ is keyed by what made it.
    if index == 0:
        runs.open_run(out, {"config": config.to_dict()}, what="a generalization run", marker=MARKER,
                      on_other="update", write=not measured_only)  # fmt: skip
    if measured_only:  # one writer, also when launched on several processes
        return write_measured(out, config) if index == 0 else None
    cache, figures = out / "cache", out / "figures"
    if index == 0:
        cache.mkdir(parents=True, exist_ok=True)
    runs.wait_for([marker], wait_seconds)
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
            runs.wait_for([path], wait_seconds)
    if index != 0:
        return None
    runs.wait_for([cache / f"measure-{j.measure_key}.json" for j in jobs], wait_seconds)  # the other processes' jobs
    records = [json.loads((cache / f"measure-{j.measure_key}.json").read_text()) for j in jobs]
    summary = summarise(records, config)
    summary["seconds_this_call"] = time.perf_counter() - started
    write_outputs(out, summary)
    return summary


def _train_with_first(job: Job, config: GeneralizationConfig, cache: Path, wait_seconds: float) -> None:
    """A helper process's share of a data-parallel job: once the first process has made the
    dataset, join its training run (which resumes from the same checkpoint on every process)."""
    if is_trained(cache / f"model-{job.model_key}", config.training_config()):
        return
    runs.wait_for([cache / f"data-{job.data_key}" / ".complete"], wait_seconds)
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
    runs.write_json(path, record)  # the file's existence marks the job done: written whole


def write_outputs(out: Path, summary: dict[str, Any]) -> None:
    generalization_plot(summary, out / "fig3.png")
    _quality_grids(out, summary)
    runs.write_json(out / "summary.json", summary)
    generalization_report(summary, out)


def _quality_grids(out: Path, summary: dict[str, Any]) -> None:
    """Fig. 12 (held-out element crops per level, prompted) and Fig. 13 (sample rows per model)."""
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
        runs.save_image(sheet, out / name)
