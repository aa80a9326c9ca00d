"""Figures and ``report.html`` of the signals experiment: each signal against training frequency."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from originality.method.signals import signal_names  # noqa: E402
from originality.report.html import STYLE, inline_png  # noqa: E402
from originality.runs import read_jsonl, save_figure, write_text  # noqa: E402

# Beside every registered signal, the variants a reader needs first; every other one is in
# summary.json and the table.
VARIANTS_FIRST = (
    "guidance_gap_caption",
    "guidance_gap_vs_elements",
    "unconditional_loss_vs_elements",
    "guidance_gap_learned_m1",
    "token_count",
    "baseline_elements_only_guidance_gap",
    "baseline_elements_only_unconditional_loss",
    "baseline_caption_lookup",
)


def headline_names() -> tuple[str, ...]:
    return (*signal_names(), *VARIANTS_FIRST)


def _order(summary: dict[str, Any]) -> list[str]:
    """Groups from the most frequent pair to the rarest."""
    return sorted(summary["frequencies"], key=lambda g: -summary["frequencies"][g])


def signals_plots(summary: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``signals.png`` (each headline signal's values per group, as strips) and ``dose-response.png``
    (group means against the pair's training frequency)."""
    names = [n for n in headline_names() if n in summary["signals"]]
    groups = _order(summary)
    values = _values(out, names)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes.flat, names, strict=False):
        for x, g in enumerate(groups):
            ys = values.get(name, {}).get(g, [])
            ax.scatter(x + rng.uniform(-0.18, 0.18, len(ys)), ys, s=9, alpha=0.7)
            mean = summary["signals"][name]["group_means"].get(g)
            if mean is not None:
                ax.hlines(mean, x - 0.3, x + 0.3, color="black", lw=1.5)
        s = summary["signals"][name]
        rho = "n/a" if s["rho"] is None else f"{s['rho']:.2f}"
        ax.set_title(f"{name}\nrho {rho}, controls {'pass' if s['passes_controls'] else 'fail'}", fontsize=9)
        ax.set_xticks(range(len(groups)), [g.replace("+", "+\n") for g in groups], fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    strips = save_figure(fig, out / "signals.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), squeeze=False)
    floor = min(f for f in summary["frequencies"].values() if f > 0) / 10
    for ax, name in zip(axes[0], names, strict=False):
        for g in groups:
            mean = summary["signals"][name]["group_means"].get(g)
            if mean is None:
                continue
            x = max(summary["frequencies"][g], floor)
            ax.scatter([x], [mean], s=25)
            ax.annotate(g, (x, mean), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("pair frequency in training (unseen at the floor)", fontsize=7)
        dose = summary["signals"][name]["dose_response_rho"]
        ax.set_title(f"{name}\ndose-response rho {'n/a' if dose is None else f'{dose:.2f}'}", fontsize=8)
    fig.tight_layout()
    dose_path = save_figure(fig, out / "dose-response.png")
    plt.close(fig)
    return strips, dose_path


def _values(out: Path, names: list[str]) -> dict[str, dict[str, list[float]]]:
    """Per-query values by signal and group, from ``values.jsonl`` (written beside the summary)."""
    table: dict[str, dict[str, list[float]]] = {}
    for record in read_jsonl(out / "values.jsonl"):
        for name in names:
            if name in record["values"]:
                table.setdefault(name, {}).setdefault(record["group"], []).append(record["values"][name])
    return table


def _fmt(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(ci) -> str:
    return "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def signals_report(summary: dict[str, Any], out: Path) -> Path:
    """``report.html``: the table of every signal, the controls, and the figures."""
    e = html.escape
    rows = []
    ranked = sorted(summary["signals"].items(), key=lambda kv: -(kv[1]["rho"] or -9))
    for name, s in ranked:
        auroc = " / ".join(_fmt(s["auroc"].get(k)) for k in ("common<rare", "rare<unseen", "common<unseen"))
        controls = ", ".join(f"{k} {_fmt(v['rho'])}{_ci(v['ci'])}" for k, v in s["controls"].items())
        seconds = s.get("seconds_per_image")
        rows.append(
            f"<tr><td style='text-align:left'>{e(name)}</td><td>{_fmt(s['rho'])}{_ci(s['rho_ci'])}</td>"
            f"<td>{e(auroc)}</td><td>{_fmt(s['dose_response_rho'])}{_ci(s['dose_response_ci'])}</td>"
            f"<td style='text-align:left'>{e(controls)}</td>"
            f"<td><b>{'pass' if s['passes_controls'] else 'fail'}</b></td>"
            f"<td>{e(' / '.join(_fmt(x) for x in s['seeds']))}</td>"
            f"<td>{'—' if seconds is None else f'{seconds:.2f}'}</td></tr>"
        )
    groups = _order(summary)
    means = "".join(
        f"<tr><td style='text-align:left'>{e(name)}</td>"
        + "".join(f"<td>{_fmt(summary['signals'][name]['group_means'].get(g), 4)}</td>" for g in groups)
        + "</tr>"
        for name in headline_names()
        if name in summary["signals"]
    )
    pictures = [out / name for name in ("signals.png", "dose-response.png")]
    figures = "".join(f"<img src='{inline_png(path)}'>" for path in pictures if path.is_file())
    heads = "".join(f"<th>{e(g)}<br><small>{summary['frequencies'][g]:.2%}</small></th>" for g in groups)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>originality: familiarity signals</title>
<style>{STYLE}</style></head><body><h1>Familiarity signals against training frequency</h1>
<p>Model <code>{e(str(summary.get("model")))}</code>; queries per group: {e(json.dumps(summary["queries"]))}.
<i>rho</i>: Spearman's rho between the signal and the frequency rank of common / rare / unseen (positive: the rarer
pair reads less familiar), with a bootstrap 95% interval. <i>AUROC</i>: how often a query of the more frequent group
scores lower. <i>Controls</i>: rho within groups that share a shape; a signal passes when every interval lies above 0.
<i>Seeds</i>: rho on each noise grid.</p>
<table><tr><th>signal</th><th>rho [95%]</th><th>AUROC c&lt;r / r&lt;u / c&lt;u</th><th>dose-response [95%]</th>
<th>shape-matched controls</th><th>controls</th><th>rho per seed</th><th>s / image</th></tr>{"".join(rows)}</table>
<h2>Group means</h2><table><tr><th>signal</th>{heads}</tr>
{means}</table>{figures}
<pre>{e(json.dumps(summary["settings"], indent=1))}</pre></body></html>"""
    return write_text(out / "report.html", page)
