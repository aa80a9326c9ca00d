"""The pre-registered test of the shape-pair criterion (results/min-tokens/preregistration.md).

Reads a min-tokens ``summary.json`` and reports the ``shape_pair`` verdict on the queries whose
index lies in [--first, --last] only: the queries that were not seen when the criterion's
threshold was chosen (10-19), and, for contrast, the ones it was chosen on (0-9).

    python research/confirm_shape_pair.py outputs/min-tokens-ship/summary.json --first 10 --last 19
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from originality.stats import spearman


def confirm(summary: dict, first: int, last: int) -> dict:
    verdict = summary["shape_pair"]
    m_max = summary["settings"]["score"]["max_tokens"]
    ranks = {g: v["frequency_rank"] for g, v in summary["groups"].items()}
    picked: dict[str, list[int]] = {g: [] for g in ranks}
    for image, tokens in verdict["tokens"].items():
        group, index = re.fullmatch(r"queries/(\w+)-(\d+)\.png", image).groups()
        if first <= int(index) <= last:
            picked[group].append(tokens)
    labels = [str(m) for m in range(1, m_max + 1)] + ["+"]
    histogram = {
        g: [sum(("+" if t > m_max else str(t)) == lab for t in ts) for lab in labels] for g, ts in picked.items()
    }
    xs = [ranks[g] for g, ts in picked.items() for _ in ts]
    ys = [t for ts in picked.values() for t in ts]
    return {"queries": len(ys), "labels": labels, "histogram": histogram, "spearman": spearman(xs, ys)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", type=Path)
    parser.add_argument("--first", type=int, default=10)
    parser.add_argument("--last", type=int, default=19)
    args = parser.parse_args()
    result = confirm(json.loads(args.summary.read_text()), args.first, args.last)
    print(f"queries {args.first}-{args.last} of each group: {result['queries']} with their samples read")
    print(f"{'group':8s} " + " ".join(f"{lab:>3s}" for lab in result["labels"]))
    for g, counts in result["histogram"].items():
        print(f"{g:8s} " + " ".join(f"{c:3d}" for c in counts))
    rho = result["spearman"]
    print("Spearman rho: " + ("n/a" if rho is None else f"{rho['rho']:.3f} (p = {rho['p']:.2g}, n = {rho['n']})"))


if __name__ == "__main__":
    main()
