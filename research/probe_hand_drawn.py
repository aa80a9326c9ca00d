"""Hand-drawn queries as a user makes them: pure colours, hard edges, sizes off the palette's.

Draws ``--n`` queries of two elements with PIL (no anti-aliasing, no supersampling): each a
filled square, circle or triangle in pure red (255, 0, 0), green (0, 255, 0) or blue (0, 0, 255),
a side drawn from ``--sides`` px, placed at random without overlap on a white 64 px canvas.
Each detector reads every query as ``score`` does (:func:`read_shapes_query`); the script prints,
per detector, the share read in full (``readable``) and the share read exactly as drawn.

    python research/probe_hand_drawn.py --detector old=/tmp/detector-old \\
        --detector shipped=src/originality/assets/detector --out results/detector/hand-drawn
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from originality.detection.detector import ElementDetector, detector_identity
from originality.method.query_reading import read_shapes_query
from originality.runs import write_json

PURE = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
SHAPES = ("square", "circle", "triangle")


def hand_drawn(rng: np.random.Generator, sides: tuple[int, int], size: int = 64) -> tuple[Image.Image, list[str]]:
    """One query and the phrases of what it holds (both elements are "big": the palette's big is 16 px)."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    boxes, phrases = [], []
    while len(boxes) < 2:
        side = int(rng.integers(sides[0], sides[1] + 1))
        x, y = (int(v) for v in rng.integers(1, size - side - 1, size=2))
        box = (x, y, x + side - 1, y + side - 1)
        if any(not (box[2] + 2 < b[0] or b[2] + 2 < box[0] or box[3] + 2 < b[1] or b[3] + 2 < box[1]) for b in boxes):
            continue
        shape, colour = SHAPES[int(rng.integers(len(SHAPES)))], list(PURE)[int(rng.integers(len(PURE)))]
        if shape == "square":
            draw.rectangle(box, fill=PURE[colour])
        elif shape == "circle":
            draw.ellipse(box, fill=PURE[colour])
        else:
            draw.polygon([(x + side / 2, y), (box[2], box[3]), (x, box[3])], fill=PURE[colour])
        boxes.append(box)
        phrases.append(f"big {colour} full {shape}")
    return image, phrases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", action="append", required=True, help="NAME=FOLDER, repeatable")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--sides", type=int, nargs=2, default=(13, 18), help="side range in px (inclusive)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    queries = [hand_drawn(rng, tuple(args.sides)) for _ in range(args.n)]
    summary = {"n": args.n, "sides": list(args.sides), "seed": args.seed, "detectors": {}}
    for spec in args.detector:
        name, folder = spec.split("=", 1)
        detector = ElementDetector.load(folder)
        readable = exact = 0
        reasons: Counter[str] = Counter()
        for image, phrases in queries:
            reading = read_shapes_query(image, detector)
            readable += reading.readable
            exact += reading.readable and sorted(e["element"] for e in reading.elements) == sorted(phrases)
            if not reading.readable:
                reasons["low confidence" if "read at only" in reading.reason else "pixels outside"] += 1
        summary["detectors"][name] = {
            "folder": folder,
            "identity": detector_identity(folder),
            "readable": readable / args.n,
            "exact": exact / args.n,
            "unreadable_reasons": dict(reasons),
        }
        shares = f"readable {readable / args.n:.3f}, read exactly {exact / args.n:.3f}"
        print(f"{name}: {shares}, unreadable: {dict(reasons)}")
    write_json(args.out / "summary.json", summary)
    print(json.dumps(summary["detectors"], indent=1))


if __name__ == "__main__":
    main()
