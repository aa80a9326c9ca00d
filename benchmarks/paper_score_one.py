"""Score one real image end to end with the ``paper`` preset; time and size every phase, write JSON.

With the weights (the hub, its cache or a folder), the paper's numbers or fewer steps:

    python benchmarks/paper_score_one.py IMAGE --domain houses [--model CompVis/stable-diffusion-v1-4] \
        [--dreamsim-cache DIR] [--size cpu|gpu] [--json OUT.json]

Offline, Stable Diffusion 1.x's architecture with random weights (``models/random_weights.py``: the
same tensors, hence the same memory and time; the samples are noise, so pass or fail is random):

    python benchmarks/paper_score_one.py --random-weights --size cpu --json results/benchmarks/paper-score-one-cpu.json
    python benchmarks/paper_score_one.py --random-weights --size gpu --device cuda \
        --json results/benchmarks/paper-score-one-gpu.json

``--size`` shrinks the ``paper`` preset in steps only (inversion steps per m, samples, sampler steps,
the signals' reference and grid); every m = 1..5 runs (``full_curve``), with ``--signals all``. Then
each phase's cost per unit (an inversion step by batch, a UNet evaluation, a VAE decode, a DreamSim
image, a CLIP image, a signal row) is measured apart and the full preset's time per image is
projected from those units. Peak memory: the process's resident set, sampled every 20 ms (CPU), or
``torch.cuda.max_memory_allocated`` (GPU), per phase.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import platform
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import torch
from diffusers import UNet2DConditionModel
from torch.utils.flop_counter import FlopCounterMode

from originality.demo import EXAMPLES
from originality.domains import load_domain
from originality.images import load_query
from originality.method.dreamsim import DreamSimDistance
from originality.method.in_distribution import ClipClassifier, EditabilityCheck
from originality.method.inversion import InversionSettings, add_placeholders, invert, placeholder_phrase
from originality.method.search import library_versions, score_preset
from originality.method.signals import SignalConfig
from originality.models import random_weights
from originality.models.pipeline import DEFAULT_REAL_MODEL, load_pipeline, resolve_device, resolve_dtype
from originality.scorer import Scorer, save_result

GIB = 2**30
PAPER = score_preset("paper")
PAPER_GRID = SignalConfig()


@dataclasses.dataclass(frozen=True)
class Size:
    """How far the ``paper`` preset is shrunk (steps only); the projection scales back up."""

    inversion_steps: int  # per m, in the end-to-end score
    samples: int
    sampler_steps: int
    batches: tuple[int, ...]  # inversion batch sizes timed apart, keeping the activations
    checkpointed_batches: tuple[int, ...]  # and recomputing them (gradient checkpointing)
    timed_steps: int  # inversion steps timed per batch size
    reference_samples: int
    grid_timesteps: int
    score_batch: int  # the inversion batch inside the end-to-end score


SIZES = {
    # Under 20 minutes on 2 CPU cores (fp32), where a UNet row at 512 px costs seconds.
    "cpu": Size(1, 2, 1, (1, 2, 4), (1,), 1, 2, 2, 1),
    # Sized from the CPU figures to stay under 5 minutes on one H100 (projected, bf16).
    "gpu": Size(25, 20, 35, (1, 2, 4, 8, 20), (1, 4, 20), 5, 8, 64, 20),
    "paper": Size(PAPER.inversion_steps, PAPER.samples, 35, (20,), (20,), 5, PAPER.reference_samples, 64, 20),
}


class PeakMemory:
    """Peak memory over a block: CUDA's allocator peak on a GPU, else the sampled resident set."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_gib = 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak_gib = max(self.peak_gib, process.memory_info().rss / GIB)
            self._stop.wait(0.02)

    @contextmanager
    def measure(self) -> Iterator[PeakMemory]:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            yield self
            torch.cuda.synchronize()
            self.peak_gib = torch.cuda.max_memory_allocated() / GIB
            return
        self.peak_gib, self._stop = 0.0, threading.Event()
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


def timed(device: torch.device, fn, *args, **kwargs) -> tuple[Any, float, float]:
    """``fn``'s result, its seconds and its peak memory (GiB)."""
    meter = PeakMemory(device)
    with meter.measure():
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    return out, seconds, meter.peak_gib


def resident_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.memory_allocated() / GIB
    return psutil.Process().memory_info().rss / GIB


def available_gib(device: torch.device) -> float:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free / GIB + torch.cuda.memory_allocated() / GIB
    return psutil.virtual_memory().available / GIB + psutil.Process().memory_info().rss / GIB


def build(args, device: torch.device, dtype: torch.dtype, work: Path) -> tuple[Any, Any, Any, dict]:
    """The pipeline, the distance and the editability classifier: random weights or the real ones."""
    domain = load_domain(args.domain)
    if args.random_weights:
        pipeline, seconds, peak = timed(torch.device("cpu"), random_weights.sd1_pipeline, work, args.seed)
        pipeline.to(device, dtype)
        (ds_model, preprocess), ds_seconds, _ = timed(device, random_weights.dreamsim_parts, device, args.seed)
        distance = DreamSimDistance.from_model(ds_model, preprocess, device)  # fp32, as dreamsim loads it
        (clip, processor), clip_seconds, _ = timed(device, random_weights.clip_classifier_parts, work, args.seed)
        classifier = ClipClassifier.from_model(clip, processor, device)  # fp32, as from_pretrained loads it
        counts = {k: random_weights.parameter_count(getattr(pipeline, k)) for k in random_weights.SD1_PARAMETERS}
        info = {
            "weights": "random (models/random_weights.py: SD 1.x, DreamSim ensemble, CLIP ViT-B/32)",
            "build_seconds": {"pipeline": seconds, "dreamsim": ds_seconds, "clip": clip_seconds},
            "parameters": counts,
            "parameters_match_sd_v1_4": counts == random_weights.SD1_PARAMETERS,
        }
    else:
        pipeline, seconds, peak = timed(device, load_pipeline, args.model, device=device, dtype=dtype)
        config = score_preset("paper", dreamsim_cache=args.dreamsim_cache, clip_model=args.clip_model).resolve(domain)
        distance = DreamSimDistance(cache_dir=config.dreamsim_cache, variant=config.dreamsim_type, device=device)
        classifier = ClipClassifier(config.clip_model, device)
        info = {"weights": args.model, "build_seconds": {"pipeline": seconds}}
    return pipeline, distance, EditabilityCheck(domain, classifier, min_fraction=PAPER.min_editability), info


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def prompt_positions(pipeline, domain) -> dict[str, int]:
    """Token positions (start and end included) of every prompt that carries m = 5 learned tokens."""
    add_placeholders(pipeline, 5)
    phrase = placeholder_phrase(5)
    texts = [*domain.templates, domain.prompt, *domain.edit_prompts]
    lengths = {t: len(pipeline.tokenizer(t.format(phrase)).input_ids) for t in texts}
    return {"longest": max(lengths.values()), "limit": pipeline.tokenizer.model_max_length, "prompts": len(lengths)}


def counted(fn) -> tuple[float, float]:
    """``fn()``'s TFLOP (torch's counter: matrix products and convolutions) and its seconds, timed apart."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    started = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return counter.get_total_flops() / 1e12, time.perf_counter() - started


@torch.no_grad()
def unit_costs(pipeline, distance, classifier, image, device: torch.device) -> dict[str, dict[str, float]]:
    """TFLOP and seconds of each unit the search repeats: one UNet row (no gradient), one VAE
    decode, one DreamSim image, one CLIP image (each after a warm-up call)."""
    unet, size = pipeline.unet, pipeline.unet.config.sample_size
    latents = torch.randn(2, 4, size, size, device=device, dtype=unet.dtype)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=unet.dtype)
    t = torch.tensor([500, 500], device=device)
    texts = ["a photo of a cat", "a photo of a house"]
    calls = {
        # A guided step's two rows (prompted and empty), as the sampler runs them.
        "unet_row": (lambda: unet(latents, t, encoder_hidden_states=context), 2),
        "vae_decode": (lambda: pipeline.vae.decode(latents[:1] / pipeline.vae.config.scaling_factor), 1),
        "dreamsim_image": (lambda: distance(image, [image] * 3), 4),
        "clip_image": (lambda: classifier.probabilities([image] * 4, texts), 4),
    }
    out = {}
    for name, (fn, per) in calls.items():
        fn()  # warm-up
        tflop, seconds = counted(fn)
        out[name] = {"tflop": tflop / per, "seconds": seconds / per}
        print(f"  {name}: {seconds / per:.3g} s, {tflop / per:.3g} TFLOP", flush=True)
    return out


def inversion_by_batch(pipeline, image, domain, size: Size, device: torch.device) -> dict[str, dict[int, dict]]:
    """Seconds per inversion step and peak memory at each batch size, keeping the UNet's activations
    (``plain``) and recomputing them (``checkpointed``). A batch projected past this machine's memory
    is not run: on a CPU an out-of-memory kill would lose the whole run."""

    def settings(batch: int, steps: int, checkpointed: bool) -> InversionSettings:
        return InversionSettings(
            steps=steps,
            batch_size=batch,
            templates=domain.templates,
            initializer=domain.initializer,
            gradient_checkpointing=checkpointed,
        )

    invert(pipeline, image, 1, settings(1, 1, False))  # warm-up: the first backward allocates
    base = resident_gib(device)
    out: dict[str, dict[int, dict]] = {}
    for mode, batches in (("plain", size.batches), ("checkpointed", size.checkpointed_batches)):
        rows = out.setdefault(mode, {})
        for batch in batches:
            per_image = [(v["peak_gib"] - base) / b for b, v in rows.items() if "peak_gib" in v]
            projected = base + batch * max(per_image) if per_image else None
            room = available_gib(device)
            if projected is not None and projected > 0.9 * room:
                rows[batch] = {"skipped": f"projected peak {projected:.1f} GiB > 90% of {room:.1f} GiB"}
                continue
            try:
                run = settings(batch, size.timed_steps, mode == "checkpointed")
                _, seconds, peak = timed(device, invert, pipeline, image, 1, run)
            except torch.cuda.OutOfMemoryError:
                rows[batch] = {"skipped": "out of GPU memory"}
                torch.cuda.empty_cache()
                continue
            rows[batch] = {"seconds_per_step": seconds / size.timed_steps, "peak_gib": peak}
            print(f"  inversion, {mode}, batch {batch}: {seconds / size.timed_steps:.2f} s/step, peak {peak:.1f} GiB")
    return out


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope (through the origin with one point)."""
    if len(points) == 1:
        return 0.0, points[0][1] / points[0][0]
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def work(size: Size, units: dict[str, dict[str, float]], key: str, inversion_step_at: float) -> dict[str, float]:
    """One image's cost in ``key`` (``tflop`` or ``seconds``) per phase, for a run of ``size``, m = 1..5.

    ``inversion_step_at``: one inversion step at the size's batch (its forward and backward), in ``key``.
    Every phase is linear in its rows: no batching gain is assumed."""
    m, rows = PAPER.max_tokens, lambda unit: units[unit][key]
    draw = size.samples * (size.sampler_steps * 2 * rows("unet_row") + rows("vae_decode"))
    grid = 2 * size.grid_timesteps * rows("unet_row")  # one prompted and one empty row per grid step
    return {
        "inversion": m * size.inversion_steps * inversion_step_at,
        "generation": m * draw,
        "distance": m * (size.samples + 1) * rows("dreamsim_image"),
        "check": m * (draw + size.samples * rows("clip_image")),  # one edit prompt, N samples
        "signals": 3 * grid,  # the query's, and the learned tokens' at m = 1 and at the count
        "reference": size.reference_samples * (size.sampler_steps * 2 * rows("unet_row") + rows("vae_decode") + grid),
    }


def at_batch(rows: dict[int, dict], key: str, batch: int, offset: float = 0.0) -> float | None:
    """``key`` at ``batch``, on the line through the measured batches (None: none measured)."""
    points = [(b, v[key] - offset) for b, v in rows.items() if key in v]
    if not points:
        return None
    intercept, slope = fit_line(points)
    return offset + intercept + slope * batch


def project(
    units: dict[str, dict[str, float]], by_batch: dict[str, dict[int, dict]], base_gib: float, gpu_tflops: float
) -> dict[str, Any]:
    """The ``paper`` preset's cost per image, from this device's unit costs, and on an H100 from the
    FLOPs at an assumed sustained rate; the ``gpu`` size's run on an H100, the same way."""
    paper, gpu = SIZES["paper"], SIZES["gpu"]
    batch = paper.score_batch
    steps = {mode: at_batch(rows, "seconds_per_step", batch) for mode, rows in by_batch.items()}
    peaks = {mode: at_batch(rows, "peak_gib", batch, base_gib) for mode, rows in by_batch.items()}
    step_seconds = steps["plain"] if steps["plain"] is not None else steps["checkpointed"]
    # A step's backward costs about twice its forward: 3 rows' worth of FLOPs per image in the batch.
    row = units["unet_row"]["tflop"]
    seconds = work(paper, units, "seconds", step_seconds)
    tflop = work(paper, units, "tflop", 3 * batch * row)
    gpu_tflop = work(gpu, units, "tflop", 3 * gpu.score_batch * row)
    timed = [*gpu.batches, *gpu.checkpointed_batches]
    gpu_tflop["timed_batches"] = sum(3.5 * b * gpu.timed_steps * row for b in timed)
    per_image = sum(v for k, v in seconds.items() if k != "reference")
    search = per_image - seconds["signals"]  # the m = 1..5 phases
    return {
        "inversion_seconds_per_step_at_batch_20": steps,
        "inversion_peak_gib_at_batch_20": peaks,
        "this_device_seconds": {
            "per_phase_m1_to_5": seconds,
            "image_full_curve": per_image,
            "image_passing_at_m1": seconds["signals"] + search / PAPER.max_tokens,
        },
        "tflop": {"per_phase_m1_to_5": tflop, "image_full_curve": sum(v for k, v in tflop.items() if k != "reference")},
        "h100": {
            "assumed_sustained_tflops": gpu_tflops,
            "paper_image_full_curve_seconds": sum(v for k, v in tflop.items() if k != "reference") / gpu_tflops,
            "paper_reference_seconds": tflop["reference"] / gpu_tflops,
            "gpu_size_run_seconds": sum(gpu_tflop.values()) / gpu_tflops,
        },
        "assumes": (
            "the paper preset: 2000 inversion steps at batch 20 per m, 20 samples x 35 DDIM steps at guidance "
            "3 (2 UNet rows each) and a VAE decode each, DreamSim on 21 images, one edit prompt x 20 samples "
            "through CLIP, signals on a 64-step grid (the query and 2 learned-token readings), a 64-sample "
            "reference once per domain and run; every phase linear in rows (no batching gain); an inversion "
            "step's FLOPs 3x its forward rows (checkpointing adds a forward: 4x)"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", nargs="?", help="default with --random-weights: a shipped query")
    parser.add_argument("--domain", default="houses")
    parser.add_argument("--model", default=DEFAULT_REAL_MODEL)
    parser.add_argument("--random-weights", action="store_true", help="SD 1.x's architecture, random weights")
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu", help="how far the paper preset is shrunk")
    parser.add_argument("--dreamsim-cache")
    parser.add_argument("--clip-model", default=PAPER.clip_model)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--gpu-tflops", type=float, default=200.0, help="sustained bf16 TFLOP/s assumed for the H100 projection"
    )
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--out", help="write result.json, embeddings and grids here")
    args = parser.parse_args()
    if args.image is None and not args.random_weights:
        parser.error("an image is needed (or --random-weights, which scores a shipped query)")

    size = SIZES[args.size]
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    domain = load_domain(args.domain)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        pipeline, distance, check, info = build(args, device, dtype, Path(scratch))
    base = resident_gib(device)
    side = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    image = load_query(args.image or EXAMPLES / "common.png", side)
    print(f"device {device}, dtype {dtype}, {side} px; built in {time.perf_counter() - started:.0f} s", flush=True)

    rows_before = pipeline.text_encoder.get_input_embeddings().num_embeddings
    positions = prompt_positions(pipeline, domain)
    units = unit_costs(pipeline, distance, check.classifier, image, device)
    ahead = work(size, units, "seconds", 3 * size.score_batch * units["unet_row"]["seconds"])
    print(f"inversion by batch, then the end-to-end score (about {sum(ahead.values()) / 60:.0f} min)", flush=True)
    by_batch = inversion_by_batch(pipeline, image, domain, size, device)

    config = score_preset(
        "paper",
        inversion_steps=size.inversion_steps,
        samples=size.samples,
        inference_steps=size.sampler_steps,
        batch_size=size.score_batch,
        reference_samples=size.reference_samples,
        full_curve=True,
        signals="all",
        seed=args.seed,
    )
    grid = SignalConfig(timesteps=size.grid_timesteps)
    scorer = Scorer(pipeline, config, model=info["weights"], distance=distance, check=check, signal_config=grid)
    result, seconds, peak = timed(device, scorer.score, image, name="query", domain=domain)
    rows_after = pipeline.text_encoder.get_input_embeddings().num_embeddings
    for token in result.per_m:
        s = token.seconds
        print(
            f"  m={token.m}: invert {s['inversion']:.1f}s generate {s['generation']:.1f}s "
            f"distance {s['distance']:.1f}s check {s['check']:.1f}s",
            flush=True,
        )
    if args.out:
        save_result(result, image, args.out)
    reference = scorer.signal_reader().reference(domain)
    measured = {k: sum(t.seconds[k] for t in result.per_m) for k in ("inversion", "generation", "distance", "check")}
    if result.familiarity:
        spent = result.familiarity["seconds"]
        measured["signals"] = spent["signals"] + spent.get("learned_token_gap", 0.0)
    measured["reference"] = reference.seconds
    predicted = work(size, units, "seconds", at_batch(by_batch["plain"], "seconds_per_step", size.score_batch))
    figures = {
        "benchmark": "paper_score_one",
        "size": args.size,
        "shrunk_preset": dataclasses.asdict(size),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "dtype": str(dtype).removeprefix("torch."),
        "side_px": side,
        "domain": domain.name,
        "model": info,
        "versions": library_versions(),
        "memory": {
            "how": "CUDA max_memory_allocated" if device.type == "cuda" else "resident set, sampled every 20 ms",
            "after_build_gib": base,
            "end_to_end_peak_gib": peak,
            "process_peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # kB on Linux
            "machine_gib": psutil.virtual_memory().total / GIB
            if device.type == "cpu"
            else torch.cuda.get_device_properties(device).total_memory / GIB,
        },
        "checks": {
            "prompt_positions_with_m5": positions,
            "text_embedding_rows_added_over_m1_to_5": rows_after - rows_before,
            "unets_in_memory_after_the_curve": sum(isinstance(o, UNet2DConditionModel) for o in gc.get_objects()),
        },
        # The projection's model tried on this run: phases predicted from the unit costs against seen.
        "projection_check": {"predicted_seconds": predicted, "measured_seconds": measured},
        "measured": {
            "units": units,
            "inversion_by_batch": by_batch,
            "end_to_end_seconds": seconds,
            "per_m_seconds": [token.seconds for token in result.per_m],
            "signals_seconds": result.familiarity["seconds"] if result.familiarity else None,
            "reference_seconds": reference.seconds,
            "reference_samples": reference.drawn,
        },
        "projected": project(units, by_batch, base, args.gpu_tflops),
        "wall_seconds": time.perf_counter() - started,
    }
    machine = figures["memory"]["machine_gib"]
    figures["projected"]["fits_batch_20_on_this_device"] = {
        mode: None if peak is None else peak <= machine
        for mode, peak in figures["projected"]["inversion_peak_gib_at_batch_20"].items()
    }
    print(json.dumps(figures["projected"], indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
