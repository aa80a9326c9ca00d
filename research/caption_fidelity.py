"""Does a model draw a pair's caption better the more often it saw the pair? (a conditional control)

The positive control asks whether the ladder model's *unprompted* samples keep each pair's training
rate (they do not: `results/ladder/README.md`). This asks the conditional question: for every one of
the 45 ladder pairs, the share of samples drawn from its caption that hold exactly its two elements,
read as the gate reads it (16 samples per caption, seeds 0-15, 25 DDIM steps, guidance 3, the
shipped detector at confidence 0.5). Run on the ladder model and on the background model, which saw
all 45 pairs equally often: the background model's shares carry each pair's difficulty, not its
ladder frequency, so it is the control. Dated addition to `results/ladder/preregistration.md`.

    python research/caption_fidelity.py --model results/ladder/models/ladder \
        --background-model results/ladder/models/background --out results/ladder/caption-fidelity.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from originality.detection.detector import ElementDetector, detector_identity, kind_shares
from originality.models.pipeline import generate, load_pipeline, model_identity
from originality.runs import write_json
from originality.shapes.captions import caption
from originality.shapes.frequency_ladder import LEVELS, ladder_pairs, level_name
from originality.stats import bootstrap_interval, rho


def shares(model: str, detector: ElementDetector, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """caption -> the share of its samples of each match kind (exact, swapped, shapes, miss)."""
    pipeline = load_pipeline(model)
    out = {}
    for pair in tqdm([p for row in ladder_pairs() for p in row], desc=f"captions of {model}"):
        text = caption(pair)
        seeds = list(range(args.samples))
        samples = generate(pipeline, [text] * args.samples, seeds, steps=args.steps, guidance_scale=args.guidance)
        out[text] = kind_shares(detector.detect(samples), Counter(pair))
    return out


def estimand(frequency: dict[str, float], value: dict[str, float], draws: int) -> dict[str, object]:
    """Spearman of per-pair values against ladder frequency (0% last), pairs redrawn within levels."""
    keys = list(frequency)

    def of(sample: list[str]) -> float | None:
        return rho([frequency[k] for k in sample], [value[k] for k in sample])

    return {"rho": of(keys), "rho_ci": bootstrap_interval(frequency, of, draws=draws, seed=0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the ladder model")
    parser.add_argument("--background-model", required=True, help="the background model (the control)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    detector = ElementDetector.load(threshold=0.5)
    frequency = {caption(p): level for level, row in zip(LEVELS, ladder_pairs(), strict=True) for p in row}
    read = {"ladder": shares(args.model, detector, args), "background": shares(args.background_model, detector, args)}
    exact = {name: {k: s["exact"] for k, s in by.items()} for name, by in read.items()}
    difference = {k: exact["ladder"][k] - exact["background"][k] for k in frequency}
    levels: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for name, by in read.items():
        for level in LEVELS:
            keys = [k for k in frequency if frequency[k] == level]
            levels[name][level_name(level)] = {
                kind: float(np.mean([by[k][kind] for k in keys])) for kind in ("exact", "swapped", "miss")
            }
    summary = {
        "models": {"ladder": model_identity(args.model), "background": model_identity(args.background_model)},
        "detector": detector_identity(),
        "samples_per_caption": args.samples,
        "steps": args.steps,
        "guidance": args.guidance,
        "estimands": {
            "ladder": estimand(frequency, exact["ladder"], args.bootstrap),
            "background": estimand(frequency, exact["background"], args.bootstrap),
            "difference": estimand(frequency, difference, args.bootstrap),
        },
        "levels": levels,
        "pairs": {k: {"frequency": frequency[k], **{n: read[n][k] for n in read}} for k in frequency},
        "seconds": time.perf_counter() - started,
    }
    write_json(args.out, summary)
    print(json.dumps({"estimands": summary["estimands"], "levels": levels}, indent=1))


if __name__ == "__main__":
    main()
