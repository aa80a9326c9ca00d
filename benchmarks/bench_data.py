"""Images per second for making a 64 px shapes dataset (render + PNG + Parquet), all cores.

python benchmarks/bench_data.py [--n 20000] [--spec originality-mix]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from originality.shapes.dataset import make_dataset
from originality.shapes.specs import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--spec", default="originality-mix")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    spec = load_spec(args.spec)
    for workers in (1, os.cpu_count() or 1):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            make_dataset(spec, args.n, f"{tmp}/d", size=args.size, workers=workers, progress=False)
            seconds = time.perf_counter() - start
        print(f"{spec.name} {args.size}px  workers={workers}: {args.n / seconds:,.0f} images/s ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
