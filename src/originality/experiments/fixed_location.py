"""The fixed-location ablation (App. C, Fig. 11): the shapes models know where their training data
put elements, so "positions vary across seeds" is a fair in-distribution test.

A model is trained on the originality mix with the common pair always at one fixed place. If a
single learned token for a common query makes that model draw the pair at the fixed place seed
after seed, the model has learned the place as part of the concept (it is in its distribution);
a model trained on randomly placed pairs (the shipped model by default) should, from the same
kind of token, put them anywhere. For each model: Q common queries at the fixed centres, one
token each, four seeds, and each sample's displacement from the query (mean centre distance,
matching elements by shape, as a fraction of the side); a sample "keeps the place" below
``tolerance`` (the positions check's).

Outputs: ``models.jsonl`` (each model's displacements, resumable), ``fig11.png`` (query and four
samples per row, one block per model), ``summary.json``, ``report.html``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from originality import runs
from originality.detection.detector import ElementDetector, detector_identity
from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.experiments.cached import cached_model
from originality.experiments.runner import Experiment, run_experiment
from originality.method.search import invert_and_reconstruct, score_preset
from originality.models.config import train_preset, with_overrides
from originality.models.pipeline import load_pipeline, model_identity
from originality.report.grids import image_grid
from originality.runs import save_image
from originality.shapes.captions import caption
from originality.shapes.rendering import render, sample_layout
from originality.shapes.specs import originality_mix

MODELS = "models.jsonl"


@dataclass
class FixedLocationConfig:
    queries: int = field(default=4, metadata={"help": "common queries at the fixed centres (at most 9 exist)"})
    seeds: int = field(default=4, metadata={"help": "samples per query (the paper's figure shows four)"})
    query_seed: int = 9_000_017
    images: int = field(default=20_000, metadata={"help": "training images of the fixed-location model"})
    size: int = 64
    data_seed: int = 0
    train: str = field(default="cpu", metadata={"help": "training preset of the fixed-location model"})
    train_overrides: dict[str, Any] = field(default_factory=lambda: {"vae_from": "shipped", "unet_epochs": 2.0})
    tolerance: float = field(default=0.08, metadata={"help": "a sample keeps the place below this displacement"})
    detector_threshold: float = 0.5
    score_preset: str = "quick"
    score_overrides: dict[str, Any] = field(default_factory=dict)
    reference: str | None = field(default=None, metadata={"help": "randomly placed model (default: the shipped one)"})
    fixed_model: str | None = field(
        default=None, metadata={"help": "an already trained fixed-location model (default: train one, cached)"}
    )

    def training_config(self):
        return with_overrides(train_preset(self.train), self.train_overrides)

    def validate(self) -> FixedLocationConfig:
        if self.queries < 1 or self.seeds < 1:
            raise OriginalityError("the ablation needs at least one query and one seed")
        fixed_queries(self)  # too many queries is a bad input, found before any training
        if self.fixed_model is None:
            self.training_config()
        return self

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.fixed_model is not None:  # the training settings made nothing here; the model's card says how
            for key in ("images", "data_seed", "train", "train_overrides"):
                data.pop(key)
        return data


PRESETS = {"default": FixedLocationConfig}


def fixed_queries(config: FixedLocationConfig) -> list[tuple[Image.Image, str]]:
    """Distinct common-pair queries placed at the fixed centres the fixed model was trained with.

    At fixed centres only the colours vary, so few distinct images exist (9 colour pairs); a
    repeated image would be scored twice and counted as two queries, so repeats are skipped.
    """
    spec = originality_mix(fixed_location=True)
    component = next(c for c in spec.components if c.name == "common")
    out: dict[bytes, tuple[Image.Image, str]] = {}
    for i in range(100 * config.queries):  # a bound, since only a few distinct images exist
        rng = np.random.default_rng([config.query_seed, i])
        elements = spec.component_elements(component, rng)
        placed = sample_layout(elements, config.size, rng, fixed_centres=component.fixed_centres)
        image = render(placed, config.size)
        out.setdefault(image.tobytes(), (image, caption(elements)))
        if len(out) == config.queries:
            return list(out.values())
    raise OriginalityError(
        f"only {len(out)} distinct fixed-location queries exist (the colours are all that varies); "
        f"ask for at most {len(out)}"
    )


def displacement(query, sample, side: float) -> float | None:
    """Mean distance from each query element to the nearest sample element of the same shape
    (fraction of the side); None when the sample lacks one of the query's shapes."""
    distances = []
    for q in query:
        same = [d for d in sample if d.element.shape == q.element.shape]
        if not same:
            return None
        distances.append(min(np.hypot(q.centre[0] - d.centre[0], q.centre[1] - d.centre[1]) for d in same) / side)
    return float(np.mean(distances)) if distances else None


def run(out: Path, config: FixedLocationConfig, progress: bool) -> None:
    """Train (cached) or take the fixed-location model; one token per query for it and the reference;
    each model's displacements in ``models.jsonl`` and its rows of samples in ``rows-<model>.png``."""
    queries = fixed_queries(config)
    fixed_model = config.fixed_model
    if fixed_model is None:
        fixed_model = cached_model(
            originality_mix(fixed_location=True), config.images, config.size, config.data_seed,
            config.training_config(), out / "cache", progress, "originality experiment fixed-location",
        )  # fmt: skip
    done = {r["label"] for r in runs.read_jsonl(out / MODELS)}
    detector = ElementDetector.load(threshold=config.detector_threshold)
    domain = load_domain("shapes")
    score = score_preset(config.score_preset, **{**config.score_overrides, "samples": config.seeds}).resolve(domain)
    for label, model in (("fixed location", fixed_model), ("random placement", config.reference)):
        if label in done:
            continue
        pipeline = load_pipeline(model)
        rows, values = [], []
        for image, text in queries:
            _, samples, _ = invert_and_reconstruct(pipeline, image, 1, score, domain, progress=progress)
            found = detector.detect([image, *samples])
            moved = [displacement(found[0], f, image.width) for f in found[1:]]
            values.append({"caption": text, "displacement": moved})
            rows.append([image, *samples])
        save_image(image_grid([im for row in rows for im in row], columns=1 + config.seeds, cell=96), _rows(out, label))
        runs.append_jsonl(out / MODELS, {"label": label, "model": model_identity(model), "queries": values})


def _rows(out: Path, label: str) -> Path:
    return out / f"rows-{label.replace(' ', '-')}.png"


def summarise(out: Path, config: FixedLocationConfig) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "config": config.to_dict(),
        "fixed_model": "given" if config.fixed_model is not None else "trained",
        "models": {},
    }
    for record in runs.read_jsonl(out / MODELS):
        measured = [v for q in record["queries"] for v in q["displacement"] if v is not None]
        summary["models"][record["label"]] = {
            "model": record["model"],
            "queries": record["queries"],
            "mean_displacement": float(np.mean(measured)) if measured else None,
            "keeps_place": float(np.mean([v < config.tolerance for v in measured])) if measured else None,
            "samples_with_both_shapes": len(measured),
        }
    return summary


def figures(out: Path, summary: dict[str, Any]) -> list[Path]:
    blocks = [(label, Image.open(_rows(out, label))) for label in summary["models"] if _rows(out, label).is_file()]
    _figure(blocks, out / "fig11.png")
    return [out / "fig11.png"]


def table(summary: dict[str, Any]) -> str:
    lines = []
    for label, m in summary["models"].items():
        keeps = "n/a" if m["keeps_place"] is None else f"{m['keeps_place']:.0%}"
        moved = "n/a" if m["mean_displacement"] is None else f"{m['mean_displacement']:.3f}"
        lines.append(f"{label:17s} samples keeping the query's place: {keeps:>4s}  mean displacement {moved}")
    return "\n".join(lines)


def identity(config: FixedLocationConfig) -> dict[str, Any]:
    given = {} if config.fixed_model is None else {"fixed_model": model_identity(config.fixed_model)}
    return {"reference": model_identity(config.reference), "detector": detector_identity(), **given}


EXPERIMENT = Experiment(
    name="fixed-location",
    title="App. C: a model trained with the common pair at one place keeps it; the shipped model does not",
    presets=PRESETS,
    run=run,
    summarise=summarise,
    table=table,
    figures=figures,
    identity=identity,
)


def run_fixed_location(
    out: str | Path,
    config: FixedLocationConfig,
    *,
    reference: str | Path | None = None,
    fixed_model: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The ablation into ``out`` (resumable) with ``reference`` and ``fixed_model`` (see the config)."""
    config = dataclasses.replace(
        config,
        reference=None if reference is None else str(reference),
        fixed_model=None if fixed_model is None else str(fixed_model),
    )
    return run_experiment(EXPERIMENT, out, config, progress=progress)


def _figure(blocks: list[tuple[str, Image.Image]], path: Path) -> None:
    width = max(b.width for _, b in blocks)
    sheet = Image.new("RGB", (width, sum(b.height + 24 for _, b in blocks)), "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for label, block in blocks:
        draw.text((6, y + 6), f"{label}: query, then four samples of one learned token", fill="black")
        sheet.paste(block, (0, y + 24))
        y += block.height + 24
    save_image(sheet, path)
