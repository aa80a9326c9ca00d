"""The frequency ladder's quality gate: does a model draw its top-level pairs from their captions?

Pre-registered in ``results/ladder/preregistration.md`` ("Gate"): the captions of the five pairs of
the ladder's top level (2.15% of the ladder model's training images; the background model saw
them at its one shared rate), 16 samples each (seeds 0-15), 25 DDIM steps, guidance 3, read by the
shipped detector at confidence 0.5 as ``results/calibration`` reads captions. The model passes
when at least 0.8 of the 80 samples hold exactly the caption's two elements.

    python research/caption_gate.py --model outputs/models/ladder --out results/ladder/gate-ladder.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from originality.detection.detector import ElementDetector, detector_identity, kind_shares
from originality.models.pipeline import generate, load_pipeline, model_identity
from originality.runs import write_json
from originality.shapes.captions import caption
from originality.shapes.frequency_ladder import LEVELS, ladder_pairs

GATE = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    pipeline = load_pipeline(args.model)
    detector = ElementDetector.load(threshold=0.5)
    pairs = []
    for pair in ladder_pairs()[0]:
        text = caption(pair)
        samples = generate(
            pipeline, [text] * args.samples, list(range(args.samples)), steps=args.steps, guidance_scale=args.guidance
        )
        shares = kind_shares(detector.detect(samples), Counter(pair))
        pairs.append({"caption": text, **shares})
        print(f"{text:45s} exact {shares['exact']:.2f}", flush=True)
    exact = sum(p["exact"] for p in pairs) / len(pairs)
    summary = {
        "model": model_identity(args.model),
        "detector": detector_identity(),
        "level": LEVELS[0],
        "samples_per_caption": args.samples,
        "steps": args.steps,
        "guidance": args.guidance,
        "pairs": pairs,
        "exact": exact,
        "gate": GATE,
        "passes": exact >= GATE,
        "seconds": time.perf_counter() - started,
    }
    write_json(args.out, summary)
    print(json.dumps({k: summary[k] for k in ("exact", "passes", "seconds")}))


if __name__ == "__main__":
    main()
