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
* ``threshold-sweep.png``: post hoc, rho and the mean minimum tokens at every threshold where
  a verdict could change, to tell whether the success criterion hides an ordering;
* ``report.html``: the figures and Fig. 5 style rows (query, then a sample for each m).

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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from originality.errors import OriginalityError
from originality.method.distances import reads_elements
from originality.method.search import ScoreConfig

# (shapes of the pair, fraction of the originality-mix training images): App. E.1.
GROUPS: dict[str, tuple[tuple[str, str], float]] = {
    "common": (("circle", "square"), 0.30),
    "rare": (("circle", "triangle"), 0.001),
    "unseen": (("square", "triangle"), 0.0),
}
SETTINGS_FILE = "experiment.json"
# Per-query read-backs, appended as they are made so that a rerun redoes only new queries.
CAPTIONS = "captions.jsonl"
SAMPLES = "samples.jsonl"


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
    from originality.models.pipeline import load_pipeline, model_identity

    config.validate()
    procs = processes()
    out = Path(out)
    # The query count is left out: rerunning with more --queries adds queries to a finished run.
    settings = {"config": {**config.to_dict(), "queries": None}, "model": model_identity(model)}
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
    summary = summarise(records, rows, config)
    read_samples(summary, out, records, rows, config)
    caption_ceiling(summary, out, pipeline, records, rows, config, progress=progress)
    summary["threshold_sweep"] = threshold_sweep(out, records, rows, config)
    summary["shape_pair"] = shape_pair_verdict(summary, out, records, rows, config)
    summary["model"] = settings["model"]
    summary["training_images_compared"] = compared
    summary["seconds_this_call"] = time.perf_counter() - started
    write_outputs(out, summary, records, rows)
    return summary


def _check_out(out: Path, settings: dict[str, Any]) -> bool:
    """True to resume a run of the very same settings in ``out``, False for a new folder; else refuse."""
    marker = out / SETTINGS_FILE
    if marker.is_file():
        if json.loads(marker.read_text()) != json.loads(json.dumps(settings)):
            raise OriginalityError(f"{out} holds an experiment with other settings; choose another --out")
        return True
    if out.exists() and any(out.iterdir()):
        raise OriginalityError(f"output folder {out} exists and is not an experiment to resume; choose another --out")
    return False


def summarise(records: list[dict[str, Any]], rows: list[dict[str, str]], config: MinTokensConfig) -> dict[str, Any]:
    m_max = config.score.max_tokens
    labels = [str(m) for m in range(1, m_max + 1)] + ["+"]
    group_of = {r["image"]: r["group"] for r in rows}
    by_group: dict[str, list[dict[str, Any]]] = {g: [] for g in config.groups}
    for r in records:
        by_group[group_of[r["image"]]].append(r)
    rank = {g: i + 1 for i, g in enumerate(sorted(config.groups, key=lambda g: -GROUPS[g][1]))}
    groups: dict[str, Any] = {}
    xs, ys = [], []
    for g, rs in by_group.items():
        tokens = [m_max + 1 if r["count"] is None else r["count"] for r in rs]
        # results.jsonl keys m as text; records fresh from score_all key it as int
        per_m = [{int(m): d for m, d in r["distances"].items()} for r in rs]
        curves = np.array([[d[m] for m in range(1, m_max + 1)] for d in per_m]).reshape(len(rs), m_max)
        groups[g] = {
            "pair": list(GROUPS[g][0]),
            "training_fraction": GROUPS[g][1],
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


def read_samples(
    summary: dict[str, Any], out: Path, records: list[dict[str, Any]], rows: list[dict[str, str]], config
) -> None:
    """What the samples hold, read back from the saved grids, by group and m: evidence beside the verdict.

    * ``detected_elements_by_m``: mean elements per sample (queries hold 2); a count that grows
      with m means the tokens add elements rather than fix them.
    * ``kinds_by_m``: the share of samples that are ``exact``, ``swapped`` (the query's shapes and
      colours, the colours on the other shapes), ``shapes`` (its shapes, other colours) or ``miss``.
      The groups are defined by their *shape* pair, with colours drawn alike in every group, so
      the right-shapes share (the first three) shows the frequency effect apart from how well
      the model binds colours to shapes.
    * ``sample_kinds``: the same shares per query (by image).
    * ``sample_spearman``: Spearman's rho between the group's frequency rank and each query's
      share of m = 1 samples that fail (not exact; not the right shapes): threshold-free, and
      positive in the paper's direction, like the minimum-token rho.

    Each query's grids are read once, into ``samples.jsonl``; a query whose grids are absent and
    that file does not hold (a run resumed from its committed ``results.jsonl`` alone) is left
    out; ``detected_elements_queries`` says how many were read.
    """
    from originality.batch import append_record, read_records
    from originality.detection.detector import MATCH_KINDS, ElementDetector, kind_shares
    from originality.report.grids import grid_cell
    from originality.shapes.captions import parse_caption

    score = config.score
    if not reads_elements(score.distance, score.check):
        return
    done = read_records(out / SAMPLES)
    detector = None
    row_of = {r["image"]: r for r in rows}
    counts: dict[str, list[list[float]]] = {g: [] for g in config.groups}
    kinds: dict[str, list[dict[str, list[float]]]] = {g: [] for g in config.groups}
    by_query: dict[str, dict[str, list[float]]] = {}
    for r in records:
        grids = [out / "scores" / r["folder"] / "samples" / f"m{m}.png" for m in range(1, score.max_tokens + 1)]
        if r["image"] not in done and all(g.is_file() for g in grids):
            detector = detector or ElementDetector.load(threshold=score.detector_threshold)
            want = Counter(parse_caption(row_of[r["image"]]["caption"]))
            per_m, shares = [], {k: [] for k in MATCH_KINDS}
            for path in grids:
                grid, size = Image.open(path), (config.size,) * 2
                cells = [grid_cell(grid, i).resize(size, Image.Resampling.BOX) for i in range(score.samples)]
                found = detector.detect(cells)
                per_m.append(float(np.mean([len(d) for d in found])))
                for kind, share in kind_shares(found, want).items():
                    shares[kind].append(share)
            done[r["image"]] = {"image": r["image"], "elements_by_m": per_m, "kinds": shares}
            append_record(out, done[r["image"]], SAMPLES)  # read once: later calls reuse it
        if r["image"] not in done:
            continue
        group = row_of[r["image"]]["group"]
        counts[group].append(done[r["image"]]["elements_by_m"])
        kinds[group].append(done[r["image"]]["kinds"])
        by_query[r["image"]] = done[r["image"]]["kinds"]
    xs, fails = [], {"not_exact": [], "wrong_shapes": []}
    for g in config.groups:
        v = summary["groups"][g]
        v["detected_elements_by_m"] = np.mean(counts[g], axis=0).tolist() if counts[g] else []
        v["detected_elements_queries"] = len(counts[g])
        v["kinds_by_m"] = {k: np.mean([q[k] for q in kinds[g]], axis=0).tolist() for k in MATCH_KINDS if kinds[g]}
        for q in kinds[g]:
            xs.append(v["frequency_rank"])
            fails["not_exact"].append(1 - q["exact"][0])
            fails["wrong_shapes"].append(q["miss"][0])
    summary["sample_spearman"] = {name: spearman(xs, ys) for name, ys in fails.items()}
    summary["sample_kinds"] = by_query


def caption_ceiling(
    summary: dict[str, Any],
    out: Path,
    pipeline,
    records: list[dict[str, Any]],
    rows: list[dict[str, str]],
    config: MinTokensConfig,
    *,
    progress: bool = True,
) -> None:
    """What the model draws from each query's own caption: its familiarity with the query.

    The method's claim is about the *model*: it represents concisely what it knows well. The
    groups stand in for that by training frequency; the caption ceiling measures it directly.
    Each scored query's true caption is sampled with the scorer's seeds, steps and guidance and
    read by the detector; the shares by match kind land in ``captions.jsonl`` (one line per
    query, so a rerun samples only new queries). Adds per group ``caption_kinds`` and
    ``caption_spearman``: Spearman's rho between each query's share of caption samples that are
    not exact and (a) its minimum tokens, (b) its distance at m = 1. Positive when the tokens
    follow what the model can draw from words.
    """
    from originality.batch import append_record, read_records
    from originality.detection.detector import MATCH_KINDS, ElementDetector, kind_shares
    from originality.method.search import sample_seeds
    from originality.models.pipeline import generate
    from originality.shapes.captions import parse_caption

    score = config.score
    if not reads_elements(score.distance, score.check):
        return
    done = read_records(out / CAPTIONS)
    row_of = {r["image"]: r for r in rows}
    todo = [r for r in records if r["image"] not in done]
    if todo:
        from tqdm.auto import tqdm

        detector = ElementDetector.load(threshold=score.detector_threshold)
        seeds = sample_seeds(score)
        for r in tqdm(todo, desc="caption ceiling", disable=not progress or len(todo) < 2, unit="query"):
            text = row_of[r["image"]]["caption"]
            samples = generate(
                pipeline, [text] * len(seeds), seeds, steps=score.inference_steps, guidance_scale=score.guidance_scale
            )
            shares = kind_shares(detector.detect(samples), Counter(parse_caption(text)))
            done[r["image"]] = {"image": r["image"], "caption": text, "kinds": shares}
            append_record(out, done[r["image"]], CAPTIONS)
    m_max = score.max_tokens
    misses, tokens, first = [], [], []
    for g in config.groups:
        mine = [done[r["image"]]["kinds"] for r in records if row_of[r["image"]]["group"] == g]
        summary["groups"][g]["caption_kinds"] = {k: float(np.mean([q[k] for q in mine])) for k in MATCH_KINDS if mine}
    for r in records:
        misses.append(1 - done[r["image"]]["kinds"]["exact"])
        tokens.append(m_max + 1 if r["count"] is None else r["count"])
        first.append({int(m): d for m, d in r["distances"].items()}[1])
    summary["caption_spearman"] = {"min_tokens": spearman(misses, tokens), "m1_distance": spearman(misses, first)}


def threshold_sweep(out: Path, records: list[dict[str, Any]], rows: list[dict[str, str]], config) -> dict[str, Any]:
    """Minimum tokens and Spearman's rho at every threshold where a verdict could change: post hoc.

    The experiment's verdict uses the preset's threshold, fixed on calibration queries. This
    sweep asks whether *any* threshold would show the paper's ordering, i.e. whether the
    success criterion is what stands between the scores and the ordering. The candidates are
    the distinct mean distances measured (with the ``elements`` distance: k / N exact
    samples); a pass still needs the in-distribution check, whose verdict is the same at every
    threshold. Queries whose verdicts are recorded neither in ``results.jsonl`` nor in their
    ``result.json`` are left out (``queries``).
    """
    m_max = config.score.max_tokens
    group_of = {r["image"]: r["group"] for r in rows}
    rank = {g: i + 1 for i, g in enumerate(sorted(config.groups, key=lambda g: -GROUPS[g][1]))}
    curves = []  # (group, {m: distance}, {m: check passed})
    for r in records:
        checks = check_verdicts(out, r)
        if checks is not None:
            curves.append((group_of[r["image"]], {int(m): d for m, d in r["distances"].items()}, checks))
    thresholds = sorted({d for _, ds, _ in curves for d in ds.values()})
    points = []
    for t in thresholds:
        tokens = {g: [] for g in config.groups}
        for g, ds, ok in curves:
            passing = [m for m in range(1, m_max + 1) if ds[m] <= t and ok[m]]
            tokens[g].append(passing[0] if passing else m_max + 1)
        xs = [rank[g] for g in config.groups for _ in tokens[g]]
        ys = [m for g in config.groups for m in tokens[g]]
        points.append(
            {
                "threshold": t,
                "mean_tokens": {g: float(np.mean(v)) if v else None for g, v in tokens.items()},
                "tokens": tokens,
                "spearman": spearman(xs, ys),
            }
        )
    return {"queries": len(curves), "preset_threshold": config.score.threshold, "points": points}


def check_verdicts(out: Path, record: dict[str, Any]) -> dict[int, bool] | None:
    """Whether the in-distribution check passed at each m (True where none ran), from the record
    or else its ``result.json``; None where neither holds them."""
    checks = record.get("in_distribution")
    if checks is None:
        path = out / "scores" / record["folder"] / "result.json"
        if not path.is_file():
            return None
        checks = {t["m"]: (t["in_distribution"] or {}).get("passed") for t in json.loads(path.read_text())["per_m"]}
    return {int(m): ok is not False for m, ok in checks.items()}


def shape_pair_verdict(
    summary: dict[str, Any], out: Path, records: list[dict[str, Any]], rows: list[dict[str, str]], config
) -> dict[str, Any] | None:
    """Minimum tokens under the ``shapes`` criterion, read from the samples beside the verdict.

    A sample counts when its shapes are the query's, whatever their colours; a query passes at
    m when the share that does not is <= the ``shapes`` threshold of the preset and the check
    passed. The groups differ in how often the *shape pair* was seen, colours being drawn alike,
    so this reads the frequency effect apart from colour binding. The threshold was fixed on
    earlier queries of this experiment (results/min-tokens/preregistration.md). None when the
    samples were not read.
    """
    from originality.method.search import THRESHOLDS

    kinds = summary.get("sample_kinds")
    if not kinds:
        return None
    threshold = THRESHOLDS["shapes"].get(config.score.preset, THRESHOLDS["shapes"]["paper"])
    m_max = config.score.max_tokens
    group_of = {r["image"]: r["group"] for r in rows}
    rank = {g: i + 1 for i, g in enumerate(sorted(config.groups, key=lambda g: -GROUPS[g][1]))}
    tokens: dict[str, int] = {}
    for r in records:
        checks = check_verdicts(out, r)
        if r["image"] not in kinds or checks is None:
            continue
        misses = kinds[r["image"]]["miss"]
        passing = [m for m in range(1, m_max + 1) if misses[m - 1] <= threshold + 1e-9 and checks[m]]
        tokens[r["image"]] = passing[0] if passing else m_max + 1
    labels = summary["labels"]
    groups = {}
    for g in config.groups:
        mine = [t for image, t in tokens.items() if group_of[image] == g]
        groups[g] = {
            "queries": len(mine),
            "histogram": {lab: sum(("+" if t > m_max else str(t)) == lab for t in mine) for lab in labels},
            "mean_tokens": float(np.mean(mine)) if mine else None,
        }
    xs = [rank[group_of[image]] for image in tokens]
    return {"threshold": threshold, "groups": groups, "tokens": tokens, "spearman": spearman(xs, list(tokens.values()))}


def spearman(xs: list[float], ys: list[float]) -> dict[str, float] | None:
    """Spearman's rho with its p-value and n; None where either side is constant."""
    from scipy.stats import spearmanr

    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    rho = spearmanr(xs, ys)
    return {"rho": float(rho.statistic), "p": float(rho.pvalue), "n": len(xs)}


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
        f"<tr><td>{e(g)}</td><td>{e(' + '.join(v['pair']))}</td><td>{v['training_fraction']:.1%}</td>"
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
