"""How well could a positive control of this size resolve the registered pairs? (issue 36)

Takes a finished positive-control run and asks, by simulation, what Spearman (model rate against
training rate, over the registered pairs) a model would reach whose pairs are drawn, among the same
number of read samples, exactly at (a) the training rates and (b) the run's own per-level mean rates:
Poisson counts per pair, ``--draws`` times. (b) says whether the miss is the model's compression or
the sample size alone. Also: the share of the model's read samples with two elements, and how many
of those are pairs it never saw.

    python research/positive_control_power.py results/ladder/readout/positive-control
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from originality.stats import spearman


def simulate(training: np.ndarray, rates: np.ndarray, read: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    counts = rng.poisson(rates * read, size=(draws, len(rates)))
    rho = [spearman(training, c) for c in counts]
    return np.array([r["rho"] if r else np.nan for r in rho])  # all counts equal: no rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--draws", type=int, default=2_000)
    parser.add_argument("--goal", type=float, default=0.9)
    args = parser.parse_args()
    summary = json.loads((args.run / "summary.json").read_text())
    registered = json.loads((args.run / "registered.json").read_text())["units"]["pairs"]
    rates = summary["pairs"]["rates"]
    read = summary["samples"]["read"]
    training = np.array([rates[k][0] for k in registered])
    # each registered pair's level is its training rate rounded (pairs of one level share one count)
    levels = summary["pairs"]["levels"]
    level_of = {k: min(levels, key=lambda name: abs(levels[name]["training"] - rates[k][0])) for k in registered}
    level_mean = np.array([levels[level_of[k]]["model"] for k in registered])
    rng = np.random.default_rng(0)
    out = {"read": read, "registered": len(registered), "observed_rho": summary["pairs"]["rho"]}
    for name, model in (("model_equals_training", training), ("model_at_its_level_means", level_mean)):
        rho = simulate(training, model, read, args.draws, rng)
        out[name] = {
            "median_rho": float(np.nanmedian(rho)),
            "rho_5_95": [float(np.nanquantile(rho, 0.05)), float(np.nanquantile(rho, 0.95))],
            "share_reaching_goal": float(np.mean(rho >= args.goal)),
            "expected_count_per_pair": sorted({round(float(r * read), 1) for r in model}, reverse=True),
        }
    # what the model draws with two elements: its share, and the share of it that are pairs it never saw
    samples = [json.loads(line) for line in (args.run / "samples.jsonl").read_text().splitlines() if line.strip()]
    read_samples = [r for r in samples if r["class"] == "read"]
    two = [" + ".join(sorted(r["elements"])) for r in read_samples if len(r["elements"]) == 2]
    seen = {k for k, (t, _) in rates.items() if t > 0}
    out["two_elements"] = {
        "model_share_of_read": len(two) / len(read_samples),
        "training_share_of_non_empty": sum(t for t, _ in rates.values()),
        "model_never_seen_share": sum(k not in seen for k in two) / len(two),
        "model_never_seen_combinations": len({k for k in two if k not in seen}),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
