"""The generalization experiment's numbers: a run's summary, and Fig. 3 pooled by training length."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from originality.errors import OriginalityError
from originality.experiments.generalization_config import GeneralizationConfig
from originality.models.config import train_preset, with_overrides
from originality.report.plots import generalization_lengths_plot
from originality.runs import write_json
from originality.shapes.specs import ladder
from originality.stats import rho


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


def compare_lengths(folders: list[str | Path], out: str | Path) -> list[dict[str, Any]]:
    """Fig. 3 once per training length, from finished runs' ``summary.json``: one figure and its
    numbers (``<out>.json`` beside the PNG). Trains and measures nothing."""
    summaries = []
    for run in folders:
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
    ladders = by_training_length(summaries)
    if not ladders:
        raise OriginalityError("these runs hold no measurement yet")
    generalization_lengths_plot(ladders, out)
    write_json(out.with_suffix(".json"), ladders)
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
    return bool((rho(range(len(values)), values) or 0.0) > 0)
