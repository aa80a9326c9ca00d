"""Matplotlib figures (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, out: str | Path, dpi: int = 110) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def loss_curves(losses: dict[str, list[tuple[int, float]]], out: str | Path) -> Path:
    """One panel per training stage: running loss against step, log scale."""
    stages = [k for k, v in losses.items() if v]
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(4.5 * max(1, len(stages)), 3.2), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=False):
        steps, values = zip(*losses[stage], strict=True)
        ax.plot(steps, values, lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"{stage} loss")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out, dpi=120)


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
        sd = [t["distance_std"] for t in r["per_m"]]
        ax.errorbar(ms, ds, yerr=sd, marker="o", capsize=3, label=(labels[i] if labels else None))
    threshold = results[0]["settings"]["config"]["threshold"] if results else None
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label="threshold")
    ax.set_xlabel("tokens m")
    ax.set_ylabel("distance")
    ax.grid(alpha=0.3)
    if labels or threshold is not None:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)
