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
* beside the verdict, the evidence of :mod:`originality.experiments.min_tokens_evidence`:
  ``threshold-sweep.png`` (rho at every threshold, post hoc), ``fig6-shapes.png`` (the verdict
  on the shape pair alone) and the caption ceiling of every query.

Each query's result lands in ``scores/`` as it finishes (``results.jsonl``); rerunning the same
command resumes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from originality.errors import OriginalityError
from originality.experiments.min_tokens_evidence import (
    caption_ceiling,
    read_samples,
    shape_pair_verdict,
    spearman,
    threshold_sweep,
)
from originality.method.search import ScoreConfig, saved_config
from originality.shapes.specs import MIX_UNSEEN_PAIR, originality_mix

# (shapes of the pair, fraction of the originality-mix training images): App. E.1, read off the spec.
GROUPS: dict[str, tuple[tuple[str, ...], float]] = {
    **{c.name: (tuple(c.shapes), c.fraction) for c in originality_mix().components},
    "unseen": (MIX_UNSEEN_PAIR, 0.0),
}
APP_E1_FRACTIONS = {g: f for g, (_, f) in GROUPS.items()}
SETTINGS_FILE = "experiment.json"


def training_fractions(model: str | Path | None) -> dict[str, float]:
    """Each group's fraction of the model's training images, read from its training summary.

    A model trained by ``originality`` records its spec's component fractions there (older runs
    only the spec's name, read as a preset such as ``originality-mix-rarer``); any other model
    gets App. E.1's fractions.
    """
    from originality.models.pipeline import default_model
    from originality.models.training import training_summary
    from originality.shapes import preset

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
    queries: int = 20  # per group (paper: 20)
    # Training sets are made with small seeds; queries draw from rng([query_seed, group, index]).
    query_seed: int = 7_000_003
    size: int = 64
    groups: tuple[str, ...] = ("common", "rare", "unseen")
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def validate(self) -> MinTokensConfig:
        if self.queries < 1:
            raise OriginalityError(f"--queries must be >= 1, got {self.queries}")
        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown:
            raise OriginalityError(f"unknown group {unknown[0]!r}; known: {', '.join(GROUPS)}")
        from originality.domains import load_domain

        self.score = dataclasses.replace(self.score, full_curve=True).resolve(load_domain("shapes"))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- queries ----------------------------------------------------------------------------------------
def render_query(group: str, index: int, seed: int, size: int = 64) -> tuple[Image.Image, str]:
    """Query ``index`` of ``group``: the pair's two shapes, colours drawn as the mix draws them."""
    from originality.shapes.captions import caption
    from originality.shapes.rendering import render, sample_layout
    from originality.shapes.specs import Component, originality_mix

    shapes, _ = GROUPS[group]
    spec = originality_mix()
    rng = np.random.default_rng([seed, list(GROUPS).index(group), index])
    elements = spec.component_elements(Component(group, 1.0, list(shapes)), rng)
    placed = sample_layout(elements, size, rng)
    return render(placed, size), caption(elements)


def make_queries(out: Path, config: MinTokensConfig) -> list[dict[str, str]]:
    """Write ``queries/<group>-<i>.png`` and ``queries.csv`` (image, group, caption).

    The rows go index by index (common-00, rare-00, unseen-00, common-01, ...), so that a run
    stopped part way has scored the groups evenly."""
    folder = out / "queries"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(config.queries):
        for group in config.groups:
            image, text = render_query(group, i, config.query_seed, config.size)
            name = f"{group}-{i:02d}.png"
            image.save(folder / name)
            rows.append({"image": f"queries/{name}", "group": group, "caption": text})
    with (out / "queries.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "group", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _pixels_hash(image: Image.Image) -> str:
    return hashlib.sha256(np.asarray(image.convert("RGB")).tobytes()).hexdigest()


def check_not_in_training(out: Path, rows: list[dict[str, str]], training: str | Path) -> int:
    """Refuse if any query's pixels equal a training image's; returns the number compared."""
    from originality.shapes.dataset import read_table

    wanted = {_pixels_hash(Image.open(out / r["image"])): r["image"] for r in rows}
    captions = {r["caption"] for r in rows}
    table = read_table(training, columns=["image", "caption"])
    compared = 0
    for record in table.to_pylist():
        if record["caption"] not in captions:  # different content: cannot be the same image
            continue
        compared += 1
        digest = _pixels_hash(Image.open(io.BytesIO(record["image"]["bytes"])))
        if digest in wanted:
            raise OriginalityError(f"query {wanted[digest]} is a training image; choose another --query-seed")
    return compared


# -- the run ----------------------------------------------------------------------------------------
def run_min_tokens(
    model: str | Path | None,
    out: str | Path,
    config: MinTokensConfig,
    *,
    training: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any] | None:
    """Score every query (resuming), then write the figures, summary.json and report.html.

    Under ``accelerate launch`` (or ``torchrun``) the processes share the queries (each scores
    every K-th unfinished one); the first writes the folder's files and returns the summary,
    the others return None.
    """
    from originality.batch import processes, score_all
    from originality.models.pipeline import load_pipeline

    config.validate()
    procs = processes()
    out = Path(out)
    settings = run_settings(model, config)
    resuming = _check_out(out, settings)  # every process checks before the first one writes
    pipeline = load_pipeline(model, device=procs.device)  # a bad --model fails before anything is written
    procs.barrier()
    if procs.index == 0:
        if not resuming:
            out.mkdir(parents=True, exist_ok=True)
            (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=1) + "\n")
        rows = make_queries(out, config)
        compared = check_not_in_training(out, rows, training) if training else None
    procs.barrier()
    if procs.index > 0:
        with (out / "queries.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
    started = time.perf_counter()
    records = score_all(out / "queries.csv", pipeline, config.score, out / "scores", progress=progress, procs=procs)
    if procs.index > 0:
        return None
    summary = summarise(records, rows, config, training_fractions(model))
    # The evidence beside the verdict: each adds its numbers to the summary.
    read_samples(summary, out, records, rows, config)
    caption_ceiling(summary, out, records, rows, config, pipeline=pipeline, progress=progress)
    threshold_sweep(summary, out, records, rows, config)
    shape_pair_verdict(summary, out, records, rows, config)
    summary["model"] = settings["model"]
    summary["detector"] = settings.get("detector")
    summary["training_images_compared"] = compared
    summary["seconds_this_call"] = time.perf_counter() - started
    write_outputs(out, summary, records, rows)
    return summary


def run_settings(model: str | Path | None, config: MinTokensConfig) -> dict[str, Any]:
    """What a run's scores depend on, saved in its folder: a rerun resumes only where they match.

    The query count is left out, so rerunning with more ``queries`` extends a finished run.
    """
    from originality.detection.detector import detector_identity
    from originality.method.distances import reads_elements
    from originality.models.pipeline import model_identity

    settings = {"config": {**config.to_dict(), "queries": None}, "model": model_identity(model)}
    if reads_elements(config.score.distance, config.score.check):  # the scores are the detector's readings
        settings["detector"] = detector_identity()
    return settings


def _check_out(out: Path, settings: dict[str, Any]) -> bool:
    """True to resume a run of the very same settings in ``out``, False for a new folder; else refuse."""
    marker = out / SETTINGS_FILE
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if isinstance(saved.get("config", {}).get("score"), dict):
            saved["config"]["score"] = saved_config(saved["config"]["score"])
        if saved != json.loads(json.dumps(settings)):
            raise OriginalityError(f"{out} holds an experiment with other settings; choose another --out")
        return True
    if out.exists() and any(out.iterdir()):
        raise OriginalityError(f"output folder {out} exists and is not an experiment to resume; choose another --out")
    return False


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
    from originality.shapes.captions import colour_count

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


def write_outputs(
    out: Path, summary: dict[str, Any], records: list[dict[str, Any]], rows: list[dict[str, str]]
) -> None:
    from originality.report.plots import group_curves, threshold_sweep_plot, token_histogram

    token_histogram(summary, out / "fig6.png")
    group_curves(summary, out / "curves.png")
    if summary["threshold_sweep"]["points"]:
        threshold_sweep_plot(summary, out / "threshold-sweep.png")
    if summary.get("shape_pair"):
        shapes = {**summary["shape_pair"], "labels": summary["labels"]}
        token_histogram(shapes, out / "fig6-shapes.png", title="minimum tokens, shape pair only (colours ignored)")
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(out / "summary.json")
    write_report(out, summary, records, rows)


def write_report(out: Path, summary: dict[str, Any], records: list[dict[str, Any]], rows: list[dict[str, str]]) -> Path:
    """``report.html``: the figures, the numbers, and a Fig. 5 row per query."""
    import html

    from originality.report.grids import grid_cell
    from originality.report.html import STYLE, inline_png

    e = html.escape
    m_max = summary["settings"]["score"]["max_tokens"]
    by_image = {r["image"]: r for r in records}
    table = "".join(
        f"<tr><td>{e(g)}</td><td>{e(' + '.join(v['pair']))}</td><td>{v['training_fraction'] * 100:g}%</td>"
        f"<td>{v['queries']}</td>"
        + "".join(f"<td>{v['histogram'][lab]}</td>" for lab in summary["labels"])
        + f"<td>{_fmt(v['mean_soft_tokens'])}</td>"
        + f"<td>{' '.join(f'{x:.1f}' for x in v.get('detected_elements_by_m', []))}</td>"
        + "".join(f"<td>{' '.join(f'{x:.2f}' for x in share)}</td>" for share in _shares(v))
        + f"<td>{_caption_text(v)}</td></tr>"
        for g, v in summary["groups"].items()
    )
    colours = "".join(
        f"<tr><td>{e(key)}</td><td>{e(g)}</td><td>{v['queries']}</td><td>{v['mean_tokens']:.2f}</td>"
        f"<td>{e(', '.join(str(t) for t in v['tokens']))}</td></tr>"
        for key, groups in summary["by_colours"].items()
        for g, v in groups.items()
    )
    sections = []
    for group in summary["groups"]:
        lines = []
        for row in (r for r in rows if r["group"] == group):
            record = by_image.get(row["image"])
            if record is None:
                continue
            folder = out / "scores" / record["folder"]
            cells = [f"<img class=px width=64 src='{inline_png(out / row['image'])}'>"]
            for m in range(1, m_max + 1):
                grid = folder / "samples" / f"m{m}.png"
                cells.append(
                    f"<img class=px width=64 src='{inline_png(grid_cell(grid, 0))}'>" if grid.is_file() else ""
                )
            lines.append(
                f"<tr><td>{e(row['image'])}<br><small>{e(row['caption'])}</small></td>"
                + "".join(f"<td>{c}</td>" for c in cells)
                + f"<td><b>{e(record['label'])}</b></td></tr>"
            )
        head = "".join(f"<th>m = {m}</th>" for m in range(1, m_max + 1))
        sections.append(
            f"<h2>{e(group)}</h2><table><tr><th>query</th><th>image</th>{head}<th>min tokens</th></tr>"
            + "".join(lines)
            + "</table>"
        )
    rho = summary["spearman"]
    samples_rho = summary.get("sample_spearman") or {}
    caption_rho = summary.get("caption_spearman") or {}
    by_samples = (
        f"not exact: {_rho_text(samples_rho['not_exact'])}; "
        f"of the wrong shapes: {_rho_text(samples_rho['wrong_shapes'])}"
        if samples_rho
        else "(no sample grids)"
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>originality: minimum tokens (Fig. 5-6)</title>
<style>{STYLE}</style></head><body>
<h1>Minimum tokens for common, rare and unseen pairs</h1>
<p>Model: <code>{e(summary["model"])}</code>. Spearman's rho between training-frequency rank and minimum
tokens ("+" = {m_max + 1}): <b>{e(_rho_text(rho))}</b>.</p>
<p>From the samples, threshold-free: rho between the frequency rank and each query's share of m = 1 samples
that are {e(by_samples)}.</p>
<table><tr><th>group</th><th>pair</th><th>in training</th><th>queries</th>
{"".join(f"<th>{e(lab)}</th>" for lab in summary["labels"])}<th>mean soft tokens</th>
<th>elements per sample, m = 1..M</th><th>exact share, m = 1..M</th><th>right shapes (any colours)</th>
<th>swapped colours</th><th>from its caption: exact / swapped</th></tr>{table}</table>
<p>Against the model's own familiarity with each query (the share of samples from its true caption that are
not exact): rho with minimum tokens {e(_rho_text(caption_rho.get("min_tokens")))}; with the distance at
m = 1 {e(_rho_text(caption_rho.get("m1_distance")))}.</p>
<img src='{inline_png(out / "fig6.png")}'> <img src='{inline_png(out / "curves.png")}'>
{_shape_pair_section(out, summary)}
{_sweep_section(out, summary)}
<h2>By the number of colours in the pair</h2>
<table><tr><th>colours</th><th>group</th><th>queries</th><th>mean tokens</th><th>tokens ("+" = {m_max + 1})</th></tr>
{colours}</table>
<p>Rows: the query, then the first of the N reconstructions at each token count.</p>
{"".join(sections)}
<pre>{e(json.dumps(summary["settings"], indent=1))}</pre></body></html>"""
    tmp = out / ".report.html.tmp"
    tmp.write_text(page)
    tmp.replace(out / "report.html")
    return out / "report.html"


def _shape_pair_section(out: Path, summary: dict[str, Any]) -> str:
    """The verdict when a sample needs only the query's shapes, beside the preset's."""
    import html

    from originality.report.html import inline_png

    verdict = summary.get("shape_pair")
    if not verdict:
        return ""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(g)}</td><td>{v['queries']}</td>"
        + "".join(f"<td>{v['histogram'][lab]}</td>" for lab in summary["labels"])
        + f"<td>{_fmt(v['mean_tokens'])}</td></tr>"
        for g, v in verdict["groups"].items()
    )
    return (
        "<h2>The shape pair only</h2><p>A sample counts when it holds the query's shapes, whatever their colours "
        f"(the groups differ in how often the shape pair was seen; colours are drawn alike); a query passes when "
        f"the share that does not is &lt;= {verdict['threshold']} and the check passes. The threshold was chosen on "
        "the first 30 queries of the shipped model's run (the project's results/min-tokens/preregistration.md): "
        f"on those it was fitted. Spearman's rho: "
        f"<b>{e(_rho_text(verdict['spearman']))}</b>.</p>"
        f"<table><tr><th>group</th><th>queries</th>{''.join(f'<th>{e(lab)}</th>' for lab in summary['labels'])}"
        f"<th>mean tokens</th></tr>{rows}</table><img src='{inline_png(out / 'fig6-shapes.png')}'>"
    )


def _sweep_section(out: Path, summary: dict[str, Any]) -> str:
    """The threshold sweep, said to be post hoc, with its best point."""
    from originality.report.html import inline_png

    sweep = summary["threshold_sweep"]
    scored = [p for p in sweep["points"] if p["spearman"]]
    if not scored:
        return ""
    best = max(scored, key=lambda p: p["spearman"]["rho"])
    return (
        "<h2>Post hoc: the verdict at every threshold</h2>"
        f"<p>The experiment's verdict (the first table) uses the preset's threshold ({sweep['preset_threshold']}), "
        "fixed before this run. "
        f"Swept over every threshold where a verdict could change ({sweep['queries']} queries), rho is highest at "
        f"{best['threshold']:.3f}: {_rho_text(best['spearman'])}. Choosing the threshold from this plot would fit "
        f"it to the evaluated queries; it shows whether the criterion is what hides an ordering.</p>"
        f"<img src='{inline_png(out / 'threshold-sweep.png')}'>"
    )


def _shares(group: dict[str, Any]) -> list[list[float]]:
    """Exact, right-shapes and swapped shares by m (empty without sample grids)."""
    kinds = group.get("kinds_by_m") or {}
    if not kinds:
        return [[], [], []]
    return [kinds["exact"], [1 - miss for miss in kinds["miss"]], kinds["swapped"]]


def _caption_text(group: dict[str, Any]) -> str:
    kinds = group.get("caption_kinds")
    return f"{kinds['exact']:.2f} / {kinds['swapped']:.2f}" if kinds else "—"


def _rho_text(rho: dict[str, float] | None) -> str:
    return (
        "n/a (one group or one value only)" if rho is None else f"{rho['rho']:.3f} (p = {rho['p']:.2g}, n = {rho['n']})"
    )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
