"""Fig. 5-6 of the paper: minimum tokens for common, rare and unseen element pairs (App. E.1).

On a model trained on the originality mix, the circle+square pair fills 30% of the training
images (common), circle+triangle 0.1% (rare), and square+triangle never occurs (unseen). The
paper finds that common queries reconstruct with one token, rare ones need two or three, and
unseen ones four, five or more.

The experiment renders fresh query images for each group (a seed no training set uses, and,
given the training data, a check that no query is one of its images), scores every query with
the full curve m = 1..M, and writes:

* ``fig6.png``: the histogram of minimum tokens per group ("+" for none within M);
* ``curves.png``: mean distance against m per group, with the spread over queries;
* ``summary.json``: every number, with Spearman's rho between the training-frequency rank of
  the group and the minimum token count ("+" counted as M + 1);
* ``report.html``: the figures and Fig. 5 style rows (query, then a sample for each m);
* beside the verdict, the evidence of :mod:`originality.experiments.verdict_checks`:
  ``threshold-sweep.png`` (rho at every threshold, post hoc), ``fig6-shapes.png`` (the verdict
  on the shape pair alone) and the caption ceiling of every query.

Each query's result lands in ``scores/`` as it finishes (``results.jsonl``); rerunning the same
command resumes. The experiment runs on the skeleton (``experiments/runner.py``), every process of a
launch taking its share of the queries.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from originality import runs
from originality.batch import finished, score_all
from originality.detection.detector import detector_identity
from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.experiments.runner import Experiment
from originality.experiments.verdict_checks import (
    caption_ceiling,
    read_samples,
    sample_captions,
    shape_pair_verdict,
    spearman,
    threshold_sweep,
)
from originality.method.distances import reads_elements
from originality.method.search import ScoreConfig, saved_config, score_preset
from originality.models.card import training_summary
from originality.models.pipeline import default_model, load_pipeline, model_identity
from originality.report.min_tokens import min_tokens_report
from originality.report.plots import group_curves, threshold_sweep_plot, token_histogram
from originality.shapes import preset
from originality.shapes.captions import colour_count
from originality.shapes.queries import APP_E1_FRACTIONS, GROUPS, check_not_in_training, make_queries


def training_fractions(model: str | Path | None) -> dict[str, float]:
    """Each group's fraction of the model's training images, read from its training summary.

    A model trained by ``originality`` records its spec's component fractions there (older runs
    only the spec's name, read as a preset such as ``originality-mix-rarer``); any other model
    gets App. E.1's fractions.
    """
    fractions = dict(APP_E1_FRACTIONS)
    folder = default_model() if model is None else Path(model)
    try:
        dataset = (training_summary(folder) or {})["dataset"]  # none: KeyError, App. E.1's
        recorded = dataset.get("fractions") or {c.name: c.fraction for c in preset(dataset["spec"]).components}
        fractions.update({k: float(v) for k, v in recorded.items() if k in fractions})
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OriginalityError):
        return dict(APP_E1_FRACTIONS)  # a summary that is not ours, or damaged: nothing half-read
    return fractions


@dataclass
class MinTokensConfig:
    queries: int = field(default=20, metadata={"help": "queries per group (paper: 20)"})
    # Training sets are made with small seeds; queries draw from rng([query_seed, group, index]).
    query_seed: int = field(default=7_000_003, metadata={"help": "the queries' seed, apart from any training set's"})
    size: int = field(default=64, metadata={"help": "query side in pixels"})
    groups: tuple[str, ...] = field(default=("common", "rare", "unseen"), metadata={"help": "groups to query"})
    model: str | None = field(default=None, metadata={"help": "pipeline folder (default: the shipped model)"})
    training_data: str | None = field(
        default=None, metadata={"help": "the model's training dataset: check that no query is one of its images"}
    )
    score: ScoreConfig = field(default_factory=lambda: score_preset("quick"))

    def validate(self) -> MinTokensConfig:
        if self.queries < 1:
            raise OriginalityError(f"--queries must be >= 1, got {self.queries}")
        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown:
            raise OriginalityError(f"unknown group {unknown[0]!r}; known: {', '.join(GROUPS)}")
        # The token count alone: the signals experiment reads these queries' signals.
        self.score = dataclasses.replace(self.score, full_curve=True, signals="none").resolve(load_domain("shapes"))
        return self

    def to_dict(self) -> dict[str, Any]:
        """The settings the scores depend on: the model enters by its digest (``identity``), and the
        training set is only checked against, so neither is here."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("model", "training_data")}


PRESETS = {
    "quick": lambda: MinTokensConfig(score=score_preset("quick")),
    "paper": lambda: MinTokensConfig(score=score_preset("paper")),
}
TRAINING_CHECK = "training-check.json"  # how many training images the queries were compared with


# -- the run ----------------------------------------------------------------------------------------
def run(out: Path, config: MinTokensConfig, progress: bool = True) -> None:
    """Render the queries, score each (resuming), then sample each query's own caption.

    Under ``accelerate launch`` (or ``torchrun``) every process runs this and the processes share
    the queries (each scores every K-th unfinished one); the first renders and samples the captions.
    """
    procs = runs.processes()
    pipeline = load_pipeline(config.model, device=procs.device)
    if procs.first:
        rows = make_queries(out, config.queries, config.query_seed, config.size, config.groups)
        if config.training_data:
            compared = check_not_in_training(out, rows, config.training_data)
            runs.write_json(out / TRAINING_CHECK, {"training_images_compared": compared})
    procs.barrier()
    records = score_all(out / "queries.csv", pipeline, config.score, out / "scores", progress=progress, procs=procs)
    if procs.first:
        sample_captions(out, records, _rows(out), config.score, pipeline=pipeline, progress=progress)


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "queries.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _records(out: Path, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The scored queries of ``rows``, in their order (a query that failed is left out)."""
    by_image = {r["image"]: r for r in finished(out / "scores").values() if r.get("status") != "error"}
    return [by_image[r["image"]] for r in rows if r["image"] in by_image]


def summarise_run(out: Path, config: MinTokensConfig) -> dict[str, Any]:
    rows = _rows(out)
    records = _records(out, rows)
    summary = summarise(records, rows, config, training_fractions(config.model))
    # The evidence beside the verdict: each adds its numbers to the summary.
    read_samples(summary, out, records, rows, config.score)
    caption_ceiling(summary, out, records, rows, config.score)
    threshold_sweep(summary, out, records, rows, config.score)
    shape_pair_verdict(summary, out, records, rows, config.score)
    summary.update(identity(config))
    check = out / TRAINING_CHECK
    summary["training_images_compared"] = runs.read_json(check)["training_images_compared"] if check.is_file() else None
    return summary


def identity(config: MinTokensConfig) -> dict[str, Any]:
    """The model by its digest, and the detector when the scores are its readings."""
    pinned: dict[str, Any] = {"model": model_identity(config.model)}
    if reads_elements(config.score.distance, config.score.check):
        pinned["detector"] = detector_identity()
    return pinned


def comparable(saved: dict[str, Any]) -> dict[str, Any]:
    """Saved settings read with score settings added since at their defaults; folders written
    before the experiment moved onto the skeleton carry no ``experiment`` entry."""
    config = dict(saved.get("config", {}))
    if isinstance(config.get("score"), dict):
        config["score"] = saved_config(config["score"])
    return {**{k: v for k, v in saved.items() if k != "experiment"}, "config": config}


def summarise(
    records: list[dict[str, Any]],
    rows: list[dict[str, str]],
    config: MinTokensConfig,
    fractions: dict[str, float] | None = None,
) -> dict[str, Any]:
    m_max = config.score.max_tokens
    labels = [str(m) for m in range(1, m_max + 1)] + ["+"]
    group_of = {r["image"]: r["group"] for r in rows}
    by_group: dict[str, list[dict[str, Any]]] = {g: [] for g in config.groups}
    for r in records:
        by_group[group_of[r["image"]]].append(r)
    fractions = fractions or APP_E1_FRACTIONS
    rank = {g: i + 1 for i, g in enumerate(sorted(config.groups, key=lambda g: -fractions[g]))}
    groups: dict[str, Any] = {}
    xs, ys = [], []
    for g, rs in by_group.items():
        tokens = [m_max + 1 if r["count"] is None else r["count"] for r in rs]
        # results.jsonl (JSON) keys m as text
        per_m = [{int(m): d for m, d in r["distances"].items()} for r in rs]
        curves = np.array([[d[m] for m in range(1, m_max + 1)] for d in per_m]).reshape(len(rs), m_max)
        groups[g] = {
            "pair": list(GROUPS[g][0]),
            "training_fraction": fractions[g],
            "frequency_rank": rank[g],
            "queries": len(rs),
            "histogram": {lab: sum(r["label"] == lab for r in rs) for lab in labels},
            "mean_tokens": float(np.mean(tokens)) if rs else None,
            "mean_soft_tokens": float(np.mean([r["soft_tokens"] for r in rs])) if rs else None,
            "distance_mean_by_m": curves.mean(axis=0).tolist() if rs else [],
            "distance_std_by_m": curves.std(axis=0).tolist() if rs else [],
        }
        xs += [rank[g]] * len(rs)
        ys += tokens
    return {
        "groups": groups,
        "spearman": spearman(xs, ys),
        "by_colours": by_colours(records, rows, m_max),
        "labels": labels,
        "settings": config.to_dict(),
    }


def by_colours(records: list[dict[str, Any]], rows: list[dict[str, str]], m_max: int) -> dict[str, Any]:
    """Minimum tokens split by how many colours the query's pair has (one or two), per group.

    A model that binds colours to shapes poorly reconstructs a pair of one colour more easily
    than a pair of two, whatever the pair's training frequency; this split shows that effect
    apart from the frequency one.
    """
    info = {r["image"]: (r["group"], colour_count(r["caption"])) for r in rows}
    split: dict[str, dict[str, list[int]]] = {}
    for r in records:
        group, colours = info[r["image"]]
        key = "one colour" if colours == 1 else f"{colours} colours"
        split.setdefault(key, {}).setdefault(group, []).append(m_max + 1 if r["count"] is None else r["count"])
    return {
        key: {g: {"queries": len(t), "mean_tokens": float(np.mean(t)), "tokens": t} for g, t in sorted(groups.items())}
        for key, groups in sorted(split.items())
    }


def figures(out: Path, summary: dict[str, Any]) -> list[Path]:
    made = [token_histogram(summary, out / "fig6.png"), group_curves(summary, out / "curves.png")]
    if summary["threshold_sweep"]["points"]:
        made.append(threshold_sweep_plot(summary, out / "threshold-sweep.png"))
    if summary.get("shape_pair"):
        shapes = {**summary["shape_pair"], "labels": summary["labels"]}
        title = "minimum tokens, shape pair only (colours ignored)"
        made.append(token_histogram(shapes, out / "fig6-shapes.png", title=title))
    return [Path(p) for p in made if p is not None]


def report(out: Path, summary: dict[str, Any]) -> Path:
    rows = _rows(out)
    return min_tokens_report(out, summary, _records(out, rows), rows)


def table(summary: dict[str, Any]) -> str:
    labels = summary["labels"]
    lines = [f"{'group':8s} " + " ".join(f"{lab:>3s}" for lab in labels) + "  mean soft tokens"]
    for name, g in summary["groups"].items():
        counts = " ".join(f"{g['histogram'][lab]:3d}" for lab in labels)
        lines.append(f"{name:8s} {counts}  {g['mean_soft_tokens']:.2f}")
    rho = summary["spearman"]
    if rho:
        lines.append(f"Spearman rho {rho['rho']:.3f} (p = {rho['p']:.2g}, n = {rho['n']})")
    return "\n".join(lines)


EXPERIMENT = Experiment(
    name="min-tokens",
    title="Fig. 5-6: minimum tokens for common, rare and unseen pairs",
    presets=PRESETS,
    run=run,
    summarise=summarise_run,
    table=table,
    figures=figures,
    identity=identity,
    grows=("queries",),
    report=report,
    parallel=True,
    score_options=True,
    marker="experiment.json",
    compare=comparable,
)
