"""Checks of the min-tokens verdict: what the samples hold, and whether another criterion changes it.

The four below take the same arguments, ``(summary, out, records, rows, score)``: the
experiment's summary (which each extends), its output folder, the scored records, the query
rows and the scoring config. They read back what the run saved and rescore nothing; only the caption
ceiling samples the model (its ``pipeline``), once per query.

* :func:`read_samples`: what the samples of each m hold (exact, colours swapped, right shapes
  with other colours, or a miss), per query and per group.
* :func:`caption_ceiling`: what the model draws from each query's true caption, i.e. how well it
  knows the query, and whether the token counts follow that.
* :func:`threshold_sweep`: the verdict at every threshold (post hoc).
* :func:`shape_pair_verdict`: the verdict when a sample needs only the query's shapes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from originality import runs
from originality.detection.detector import MATCH_KINDS, ElementDetector, kind_shares
from originality.method.distances import reads_elements
from originality.method.search import THRESHOLDS, ScoreConfig, sample_seeds
from originality.models.pipeline import generate
from originality.report.grids import grid_cell
from originality.shapes.captions import parse_caption
from originality.stats import spearman

# The shared arguments' types: the summary, the scored records, the query rows.
Summary = dict[str, Any]
Records = list[dict[str, Any]]
Rows = list[dict[str, str]]
# Per-query read-backs, appended as they are made so that a rerun redoes only new queries.
CAPTIONS = "captions.jsonl"
SAMPLES = "samples.jsonl"


def read_samples(summary: Summary, out: Path, records: Records, rows: Rows, score: ScoreConfig) -> None:
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
    if not reads_elements(score.distance, score.check):
        return
    done = runs.read_records(out, SAMPLES, "image")
    detector = None
    row_of = {r["image"]: r for r in rows}
    groups = list(summary["groups"])
    side = (summary["settings"]["size"],) * 2  # the grids' cells, back at the queries' size
    counts: dict[str, list[list[float]]] = {g: [] for g in groups}
    kinds: dict[str, list[dict[str, list[float]]]] = {g: [] for g in groups}
    by_query: dict[str, dict[str, list[float]]] = {}
    for r in records:
        grids = [out / "scores" / r["folder"] / "samples" / f"m{m}.png" for m in range(1, score.max_tokens + 1)]
        if r["image"] not in done and all(g.is_file() for g in grids):
            detector = detector or ElementDetector.load(threshold=score.detector_threshold)
            want = Counter(parse_caption(row_of[r["image"]]["caption"]))
            per_m, shares = [], {k: [] for k in MATCH_KINDS}
            for path in grids:
                grid = Image.open(path)
                cells = [grid_cell(grid, i).resize(side, Image.Resampling.BOX) for i in range(score.samples)]
                found = detector.detect(cells)
                per_m.append(float(np.mean([len(d) for d in found])))
                for kind, share in kind_shares(found, want).items():
                    shares[kind].append(share)
            done[r["image"]] = {"image": r["image"], "elements_by_m": per_m, "kinds": shares}
            runs.append_jsonl(out / SAMPLES, done[r["image"]])  # read once: later calls reuse it
        if r["image"] not in done:
            continue
        group = row_of[r["image"]]["group"]
        counts[group].append(done[r["image"]]["elements_by_m"])
        kinds[group].append(done[r["image"]]["kinds"])
        by_query[r["image"]] = done[r["image"]]["kinds"]
    xs, fails = [], {"not_exact": [], "wrong_shapes": []}
    for g in groups:
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


def sample_captions(
    out: Path, records: Records, rows: Rows, score: ScoreConfig, *, pipeline, progress: bool = True
) -> None:
    """Sample each scored query's true caption with the scorer's seeds, steps and guidance, read
    the samples with the detector and append the shares by match kind to ``captions.jsonl`` (one
    line per query, so that a rerun samples only new queries): :func:`caption_ceiling` reads them."""
    if not reads_elements(score.distance, score.check):
        return
    done = runs.read_records(out, CAPTIONS, "image")
    row_of = {r["image"]: r for r in rows}
    todo = [r for r in records if r["image"] not in done]
    if not todo:
        return
    detector = ElementDetector.load(threshold=score.detector_threshold)
    seeds = sample_seeds(score)
    for r in tqdm(todo, desc="caption ceiling", disable=not progress or len(todo) < 2, unit="query"):
        text = row_of[r["image"]]["caption"]
        samples = generate(
            pipeline, [text] * len(seeds), seeds, steps=score.inference_steps, guidance_scale=score.guidance_scale
        )
        shares = kind_shares(detector.detect(samples), Counter(parse_caption(text)))
        runs.append_jsonl(out / CAPTIONS, {"image": r["image"], "caption": text, "kinds": shares})


def caption_ceiling(summary: Summary, out: Path, records: Records, rows: Rows, score: ScoreConfig) -> None:
    """What the model draws from each query's own caption: its familiarity with the query.

    The method's claim is about the *model*: it represents concisely what it knows well. The
    groups stand in for that by training frequency; the caption ceiling measures it directly,
    from the samples :func:`sample_captions` read. Adds per group ``caption_kinds`` and
    ``caption_spearman``: Spearman's rho between each query's share of caption samples that are
    not exact and (a) its minimum tokens, (b) its distance at m = 1. Positive when the tokens
    follow what the model can draw from words.
    """
    if not reads_elements(score.distance, score.check):
        return
    done = runs.read_records(out, CAPTIONS, "image")
    row_of = {r["image"]: r for r in rows}
    records = [r for r in records if r["image"] in done]  # queries scored since: sampled on the next run
    m_max = score.max_tokens
    misses, tokens, first = [], [], []
    for g in summary["groups"]:
        mine = [done[r["image"]]["kinds"] for r in records if row_of[r["image"]]["group"] == g]
        summary["groups"][g]["caption_kinds"] = {k: float(np.mean([q[k] for q in mine])) for k in MATCH_KINDS if mine}
    for r in records:
        misses.append(1 - done[r["image"]]["kinds"]["exact"])
        tokens.append(m_max + 1 if r["count"] is None else r["count"])
        first.append({int(m): d for m, d in r["distances"].items()}[1])
    summary["caption_spearman"] = {"min_tokens": spearman(misses, tokens), "m1_distance": spearman(misses, first)}


def threshold_sweep(summary: Summary, out: Path, records: Records, rows: Rows, score: ScoreConfig) -> dict[str, Any]:
    """Minimum tokens and Spearman's rho at every threshold where a verdict could change: post hoc.

    The experiment's verdict uses the preset's threshold, fixed on calibration queries. This
    sweep asks whether *any* threshold would show the paper's ordering, i.e. whether the
    success criterion is what stands between the scores and the ordering. The candidates are
    the distinct mean distances measured (with the ``elements`` distance: k / N exact
    samples); a pass still needs the in-distribution check, whose verdict is the same at every
    threshold. Queries whose verdicts are recorded neither in ``results.jsonl`` nor in their
    ``result.json`` are left out (``queries``).
    """
    m_max = score.max_tokens
    group_of = {r["image"]: r["group"] for r in rows}
    rank = {g: v["frequency_rank"] for g, v in summary["groups"].items()}
    curves = []  # (group, {m: distance}, {m: check passed})
    for r in records:
        checks = check_verdicts(out, r)
        if checks is not None:
            curves.append((group_of[r["image"]], {int(m): d for m, d in r["distances"].items()}, checks))
    thresholds = sorted({d for _, ds, _ in curves for d in ds.values()})
    points = []
    for t in thresholds:
        tokens = {g: [] for g in summary["groups"]}
        for g, ds, ok in curves:
            tokens[g].append(first_pass(ds, ok, t, m_max))
        xs = [rank[g] for g in tokens for _ in tokens[g]]
        ys = [m for g in tokens for m in tokens[g]]
        points.append(
            {
                "threshold": t,
                "mean_tokens": {g: float(np.mean(v)) if v else None for g, v in tokens.items()},
                "tokens": tokens,
                "spearman": spearman(xs, ys),
            }
        )
    summary["threshold_sweep"] = {"queries": len(curves), "preset_threshold": score.threshold, "points": points}
    return summary["threshold_sweep"]


def first_pass(distances: dict[int, float], checks: dict[int, bool], threshold: float, m_max: int) -> int:
    """The search's rule: the smallest m whose distance is <= the threshold and whose check
    passed; M + 1 ("+") when none does. The tolerance keeps shares such as 4 / 16 on the
    threshold they equal."""
    passing = [m for m in range(1, m_max + 1) if distances[m] <= threshold + 1e-9 and checks[m]]
    return passing[0] if passing else m_max + 1


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
    summary: Summary, out: Path, records: Records, rows: Rows, score: ScoreConfig
) -> dict[str, Any] | None:
    """Minimum tokens under the ``shapes`` criterion, read from the samples beside the verdict.

    A sample counts when its shapes are the query's, whatever their colours; a query passes at
    m when the share that does not is <= the ``shapes`` threshold of the preset and the check
    passed. The groups differ in how often the *shape pair* was seen, colours being drawn alike,
    so this reads the frequency effect apart from colour binding. The threshold was fixed on
    earlier queries of this experiment (results/min-tokens/preregistration.md). None when the
    samples were not read.
    """
    kinds = summary.get("sample_kinds")
    summary["shape_pair"] = None
    if not kinds:
        return None
    threshold = THRESHOLDS["shapes"].get(score.preset, THRESHOLDS["shapes"]["paper"])
    m_max = score.max_tokens
    group_of = {r["image"]: r["group"] for r in rows}
    rank = {g: v["frequency_rank"] for g, v in summary["groups"].items()}
    tokens: dict[str, int] = {}
    for r in records:
        checks = check_verdicts(out, r)
        if r["image"] not in kinds or checks is None:
            continue
        misses = dict(enumerate(kinds[r["image"]]["miss"], start=1))
        tokens[r["image"]] = first_pass(misses, checks, threshold, m_max)
    labels = summary["labels"]
    groups = {}
    for g in summary["groups"]:
        mine = [t for image, t in tokens.items() if group_of[image] == g]
        groups[g] = {
            "queries": len(mine),
            "histogram": {lab: sum(("+" if t > m_max else str(t)) == lab for t in mine) for lab in labels},
            "mean_tokens": float(np.mean(mine)) if mine else None,
        }
    xs = [rank[group_of[image]] for image in tokens]
    rho = spearman(xs, list(tokens.values()))
    summary["shape_pair"] = {"threshold": threshold, "groups": groups, "tokens": tokens, "spearman": rho}
    return summary["shape_pair"]
