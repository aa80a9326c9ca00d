"""Detector throughput on 64 px images (batched inference + NMS), with the shipped weights.

python benchmarks/bench_detector.py [--n 2048] [--detector FOLDER]
"""

from __future__ import annotations

import argparse
import io
import time

from PIL import Image

from originality.detection.detector import ElementDetector
from originality.shapes.dataset import render_example
from originality.shapes.specs import preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--detector", default=None)
    args = parser.parse_args()
    spec = preset("all-elements")
    images = [
        Image.open(io.BytesIO(render_example(spec, i, 999, 64)["image"]["bytes"])).convert("RGB") for i in range(args.n)
    ]
    detector = ElementDetector.load(args.detector)
    detector.detect(images[:64])  # warm-up
    start = time.perf_counter()
    found = detector.detect(images)
    seconds = time.perf_counter() - start
    print(
        f"{args.n} images in {seconds:.2f} s: {args.n / seconds:,.0f} images/s "
        f"({sum(map(len, found))} detections at confidence >= {detector.threshold})"
    )


if __name__ == "__main__":
    main()
