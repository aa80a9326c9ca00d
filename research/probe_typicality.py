"""Can a low-level typicality check tell a query drawn unlike the training images from a rendered one?

The familiarity signals read how the image is drawn before what it shows: a common pair drawn with
PIL reads less familiar than a rendered unseen pair (issue 35). This probe measures, on the shipped
model, candidate typicality statistics on three sets:

* ``fit``: ``--rendered`` queries rendered as the training images are (random pairs of the mix's
  elements, the renderer's sizes and anti-aliasing), seed ``--seed``: where a threshold is set;
* ``held-out``: as many again from another seed: where its false-flag rate is read (goal <= 1%);
* ``drawn``: ``--drawn`` queries drawn as users draw them: PIL, sides 12-20 px, hard or anti-aliased
  edges (drawn at 4x and shrunk), pure or palette colours, squares, circles and triangles: where its
  flag rate is read (goal >= 90%).

Statistics, each the query's reading over the model's own samples' (the signal reference's
per-timestep means), so that about 1 is typical: ``low_t`` the unconditional loss at t <= 200 (fine
detail: edges, anti-aliasing), ``all_t`` over the whole grid. The threshold of each is the fit set's
99th percentile. For every drawn query read in full, the guidance gap (the detector's reading as the
prompt) as drawn and on a canonical re-render of its reading (the renderer draws the elements it read
where it read them), beside the rendered queries' gaps.

    python research/probe_typicality.py --out results/typicality
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from originality.detection.detector import ElementDetector, detector_identity
from originality.domains import load_domain
from originality.method.familiarity import build_reference, reading_prompt
from originality.method.query_reading import read_shapes_query
from originality.method.signals import SignalConfig, query_latents, readings, signal_grid
from originality.method.typicality import LOW_T, canonical_rerender, typicality
from originality.models.pipeline import load_pipeline, model_identity
from originality.runs import save_image, write_json
from originality.shapes.captions import caption, parse_caption
from originality.shapes.rendering import render, sample_layout
from originality.shapes.specs import originality_mix
from originality.shapes.vocabulary import RGB

PURE = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def rendered(rng: np.random.Generator, size: int = 64) -> Image.Image:
    elements = list(originality_mix().allowed)
    pair = [elements[i] for i in rng.choice(len(elements), 2, replace=False)]
    return render(sample_layout(pair, size, rng), size)


def drawn(rng: np.random.Generator, size: int = 64) -> Image.Image:
    smooth = bool(rng.integers(2))
    scale = 4 if smooth else 1
    canvas = Image.new("RGB", (size * scale, size * scale), "white")
    draw = ImageDraw.Draw(canvas)
    palette = PURE if rng.integers(2) else RGB
    boxes: list[tuple[int, int, int, int]] = []
    while len(boxes) < 2:
        side = int(rng.integers(12, 21))
        x, y = (int(v) for v in rng.integers(1, size - side - 1, size=2))
        box = (x, y, x + side - 1, y + side - 1)
        if any(not (box[2] + 2 < b[0] or b[2] + 2 < box[0] or box[3] + 2 < b[1] or b[3] + 2 < box[1]) for b in boxes):
            continue
        boxes.append(box)
        colour = list(palette.values())[int(rng.integers(3))]
        x0, y0, x1, y1 = (v * scale for v in box)
        shape = int(rng.integers(3))
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)
    return canvas.resize((size, size), Image.Resampling.BOX) if smooth else canvas


def statistics(pipeline, images, prompts, grid, reference_means) -> list[dict[str, float]]:
    raw = readings(pipeline, query_latents(pipeline, images), prompts, grid)
    ref = reference_means["unconditional"]
    out = []
    for i in range(len(images)):
        loss = raw["unconditional"][i]
        out.append(
            {
                "low_t": typicality(loss, ref, grid.timesteps),
                "all_t": float((loss / torch.tensor(ref)).mean()),
                "guidance_gap": float(raw["gap"][i].mean()),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rendered", type=int, default=200, help="rendered queries per set (fit, held-out)")
    parser.add_argument("--drawn", type=int, default=120)
    parser.add_argument("--seed", type=int, default=13_000_001)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    pipeline = load_pipeline()
    domain = load_domain("shapes")
    detector = ElementDetector.load(threshold=0.5)
    read = reading_prompt(domain, detector)
    grid = signal_grid(pipeline, SignalConfig())
    reference = build_reference(
        pipeline, domain, model=model_identity(None), config=SignalConfig(), samples=64, steps=25, guidance=3.0,
        read=read, cache=args.out / "reference.json", progress=True,
    )  # fmt: skip
    sets = {
        "fit": [rendered(np.random.default_rng([args.seed, 0, i])) for i in range(args.rendered)],
        "held-out": [rendered(np.random.default_rng([args.seed, 1, i])) for i in range(args.rendered)],
        "drawn": [drawn(np.random.default_rng([args.seed, 2, i])) for i in range(args.drawn)],
    }
    values: dict[str, list[dict[str, float]]] = {}
    for name, images in sets.items():
        prompts = [read(im) or "shapes" for im in images]
        values[name] = []
        for start in range(0, len(images), 16):
            chunk = slice(start, start + 16)
            values[name] += statistics(pipeline, images[chunk], prompts[chunk], grid, reference.timestep_means)
        print(f"{name}: {len(images)} read ({time.perf_counter() - started:.0f} s)", flush=True)
    thresholds = {s: float(np.percentile([v[s] for v in values["fit"]], 99)) for s in ("low_t", "all_t")}
    summary: dict = {
        "model": model_identity(None),
        "detector": detector_identity(),
        "grid": SignalConfig().to_dict(),
        "low_t": LOW_T,
        "sets": {k: len(v) for k, v in sets.items()},
        "thresholds": thresholds,
        "statistics": {},
    }
    for stat, threshold in thresholds.items():
        summary["statistics"][stat] = {
            "threshold (fit 99th percentile)": threshold,
            "held-out flagged": float(np.mean([v[stat] > threshold for v in values["held-out"]])),
            "drawn flagged": float(np.mean([v[stat] > threshold for v in values["drawn"]])),
            "medians": {k: float(np.median([x[stat] for x in v])) for k, v in values.items()},
        }
    # The re-render: drawn queries read in full, their reading drawn by the renderer where it was read.
    again, gaps_drawn, gaps_again = [], [], []
    for image, v in zip(sets["drawn"], values["drawn"], strict=True):
        reading = read_shapes_query(image, detector)
        if not reading.readable:
            continue
        canonical = canonical_rerender(reading, image.width)
        prompt = caption([parse_caption(e["element"])[0] for e in reading.elements if e["confidence"] >= 0.5])
        again.append((canonical, prompt))
        gaps_drawn.append(v["guidance_gap"])
    for start in range(0, len(again), 16):
        chunk = again[start : start + 16]
        stats = statistics(pipeline, [c for c, _ in chunk], [p for _, p in chunk], grid, reference.timestep_means)
        gaps_again += [s["guidance_gap"] for s in stats]
    summary["rerender"] = {
        "drawn read in full": len(again),
        "guidance gap median: drawn": float(np.median(gaps_drawn)) if gaps_drawn else None,
        "guidance gap median: re-rendered": float(np.median(gaps_again)) if gaps_again else None,
        "guidance gap median: rendered (held-out)": float(np.median([v["guidance_gap"] for v in values["held-out"]])),
    }
    summary["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "summary.json", summary)
    write_json(args.out / "values.json", values)
    for i, image in enumerate(sets["drawn"][:16]):
        save_image(image, args.out / "examples" / f"drawn-{i:02d}.png")
    print(summary["statistics"], summary["rerender"], sep="\n")


if __name__ == "__main__":
    main()
