"""How many elements does a shapes model draw for prompts of growing length?

    python research/probe_element_count.py [--model MODEL] [--samples 16]

Prints the mean number of detected elements (confidence 0.5) per sample for the domain's
initial word repeated m = 1..5 times, and for true captions of 1, 2 and 3 elements: evidence
for whether a prompt's length alone sets the element count (see results/inversion-ablation/README.md).
"""

from __future__ import annotations

import argparse

import numpy as np

from originality.detection.detector import ElementDetector
from originality.models.pipeline import generate, load_pipeline

CAPTIONS = (
    "big red full circle",
    "big red full circle and big blue full square",
    "big red full circle and big blue full square and big green full star",
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="pipeline folder (default: the shipped shapes model)")
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    detector = ElementDetector.load(threshold=0.5)
    seeds = list(range(args.samples))
    prompts = [" ".join(["shapes"] * m) for m in range(1, 6)] + list(CAPTIONS)
    for prompt in prompts:
        images = generate(pipeline, [prompt] * len(seeds), seeds, steps=25, guidance_scale=3.0)
        count = np.mean([len(d) for d in detector.detect(images)])
        print(f"{count:5.2f} elements per sample  {prompt!r}")


if __name__ == "__main__":
    main()
