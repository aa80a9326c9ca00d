"""Caption ceiling against classifier-free guidance: does stronger guidance bind colours better?

    python research/probe_guidance.py [--model M] [--scales 1.5,3,5,7.5] [--queries 4] [--samples 16]
        [--out F.json]

For each group's calibration queries (the calibration seed, never the experiment's), prompt the
model with the query's true caption at each guidance scale and print, for all queries and for
the one- and two-colour pairs apart, the share of samples the detector (confidence 0.5) reads as
exactly the query's elements, as the query's shapes and colours with the colours on the other
shapes (``swapped``), and as the right shapes whatever their colours; then the gap between the
common and the rare group's exact shares.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from originality.detection.detector import ElementDetector, kind_shares
from originality.experiments.calibration import CalibrationConfig
from originality.models.pipeline import generate, load_pipeline
from originality.shapes.captions import colour_count, parse_caption
from originality.shapes.queries import GROUPS, render_query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="default: the shipped shapes model")
    parser.add_argument("--scales", default="1.5,3,5,7.5")
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--out", default=None, help="write every query's counts here")
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    detector = ElementDetector.load(threshold=0.5)
    seed = CalibrationConfig().query_seed
    scales = [float(s) for s in args.scales.split(",")]
    rows = []
    for group in GROUPS:
        for index in range(args.queries):
            _, text = render_query(group, index, seed)
            want = Counter(parse_caption(text))
            row = {"group": group, "index": index, "caption": text, "colours": colour_count(text)}
            for scale in scales:
                samples = generate(
                    pipeline, [text] * args.samples, list(range(args.samples)), steps=args.steps, guidance_scale=scale
                )
                row[str(scale)] = kind_shares(detector.detect(samples), want)
            rows.append(row)
    print(f"{'queries':19s} {'n':>2s} " + " ".join(f"{f'g={s:g} exact/swap/shapes':>24s}" for s in scales))
    for group in GROUPS:
        for label, keep in (("all", (1, 2)), ("one colour", (1,)), ("two colours", (2,))):
            mine = [r for r in rows if r["group"] == group and r["colours"] in keep]
            if not mine:
                continue
            cells = []
            for s in scales:
                exact, swapped = (np.mean([r[str(s)][k] for r in mine]) for k in ("exact", "swapped"))
                shapes = 1 - np.mean([r[str(s)]["miss"] for r in mine])
                cells.append(f"{exact:.2f}/{swapped:.2f}/{shapes:.2f}")
            print(f"{group + ' ' + label:19s} {len(mine):2d} " + " ".join(f"{c:>24s}" for c in cells))
    exact = {(g, s): np.mean([r[str(s)]["exact"] for r in rows if r["group"] == g]) for g in GROUPS for s in scales}
    # How much less familiar the rare pair is than the common one (results/min-tokens-rarer/preregistration.md).
    print(f"{'common - rare exact':22s} " + " ".join(f"{exact['common', s] - exact['rare', s]:>24.2f}" for s in scales))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
