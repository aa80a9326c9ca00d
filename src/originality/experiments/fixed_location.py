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

Outputs: ``fig11.png`` (query and four samples per row, one block per model), ``summary.json``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from originality.detection.detector import ElementDetector
from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.experiments.cached import cached_model
from originality.method.search import invert_and_reconstruct, score_preset
from originality.models.config import train_preset, with_overrides
from originality.models.pipeline import load_pipeline, model_identity
from originality.report.grids import image_grid
from originality.runs import save_image, write_json
from originality.shapes.captions import caption
from originality.shapes.rendering import render, sample_layout
from originality.shapes.specs import originality_mix


@dataclass
class FixedLocationConfig:
    queries: int = 4
    seeds: int = 4  # samples per query (the paper's figure shows four)
    query_seed: int = 9_000_017
    images: int = 20_000  # training images of the fixed-location model
    size: int = 64
    data_seed: int = 0
    train: str = "cpu"
    train_overrides: dict[str, Any] = field(default_factory=lambda: {"vae_from": "shipped", "unet_epochs": 2.0})
    tolerance: float = 0.08  # a sample keeps the place when its displacement is below this
    detector_threshold: float = 0.5
    score_preset: str = "quick"
    score_overrides: dict[str, Any] = field(default_factory=dict)

    def training_config(self):
        return with_overrides(train_preset(self.train), self.train_overrides)


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


def run_fixed_location(
    out: str | Path,
    config: FixedLocationConfig,
    *,
    reference: str | Path | None = None,
    fixed_model: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (cached) or take the fixed-location model, and compare it with ``reference``."""
    out = Path(out)
    given = fixed_model is not None
    if config.queries < 1 or config.seeds < 1:
        raise OriginalityError("the ablation needs at least one query and one seed")
    queries = fixed_queries(config)  # before any training: too many queries is a bad input
    if out.exists() and any(out.iterdir()) and not (out / "cache").is_dir():
        raise OriginalityError(f"output folder {out} exists and is not a fixed-location run; choose another --out")
    (out / "cache").mkdir(parents=True, exist_ok=True)
    if fixed_model is None:
        command = "originality experiment fixed-location"
        fixed_model = cached_model(
            originality_mix(fixed_location=True), config.images, config.size, config.data_seed,
            config.training_config(), out / "cache", progress, command,
        )  # fmt: skip
    detector = ElementDetector.load(threshold=config.detector_threshold)
    domain = load_domain("shapes")
    score = score_preset(config.score_preset, **{**config.score_overrides, "samples": config.seeds}).resolve(domain)
    settings = dataclasses.asdict(config)
    if given:  # the training settings made nothing here; the model's own card says how it was made
        for key in ("images", "data_seed", "train", "train_overrides"):
            settings.pop(key)
    summary: dict[str, Any] = {"config": settings, "fixed_model": "given" if given else "trained", "models": {}}
    blocks = []
    for label, model in (("fixed location", fixed_model), ("random placement", reference)):
        pipeline = load_pipeline(model)
        rows, values = [], []
        for image, text in queries:
            _, samples, _ = invert_and_reconstruct(pipeline, image, 1, score, domain, progress=progress)
            found = detector.detect([image, *samples])
            moved = [displacement(found[0], f, image.width) for f in found[1:]]
            values.append({"caption": text, "displacement": moved})
            rows.append([image, *samples])
        measured = [v for q in values for v in q["displacement"] if v is not None]
        summary["models"][label] = {
            "model": model_identity(model),
            "queries": values,
            "mean_displacement": float(np.mean(measured)) if measured else None,
            "keeps_place": float(np.mean([v < config.tolerance for v in measured])) if measured else None,
            "samples_with_both_shapes": len(measured),
        }
        blocks.append((label, image_grid([im for row in rows for im in row], columns=1 + config.seeds, cell=96)))
    _figure(blocks, out / "fig11.png")
    write_json(out / "summary.json", summary)
    return summary


def _figure(blocks: list[tuple[str, Image.Image]], path: Path) -> None:
    width = max(b.width for _, b in blocks)
    sheet = Image.new("RGB", (width, sum(b.height + 24 for _, b in blocks)), "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for label, block in blocks:
        draw.text((6, y + 6), f"{label}: query, then four samples of one learned token", fill="black")
        sheet.paste(block, (0, y + 24))
        y += block.height + 24
    save_image(sheet, path)
