"""The README's first command: score the three example queries shipped with the package.

One query per group of the originality mix (App. E.1): a common pair (circle + square, 30% of
the training images), a rare one (circle + triangle, 0.1%) and an unseen one (square +
triangle), scored by the shipped shapes model with the ``quick`` preset. The paper's ordering
is common < rare < unseen in minimum tokens.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from originality import runs
from originality.batch import run_settings, score_all, write_batch_report
from originality.domains import load_domain
from originality.method.search import ScoreConfig, score_preset
from originality.method.signals import headline
from originality.models.pipeline import load_pipeline, model_identity
from originality.shapes.queries import render_query, save_queries

EXAMPLES = Path(__file__).resolve().parent / "assets" / "queries"
MARKER = "demo.json"
EXAMPLE_SEED = 2024  # not a seed of any shipped dataset or of the experiments' queries


def write_examples(folder: Path = EXAMPLES) -> Path:
    """(Re)make the shipped example queries and their ``queries.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    for group in ("common", "rare", "unseen"):
        (folder / f"{group}.png").unlink(missing_ok=True)  # remade, not kept
    save_queries(
        folder,
        ((f"{group}.png", group, *render_query(group, 0, EXAMPLE_SEED)) for group in ("common", "rare", "unseen")),
        subfolder="",
    )
    return folder / "queries.csv"


def run_demo(
    out: str | Path = "outputs/demo",
    *,
    model: str | Path | None = None,
    config: ScoreConfig | None = None,
    progress: bool = True,
) -> list[dict]:
    """Score the shipped examples (``quick`` preset with the familiarity signals unless ``config``),
    print a table, write the report."""
    out = Path(out)
    config = (config or score_preset("quick")).resolve(load_domain("shapes"))
    # The batch's own settings, whose model and detector identities hold digests of their weights:
    # a demo folder its scores batch would refuse (an older shipped model or detector) starts again.
    identity = model_identity(model)
    open_demo(out, run_settings(config, "shapes", identity))
    started = time.perf_counter()
    pipeline = load_pipeline(model)
    records = score_all(EXAMPLES / "queries.csv", pipeline, config, out / "scores", progress=progress, model=identity)
    captions = {r["image"]: r["caption"] for r in csv.DictReader((EXAMPLES / "queries.csv").open())}
    print(f"\n{'query':12s} {'tokens':>6s} {'soft':>5s}  {'distance by m':28s} caption")
    for r in records:
        ds = " ".join(f"{d:.2f}" for d in r["distances"].values())
        print(f"{r['image']:12s} {r['label']:>6s} {r['soft_tokens']:5.2f}  {ds:28s} {captions.get(r['image'], '')}")
    if any("signals" in r for r in records):
        lead = headline()
        print(f"\n{'query':12s} {lead.replace('_', ' '):>12s}  more familiar than the model's own samples")
        for r in records:
            gap, pct = r["signals"][lead], r["percentiles"].get(lead)
            print(f"{r['image']:12s} {gap:12.3f}  " + ("—" if pct is None else f"{pct:5.1f}%"))
    report = write_batch_report(out / "scores", records)
    print(f"\nreport: {report} ({time.perf_counter() - started:.0f} s)")
    return records


def open_demo(out: Path, settings: dict[str, Any]) -> bool:
    """Resume a demo of the same settings (True); start our own folder again for other ones."""
    return runs.open_run(out, settings, what="a demo folder", marker=MARKER, on_other="restart")
