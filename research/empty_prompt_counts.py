"""Issue 7: the empty prompt's held-out counts of a generalization run, and whether they rise.

    python research/empty_prompt_counts.py results/generalization/samples-1024/ladder-8000-steps

Per measured level: the held-out element's count among the empty prompt's detections, its share
p_L, and L x p_L (1 = drawn as often as an average spanning-set element); the element prompt's
share beside it. Then the two readings registered in samples-1024/preregistration.md: a one-sided
Fisher exact test of the top level's share against the bottom one's, and Spearman's rho over levels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scipy.stats import fisher_exact, spearmanr

from originality.experiments.generalization_summary import vs_average_element


def main(run: str) -> None:
    counts = {}
    records = [json.loads(path.read_text()) for path in Path(run).glob("cache/measure-*.json")]
    for record in sorted(records, key=lambda r: r["level"]):
        empty, element = record["empty"], record["element"]
        k, n = empty["held_out_detections"], empty["detections"]
        counts[record["level"]] = (k, n)
        print(
            f"level {record['level']:2d}  empty {k:3d} of {n:4d} = {k / n:6.2%}  "
            f"L x p = {vs_average_element(record, 'empty'):4.2f}  "
            f"element {element['held_out_detections']} of {element['detections']} = {element['frequency']:5.1%}"
        )
    levels = sorted(counts)
    (k0, n0), (k1, n1) = counts[levels[0]], counts[levels[-1]]
    fisher = fisher_exact([[k1, n1 - k1], [k0, n0 - k0]], alternative="greater").pvalue
    shares = [counts[lv][0] / counts[lv][1] for lv in levels]
    rho = f"{spearmanr(levels, shares).statistic:.2f}" if len(set(shares)) > 1 else "undefined (equal shares)"
    print(f"level {levels[-1]} above level {levels[0]}: one-sided Fisher p = {fisher:.4f}; Spearman rho = {rho}")


if __name__ == "__main__":
    main(sys.argv[1])
