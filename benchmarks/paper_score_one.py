"""Score one real image end to end with the ``paper`` preset and print the time of each phase.

    python benchmarks/paper_score_one.py IMAGE --domain houses \
        [--model CompVis/stable-diffusion-v1-4] [--dreamsim-cache DIR] [--out OUT] [--max-tokens 5]

For a GPU machine with the weights (or the network to fetch them): Stable Diffusion from the hub or
a folder, DreamSim from its cache, CLIP for the editability check. Prints, per token count, the
seconds spent inverting (2000 steps, batch 20), generating the 20 reconstructions (35 steps),
measuring DreamSim and running the editability check, then the totals. ``--steps`` and
``--samples`` shrink the run for a smoke test.
"""

from __future__ import annotations

import argparse
import time

import torch

from originality.domains import load_domain
from originality.images import load_query
from originality.method.search import components, score, score_preset
from originality.models.pipeline import DEFAULT_REAL_MODEL, load_pipeline
from originality.scorer import save_result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("--domain", default="houses")
    parser.add_argument("--model", default=DEFAULT_REAL_MODEL)
    parser.add_argument("--dreamsim-cache")
    parser.add_argument("--distance", help="default: the domain's (dreamsim)")
    parser.add_argument("--clip-model")
    parser.add_argument("--max-tokens", type=int, default=5)
    parser.add_argument("--steps", type=int, help="inversion steps (paper: 2000)")
    parser.add_argument("--samples", type=int, help="reconstructions per m (paper: 20)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--out", help="write result.json, embeddings and grids here")
    args = parser.parse_args()

    overrides = {"max_tokens": args.max_tokens, "full_curve": True}
    for key in ("dreamsim_cache", "distance", "clip_model", "samples"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.steps is not None:
        overrides["inversion_steps"] = args.steps
    domain = load_domain(args.domain)
    config = score_preset("paper", **overrides).resolve(domain)
    t0 = time.perf_counter()
    pipeline = load_pipeline(args.model, device="auto", dtype=args.dtype)
    t1 = time.perf_counter()
    distance, check = components(config, domain, device=pipeline.device)
    t2 = time.perf_counter()
    image = load_query(args.image, pipeline.unet.config.sample_size * pipeline.vae_scale_factor)
    print(f"device {pipeline.device}, dtype {pipeline.unet.dtype}; load model {t1 - t0:.1f} s, metrics {t2 - t1:.1f} s")
    print(f"{'m':>2s} {'invert':>8s} {'generate':>9s} {'distance':>9s} {'check':>7s}  distance  passed")

    def report(token) -> None:
        s = token.seconds
        print(
            f"{token.m:2d} {s['inversion']:7.1f}s {s['generation']:8.1f}s {s['distance']:8.1f}s {s['check']:6.1f}s"
            f"  {token.distance:.3f}    {token.passed}",
            flush=True,
        )

    result = score(image, pipeline, config, domain, distance=distance, check=check, on_token=report)
    if args.out:
        save_result(result, image, args.out)
    totals = {k: sum(t.seconds[k] for t in result.per_m) for k in ("inversion", "generation", "distance", "check")}
    print("totals: " + ", ".join(f"{k} {v:.0f} s" for k, v in totals.items()))
    print(f"originality: {result.label} token(s), soft {result.soft_tokens:.2f}")
    if torch.cuda.is_available():
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
