"""End to end: the time to score one image for m = 1..M, ours against the common recipe.

    python benchmarks/bench_end_to_end.py [--model shipped] [--queries common,unseen]
        [--reference-tokens 5] [--reference-steps 2000] [--out FILE.json]

* ours: :func:`originality.score` with the ``quick`` preset (latents encoded once, only the m new
  vectors optimised, 300 steps, batched generation, exit at the first passing m);
* reference: the common recipe, for every m (no early exit): textual inversion that re-encodes
  the image with the VAE every step, runs AdamW over the whole embedding table and restores
  its frozen rows after each step, for the paper's fixed 2,000 steps at the paper's lr; then
  the N samples generated one pipeline call each.

Both use the same model, batch, resolution, samples, seeds, sampler steps, distance, check
and threshold, so their verdicts are comparable. On a CPU the reference takes about ten
minutes per 1,000 steps at batch 8; ``--reference-tokens K`` runs it for m = 1..K only and
prints, apart from the measured time, the total projected from the mean measured time per m
(marked as projected).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from originality.demo import EXAMPLES
from originality.domains import load_domain
from originality.images import load_query
from originality.method.inversion import placeholder_phrase, set_embeddings
from originality.method.reference_inversion import recipe_invert
from originality.method.search import components, sample_seeds, score, score_preset
from originality.models.pipeline import generate, load_pipeline


def reference(pipeline, image, config, domain, distance, check, *, tokens: int, steps: int, lr: float) -> dict:
    """The common recipe through m = 1..tokens: per-m seconds, distances and verdicts."""
    rows = []
    for m in range(1, tokens + 1):
        start = time.perf_counter()
        vectors, _ = recipe_invert(
            pipeline,
            image,
            m,
            steps=steps,
            batch=config.batch_size,
            lr=lr,
            templates=domain.templates,
            initializer=domain.initializer,
            seed=config.seed,
        )
        inverted = time.perf_counter()
        set_embeddings(pipeline, vectors)
        text = domain.prompt.format(placeholder_phrase(m))
        samples = [
            generate(pipeline, [text], [seed], steps=config.inference_steps, guidance_scale=config.guidance_scale)[0]
            for seed in sample_seeds(config)
        ]
        generated = time.perf_counter()
        mean = float(np.mean(distance(image, samples)))
        verdict = check(image, samples, render=None) if check is not None else None
        passed = mean <= config.threshold and (verdict is None or verdict.passed)
        rows.append(
            {
                "m": m,
                "distance": mean,
                "passed": passed,
                "seconds": time.perf_counter() - start,
                "inversion_seconds": inverted - start,
                "generation_seconds": generated - inverted,
            }
        )
        print(f"  reference m={m}: distance {mean:.2f} {'pass' if passed else 'fail'}, {rows[-1]['seconds']:.0f} s")
    count = next((r["m"] for r in rows if r["passed"]), None)
    return {"per_m": rows, "count": count, "seconds": sum(r["seconds"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="default: the shipped shapes model")
    parser.add_argument("--queries", default="common,unseen", help="shipped example queries (common, rare, unseen)")
    parser.add_argument("--reference-tokens", type=int, default=5, help="run the reference for m = 1..K")
    parser.add_argument("--reference-steps", type=int, default=2000, help="paper: 2000")
    parser.add_argument("--reference-lr", type=float, default=5e-4, help="paper: 5e-4")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()

    domain = load_domain("shapes")
    config = score_preset("quick").resolve(domain)
    pipeline = load_pipeline(args.model)
    distance, check = components(config, domain, device=pipeline.device)
    report = {"threads": torch.get_num_threads(), "config": config.__dict__, "queries": {}}
    print(f"{torch.get_num_threads()} threads, batch {config.batch_size}, {config.samples} samples")
    for name in args.queries.split(","):
        image = load_query(EXAMPLES / f"{name}.png", pipeline.unet.config.sample_size * pipeline.vae_scale_factor)
        start = time.perf_counter()
        ours = score(image, pipeline, config, domain, distance=distance, check=check, name=name)
        ours_seconds = time.perf_counter() - start
        distances = " ".join(f"{t.distance:.2f}" for t in ours.per_m)
        print(f"{name}: ours {ours.label} in {ours_seconds:.0f} s (distances by m: {distances})")
        ref = reference(
            pipeline,
            image,
            config,
            domain,
            distance,
            check,
            tokens=min(args.reference_tokens, config.max_tokens),
            steps=args.reference_steps,
            lr=args.reference_lr,
        )
        measured = len(ref["per_m"])
        projected = ref["seconds"] / measured * config.max_tokens
        ref_label = "+" if ref["count"] is None else str(ref["count"])
        if ref["count"] is None and measured < config.max_tokens:
            ref_label = f"none within m <= {measured}"
        line = f"{name}: reference {ref_label}; measured {ref['seconds']:.0f} s for m = 1..{measured}"
        if measured < config.max_tokens:
            line += f", projected {projected:.0f} s for m = 1..{config.max_tokens}"
        print(line)
        note = " (projected)" if measured < config.max_tokens else ""
        print(f"{name}: speed-up {projected / ours_seconds:.1f}x{note}")
        report["queries"][name] = {
            "ours": {"count": ours.count, "seconds": ours_seconds, "distances": [t.distance for t in ours.per_m]},
            "reference": {**ref, "tokens_measured": measured, "projected_seconds": projected},
            "speedup": projected / ours_seconds,
            "speedup_projected": measured < config.max_tokens,
        }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
