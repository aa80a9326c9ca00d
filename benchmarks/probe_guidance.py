"""Caption ceiling against classifier-free guidance: does stronger guidance bind colours better?

    python benchmarks/probe_guidance.py [--model M] [--scales 1.5,3,5,7.5] [--queries 4] [--samples 16]

For each group's calibration queries (the calibration seed, never the experiment's), prompt the
model with the query's true caption at each guidance scale and print the share of samples the
detector (confidence 0.5) reads as exactly the query's elements, and as the right shapes
whatever their colours.
"""

from __future__ import annotations

import argparse

import numpy as np

from originality.detection.detector import ElementDetector, element_multiset
from originality.experiments.calibration import CalibrationConfig
from originality.experiments.min_tokens import GROUPS, render_query
from originality.models.pipeline import generate, load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="default: the shipped shapes model")
    parser.add_argument("--scales", default="1.5,3,5,7.5")
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    detector = ElementDetector.load(threshold=0.5)
    seed = CalibrationConfig().query_seed
    scales = [float(s) for s in args.scales.split(",")]
    print(f"{'group':8s} " + " ".join(f"g={s:<4g} exact/shapes" for s in scales))
    for group in GROUPS:
        queries = [render_query(group, i, seed) for i in range(args.queries)]
        cells = []
        for scale in scales:
            exact, shapes = [], []
            for image, text in queries:
                samples = generate(
                    pipeline, [text] * args.samples, list(range(args.samples)), steps=args.steps, guidance_scale=scale
                )
                found = detector.detect([image, *samples])
                want = element_multiset(found[0])
                want_shapes = sorted(e.shape for e in want.elements())
                exact += [element_multiset(f) == want for f in found[1:]]
                shapes += [sorted(d.element.shape for d in f) == want_shapes for f in found[1:]]
            cells.append(f"{np.mean(exact):.2f}/{np.mean(shapes):.2f}")
        print(f"{group:8s} " + " ".join(f"{c:>17s}" for c in cells))


if __name__ == "__main__":
    main()
