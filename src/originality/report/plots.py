"""Matplotlib figures (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np

from originality.report.intervals import mean_interval  # noqa: E402
from originality.runs import save_figure  # noqa: E402


def _save(fig, out: str | Path, dpi: int = 110) -> Path:
    save_figure(fig, out, dpi=dpi)
    plt.close(fig)
    return Path(out)


def confusion_matrices(confusion: dict[str, dict], out: str | Path, title: str = "") -> Path:
    """One panel per attribute: true value (rows) against detected value (columns)."""
    fig, axes = plt.subplots(1, len(confusion), figsize=(3.4 * len(confusion), 3.4))
    for ax, (name, data) in zip(axes, confusion.items(), strict=True):
        labels, matrix = data["labels"], data["matrix"]
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("detected")
        ax.set_ylabel("true")
        ax.set_title(name)
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def distance_curve(results: list[dict], out: str | Path, labels: list[str] | None = None) -> Path:
    """Mean reconstruction distance against the number of tokens, one line per result."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for i, r in enumerate(results):
        ms = [t["m"] for t in r["per_m"]]
        ds = [t["distance"] for t in r["per_m"]]
        # 95% intervals of each mean (Wilson for shares of 0/1 distances, else a bootstrap): never past [0, 1]
        bounds = [mean_interval(t.get("distances") or [t["distance"]]) for t in r["per_m"]]
        below = [max(0.0, d - lo) for d, (lo, _) in zip(ds, bounds, strict=True)]
        above = [max(0.0, hi - d) for d, (_, hi) in zip(ds, bounds, strict=True)]
        ax.errorbar(ms, ds, yerr=[below, above], marker="o", capsize=3, label=(labels[i] if labels else None))
    threshold = results[0]["settings"]["config"]["threshold"] if results else None
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label="threshold")
    ax.set_xlabel("tokens m")
    ax.set_ylabel("distance (95% interval)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if labels or threshold is not None:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


GROUP_COLOURS = {"common": "#2a7ab9", "rare": "#e08a1e", "unseen": "#c0392b"}


def token_histogram(summary: dict, out: str | Path, title: str = "minimum tokens by training frequency") -> Path:
    """Fig. 6: how many queries of each group need 1..M tokens, or "+" (none within M)."""
    labels, groups = summary["labels"], summary["groups"]
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(labels))
    for i, (name, g) in enumerate(groups.items()):
        total = max(1, g["queries"])
        heights = [g["histogram"][lab] / total for lab in labels]
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, heights, width, label=f"{name} (n={g['queries']})",
               color=GROUP_COLOURS.get(name))  # fmt: skip
    ax.set_xticks(x, labels)
    ax.set_xlabel("minimum tokens")
    ax.set_ylabel("fraction of queries")
    rho = summary.get("spearman")
    if rho:
        title += f"\nSpearman rho {rho['rho']:.2f} (p = {rho['p']:.1g})"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, out)


def group_curves(summary: dict, out: str | Path) -> Path:
    """Mean reconstruction distance against tokens per group (band: spread over queries); where the
    samples were read back, also the share of samples with the right shapes (solid) and exactly
    right (dashed), and the elements per sample."""
    groups = summary["groups"]
    kinds = any(g.get("kinds_by_m") for g in groups.values())
    counts = any(g.get("detected_elements_by_m") for g in groups.values())
    panels = 1 + kinds + counts
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.4), squeeze=False)
    ticks = range(1, summary["settings"]["score"]["max_tokens"] + 1)
    ax = axes[0][0]
    for name, g in groups.items():
        mean, std = np.asarray(g["distance_mean_by_m"]), np.asarray(g["distance_std_by_m"])
        if not len(mean):
            continue
        ms = np.arange(1, len(mean) + 1)
        colour = GROUP_COLOURS.get(name)
        ax.plot(ms, mean, marker="o", label=name, color=colour)
        ax.fill_between(ms, mean - std, mean + std, alpha=0.15, color=colour)
    ax.axhline(summary["settings"]["score"]["threshold"], color="grey", ls="--", lw=1, label="threshold")
    ax.set_ylabel("mean distance")
    panel = [ax]
    if kinds:
        ax = axes[0][1]
        for name, g in groups.items():
            k = g.get("kinds_by_m") or {}
            if not k:
                continue
            shapes = 1 - np.asarray(k["miss"])  # the right shapes, whatever their colours
            colour = GROUP_COLOURS.get(name)
            ax.plot(range(1, len(shapes) + 1), shapes, marker="o", label=f"{name}: right shapes", color=colour)
            ax.plot(range(1, len(shapes) + 1), k["exact"], ls="--", marker=".", label=f"{name}: exact", color=colour)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of samples")
        panel.append(ax)
    if counts:
        ax = axes[0][panels - 1]
        for name, g in groups.items():
            values = g.get("detected_elements_by_m") or []
            ax.plot(range(1, len(values) + 1), values, marker="o", label=name, color=GROUP_COLOURS.get(name))
        ax.axhline(2, color="grey", ls="--", lw=1, label="the query's 2")
        ax.set_ylabel("detected elements per sample")
        panel.append(ax)
    for ax in panel:
        ax.set_xticks(ticks)
        ax.set_xlabel("tokens m")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


def threshold_sweep_plot(summary: dict, out: str | Path, bar: float = 0.7) -> Path:
    """Post hoc: Spearman's rho (filled where p < 0.01) and each group's mean minimum tokens at
    every threshold where a verdict could change; the preset's threshold dashed."""
    sweep = summary["threshold_sweep"]
    points = sweep["points"]
    ts = [p["threshold"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.2, 3.4))
    rhos = [(p["threshold"], p["spearman"]) for p in points if p["spearman"]]
    left.plot([t for t, _ in rhos], [r["rho"] for _, r in rhos], color="black", lw=1)
    for t, r in rhos:
        left.plot(t, r["rho"], "o", color="black", mfc="black" if r["p"] < 0.01 else "white")
    left.axhline(bar, color="green", lw=1, label=f"the paper's bar ({bar})")
    left.set_ylim(-1, 1)
    left.set_ylabel("Spearman rho (filled: p < 0.01)")
    for name in summary["groups"]:
        right.plot(ts, [p["mean_tokens"].get(name) for p in points], marker="o", label=name,
                   color=GROUP_COLOURS.get(name))  # fmt: skip
    right.set_ylabel('mean minimum tokens ("+" = M + 1)')
    for ax in (left, right):
        ax.axvline(sweep["preset_threshold"], color="grey", ls="--", lw=1, label="preset's threshold")
        ax.set_xlabel("distance threshold")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"post hoc: the verdict at every threshold ({sweep['queries']} queries)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def generalization_plot(summary: dict, out: str | Path) -> Path:
    """Fig. 3: frequency of the held-out element against training diversity, one line per prompt
    type (band: spread over variants), with the element distributions of the lowest and highest
    levels' prompted samples beside it (the held-out element in red)."""
    levels = [int(k) for k in summary["levels"]]
    fig = plt.figure(figsize=(10, 3.6))
    grid = fig.add_gridspec(2, 2, width_ratios=[1.6, 1])
    ax = fig.add_subplot(grid[:, 0])
    x = np.arange(len(levels))
    for kind, colour in (("element", "#d62728"), ("empty", "#1f77b4")):
        values = [summary["levels"][str(lv)][kind] for lv in levels]
        mean = np.asarray([v["frequency"] for v in values]) * 100
        low = np.asarray([v["frequency_range"][0] for v in values]) * 100
        high = np.asarray([v["frequency_range"][1] for v in values]) * 100
        label = "element prompt" if kind == "element" else "empty prompt"
        ax.plot(x, mean, marker="o", color=colour, label=label)
        ax.fill_between(x, low, high, color=colour, alpha=0.15)
    ax.set_xticks(x, [str(lv) for lv in levels])
    ax.set_xlabel("elements in the training spanning set")
    ax.set_ylabel("held-out element among detections (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    records = summary["records"]
    for row, level in enumerate((min(levels), max(levels))):
        side = fig.add_subplot(grid[row, 1])
        record = next(r for r in records if r["level"] == level)
        counts = list(record["element"]["element_counts"].items())[:8]
        held = record["element"]["prompt"]
        names = [n for n, _ in counts]
        side.barh(range(len(counts)), [c for _, c in counts], color=["#d62728" if n == held else "#999" for n in names])
        side.set_yticks(range(len(counts)), names, fontsize=6)
        side.invert_yaxis()
        side.set_title(f"{level} elements, prompt '{held}'", fontsize=7)
        side.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    return _save(fig, out)


def generalization_lengths_plot(ladders: list[dict], out: str | Path) -> Path:
    """Fig. 3 at several training lengths: the held-out element's share of detections against
    the number of training elements, element prompt solid, empty prompt dashed, one colour per
    ladder (``experiments.generalization.by_training_length``)."""
    levels = sorted({int(level) for ladder in ladders for level in ladder["levels"]})
    varies = {key: len({ladder[key] for ladder in ladders}) > 1 for key in ("recipe", "detector")}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    colours = plt.get_cmap("viridis")
    for i, ladder in enumerate(ladders):
        colour = colours(i / max(1, len(ladders) - 1) * 0.85)
        xs = [levels.index(int(level)) for level in ladder["levels"]]
        values = ladder["levels"].values()
        label = f"{ladder['unet_steps']:,} UNet steps"
        label += f", {ladder['train']} {ladder['recipe'][:8]}" if varies["recipe"] else ""
        label += f", detector {ladder['detector']}" if varies["detector"] else ""
        ax.plot(xs, [v["element"] * 100 for v in values], marker="o", color=colour, label=label)
        ax.plot(xs, [v["empty"] * 100 for v in values], marker=".", ls="--", color=colour, alpha=0.6)
    ax.set_xticks(range(len(levels)), [str(level) for level in levels])
    ax.set_xlabel("elements in the training spanning set")
    ax.set_ylabel("held-out element among detections (%)")
    ax.set_title("element prompt (solid) and empty prompt (dashed)", fontsize=9)
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def zero_floor(values: list[float], below: float) -> float:
    """Where a rate of 0 is drawn on a log axis: a factor of 3 under the smallest non-zero rate and
    under ``below``, so that a zero never sits on top of a rate that is small but real."""
    positive = [v for v in values if v > 0]
    return min([below, *positive]) / 3


def rates_plot(rates: dict[str, list[float]], registered: set[str], read: int, out: str | Path) -> Path:
    """Each pair's share of the model's own samples against its share of the training images, on log
    axes, and each training rate's mean (the line); a rate of 0 (never seen, never drawn) sits on its
    own floor, marked "0". Filled: pre-registered."""
    x_zero = zero_floor([t for t, _ in rates.values()], 1.0)
    y_zero = zero_floor([m for _, m in rates.values()], 1 / max(read, 1))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for chosen, style in ((False, {"facecolors": "none", "edgecolors": "#999"}), (True, {"color": "#1f5fbf"})):
        keys = [k for k in rates if (k in registered) == chosen]
        x = [rates[k][0] or x_zero for k in keys]
        y = [rates[k][1] or y_zero for k in keys]
        label = "registered (expected >= min count)" if chosen else "other pairs"
        ax.scatter(x, y, s=22, label=f"{label}: {len(keys)}", **style)
    by_training: dict[float, list[float]] = {}
    for training, model in rates.values():
        by_training.setdefault(training or x_zero, []).append(model)
    levels = sorted(by_training)
    ax.plot(levels, [np.mean(by_training[t]) for t in levels], color="#c0392b", lw=1, label="mean per training rate")
    top = max(1.0, *(t for t, _ in rates.values()))
    ax.axline((y_zero * 3, y_zero * 3), (top, top), color="#444", lw=0.8, ls="--", label="model = training")
    ax.axvline(x_zero * 1.7, color="#bbb", lw=0.6, ls=":")
    ax.axhline(y_zero * 1.7, color="#bbb", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.text(x_zero, y_zero * 1.25, "0", ha="center", fontsize=7, color="#666")
    ax.set_xlabel("share of non-empty training images holding exactly the pair\n(left of the dotted line: never)")
    ax.set_ylabel(f"share of the model's {read} read samples\n(below the dotted line: none)")
    ax.set_title("Positive control: the model's own pair rates")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _save(fig, out)


def ladder_plot(summary: dict, out: str | Path, top: int = 6) -> Path:
    """Each measure's mean per frequency level (min-max scaled, lower = more familiar), the
    measures with the best held-out Spearman first; levels from the most frequent to never."""
    measures = sorted(summary["measures"].items(), key=lambda kv: -(kv[1].get("rho") or -9))[:top]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    # every level any measure read, most frequent first: the token count reads only a few of them
    levels = {k for _, m in measures for k in m.get("level_means", {}) if k.startswith("ladder")}
    order = sorted(levels, key=lambda k: -float(k.split()[1].rstrip("%")))
    for name, m in measures:
        means = {k: v for k, v in m.get("level_means", {}).items() if k.startswith("ladder")}
        if not means:
            continue
        xs = [i for i, k in enumerate(order) if k in means]
        values = np.array([means[order[i]] for i in xs])
        span = values.max() - values.min()
        scaled = (values - values.min()) / span if span else np.zeros_like(values)
        rho = m.get("rho")
        ax.plot(xs, scaled, marker="o", label=f"{name} (rho {rho:.2f})" if rho is not None else name)
    if order:
        ax.set_xticks(range(len(order)), [k.split()[1] for k in order])
    ax.set_xlabel("the pair's share of the training images")
    ax.set_ylabel("level mean, scaled (lower: more familiar)")
    ax.set_title("Frequency ladder: held-out queries, per level")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)
