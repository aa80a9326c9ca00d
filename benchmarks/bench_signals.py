"""Seconds per image: the fast familiarity signals against the ``quick`` token count, on the same queries.

    python benchmarks/bench_signals.py [--model shipped] [--queries 1] [--threads 2]

One query per group (common, rare, unseen) times ``--queries``, rendered fresh. For each image:

* signals: the three signals from one batched pass (64 timesteps: 64 UNet rows with the empty
  prompt, 64 with the prompt), latents encoded once;
* fast path: what ``score --signals fast`` does per image (the detector's reading as the prompt,
  then the signals); the reference of the model's own samples is built once per model, timed apart;
* token count: ``score`` with the ``quick`` preset (inversion and reconstruction per m up to the
  first pass), the paper's measure.

Prints the seconds of each and the ratio token count / fast path.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from originality.domains import load_domain
from originality.method.familiarity import SignalReader
from originality.method.search import score, score_preset
from originality.method.signals import compute_signals, query_latents, signal_grid
from originality.models.pipeline import load_pipeline, model_identity
from originality.shapes.queries import render_query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="default: the shipped shapes model")
    parser.add_argument("--queries", type=int, default=1, help="queries per group")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline = load_pipeline(args.model)
    domain = load_domain("shapes")
    config = score_preset("quick").resolve(domain)
    queries = [render_query(g, i, 31_337) for i in range(args.queries) for g in ("common", "rare", "unseen")]
    grid = signal_grid(pipeline)

    started = time.perf_counter()
    reader = SignalReader(
        pipeline,
        model=model_identity(args.model),
        samples=config.reference_samples,
        steps=config.inference_steps,
        guidance=config.guidance_scale,
        detector_threshold=config.detector_threshold,
        progress=False,
    )
    reader.reference(domain)
    reference = time.perf_counter() - started

    signals, fast, tokens = [], [], []
    for image, caption in queries:
        t0 = time.perf_counter()
        compute_signals(pipeline, query_latents(pipeline, [image]), [caption], grid)
        t1 = time.perf_counter()
        reader(image, domain)
        t2 = time.perf_counter()
        score(image, pipeline, config, domain)
        t3 = time.perf_counter()
        signals.append(t1 - t0)
        fast.append(t2 - t1)
        tokens.append(t3 - t2)
    rows = 2 * grid.size
    print(f"{len(queries)} queries, {torch.get_num_threads()} threads, model {model_identity(args.model)[:60]}")
    print(f"reference ({config.reference_samples} samples, once per model): {reference:.1f} s")
    print(f"signals, {rows} UNet rows:         {np.mean(signals):7.2f} s/image")
    print(f"fast path (reading + signals):   {np.mean(fast):7.2f} s/image")
    print(f"token count (quick preset):      {np.mean(tokens):7.2f} s/image")
    print(f"token count / fast path:         {np.mean(tokens) / np.mean(fast):7.0f}x (target >= 50x)")


if __name__ == "__main__":
    main()
