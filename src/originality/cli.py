"""Command line: a thin layer over the Python API.

    originality data make --spec originality-mix --n 100000 --out data/mix
    originality data stats data/mix
    originality data sheet data/mix --out sheet.png
    originality data presets
    originality demo

Every user error (``OriginalityError``, an unwritable path) is one line on stderr and
exit status 2; nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from originality import __version__
from originality.errors import OriginalityError

MAX_REFERENCE_SAMPLES = 4096  # the model's own samples behind a percentile: enough, and hours on a CPU already


def _data_make(args: argparse.Namespace) -> None:
    from originality.shapes.dataset import make_dataset
    from originality.shapes.specs import load_spec

    spec = load_spec(args.spec)
    out = make_dataset(
        spec,
        args.n,
        args.out,
        size=args.size,
        seed=args.seed,
        overwrite=args.overwrite,
        workers=args.workers,
        progress=not args.quiet,
        colour_jitter=args.colour_jitter,
        size_jitter=args.size_jitter,
    )
    print(f"wrote {args.n} images of {spec.name} at {args.size} px to {out}")


def _data_stats(args: argparse.Namespace) -> None:
    from originality.shapes.statistics import dataset_report

    report = dataset_report(args.dataset)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    if not report["ok"]:
        failed = [c["name"] for c in report["checks"] if not c["ok"]]
        raise OriginalityError(f"{len(failed)} check(s) against the spec failed: {', '.join(failed[:5])}")


def format_report(report: dict) -> str:
    stats = report["statistics"]
    lines = [f"dataset of spec {report['spec']}: {stats['images']} images"]
    lines.append("components: " + ", ".join(f"{k} {v:.2%}" for k, v in stats["components"].items()))
    lines.append("elements per image: " + ", ".join(f"{k}: {v:.1%}" for k, v in stats["element_counts"].items()))
    top = list(stats["elements"].items())[:8]
    lines.append("most frequent elements: " + ", ".join(f"{k} ({v})" for k, v in top))
    lines.append("checks:")
    for c in report["checks"]:
        mark = "ok  " if c["ok"] else "FAIL"
        lines.append(
            f"  {mark} {c['name']}: observed {c['observed']:.4g}, expected {c['expected']:.4g} ± {c['tolerance']:.2g}"
        )
    return "\n".join(lines)


def _data_sheet(args: argparse.Namespace) -> None:
    from originality.report.grids import dataset_contact_sheet

    out = dataset_contact_sheet(args.dataset, args.out, count=args.count, columns=args.columns)
    print(f"wrote {out}")


def _data_presets(args: argparse.Namespace) -> None:
    from originality.shapes.specs import list_presets, preset

    for name in list_presets():
        print(f"{name:24s} {preset(name).description}")


def _parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` settings (values parsed as JSON when they parse, else kept as strings)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise OriginalityError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _train(args: argparse.Namespace) -> None:
    import shlex

    from originality.models.config import train_preset, with_overrides
    from originality.models.training import train

    overrides = _parse_overrides(args.set or [])
    if args.text_encoder:
        overrides["text_encoder"] = args.text_encoder
    if args.max_images:
        overrides["max_images"] = args.max_images
    config = with_overrides(train_preset(args.preset), overrides)
    command = "originality " + " ".join(shlex.quote(a) for a in args.argv)
    if args.hours is not None and args.hours <= 0:
        raise OriginalityError(f"--hours must be positive, got {args.hours:g}")
    minutes = None if args.hours is None else 60 * args.hours
    out = train(
        config,
        args.data,
        args.out,
        overwrite=args.overwrite,
        progress=not args.quiet,
        command=command,
        max_minutes=minutes,
        carry=args.carry,
    )
    from accelerate import PartialState  # the process group the trainer joined

    if PartialState().is_main_process and (out / "model_index.json").is_file():  # one line, not one per process
        print(f"saved pipeline to {out} (model card: {out / 'README.md'})")


def _sample(args: argparse.Namespace) -> None:
    from originality.models.pipeline import generate, load_pipeline
    from originality.report.grids import image_grid
    from originality.runs import save_image

    if args.seeds < 1:
        raise OriginalityError("--seeds must be >= 1")
    pipeline = load_pipeline(args.model)
    prompts = [p for p in args.prompt for _ in range(args.seeds)]
    seeds = [args.seed + i for _ in args.prompt for i in range(args.seeds)]
    images = generate(pipeline, prompts, seeds, steps=args.inference_steps, guidance_scale=args.guidance)
    captions = [f"{p} [{s}]" for p, s in zip(prompts, seeds, strict=True)]
    grid = image_grid(images, captions, columns=args.seeds)
    out = save_image(grid, args.out)
    print(f"wrote {out}")


def _detector_train(args: argparse.Namespace) -> None:
    from originality.detection.training import train_detector

    detector = train_detector(
        args.train,
        args.val,
        args.out,
        epochs=args.epochs,
        batch=args.batch,
        workers=args.workers,
        seed=args.seed,
        lr0=args.lr0,
        blur=args.blur,
        init=args.init,
        verbose=not args.quiet,
    )
    print(f"saved detector to {args.out} ({detector.yaml}, {detector.imgsz} px)")


def _detector_evaluate(args: argparse.Namespace) -> None:
    from originality.detection.detector import ElementDetector, check_confidence
    from originality.detection.evaluation import evaluate, write_evaluation

    check_confidence(args.detector_threshold, "--detector-threshold")
    detector = ElementDetector.load(args.detector)
    report = evaluate(detector, args.data, threshold=args.detector_threshold)
    json_path, png = write_evaluation(report, args.out)
    acc = ", ".join(f"{k} {v:.4f}" for k, v in report["attribute_accuracy"].items() if v is not None)
    print(
        f"{report['images']} images, {report['elements']} elements at confidence >= {report['threshold']}: "
        f"precision {report['precision']:.4f}, recall {report['recall']:.4f}; exact images "
        f"{report['exact_images']:.4f}; attribute accuracy: {acc}\nwrote {json_path} and {png}"
    )


def _detector_generated(args: argparse.Namespace) -> None:
    from originality.detection.detector import ElementDetector, check_confidence
    from originality.detection.evaluation import evaluate_generated
    from originality.models.pipeline import load_pipeline
    from originality.report.grids import image_grid
    from originality.runs import save_image, write_json
    from originality.shapes.dataset import read_table

    if args.n < 1:
        raise OriginalityError("--n must be >= 1")
    check_confidence(args.detector_threshold, "--detector-threshold")
    rows = read_table(args.data, columns=["caption", "component"]).to_pylist()
    captions = [r["caption"] for r in rows if r["caption"] and args.component in (None, r["component"])][: args.n]
    if not captions:
        raise OriginalityError(f"no captions of component {args.component!r} in {args.data}")
    detector = ElementDetector.load(args.detector)
    if args.detector_threshold is not None:
        detector.threshold = args.detector_threshold
    pipeline = load_pipeline(args.model)
    steps, guidance = args.inference_steps, args.guidance
    report = evaluate_generated(detector, pipeline, captions, seed=args.seed, steps=steps, guidance_scale=guidance)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = report.pop("images")
    missed = [m["index"] for m in report["misses"]][:48]
    if missed:
        labels = [
            f"{captions[i]} -> {', '.join(report['misses'][k]['detected']) or 'nothing'}" for k, i in enumerate(missed)
        ]
        save_image(image_grid([images[i] for i in missed], labels, columns=8, caption_lines=6), out / "misses.png")
    save_image(image_grid(images[:64], captions[:64], columns=8), out / "samples.png")
    settings = {"model": str(args.model), "steps": args.inference_steps, "guidance": args.guidance}
    write_json(
        out / "generated.json", {**report, **settings, "threshold": detector.threshold, "component": args.component}
    )
    print(
        f"{report['samples']} samples from {args.model}: detections match the caption exactly in "
        f"{report['exact']:.1%}, the shapes in {report['shapes']:.1%}; wrote {out}"
    )


def _detector_detect(args: argparse.Namespace) -> None:
    from PIL import ImageDraw

    from originality.detection.detector import ElementDetector, check_confidence, to_rgb
    from originality.runs import save_image

    check_confidence(args.detector_threshold, "--detector-threshold")
    images = [to_rgb(p) for p in args.images]  # every image read before anything is written
    detector = ElementDetector.load(args.detector)
    out = Path(args.out)
    found_all = detector.detect(images, threshold=args.detector_threshold)
    for path, image, found in zip(args.images, images, found_all, strict=True):
        scale = max(1, 256 // image.width)
        canvas = image.resize((image.width * scale, image.height * scale), resample=0)
        draw = ImageDraw.Draw(canvas)
        for d in found:
            draw.rectangle([v * scale for v in d.box], outline=(0, 0, 0))
            draw.text(
                (d.box[0] * scale, max(0, d.box[1] * scale - 10)), f"{d.element} {d.confidence:.2f}", fill=(0, 0, 0)
            )
        target = out / (Path(path).stem + "-boxes.png")
        save_image(canvas, target)
        print(f"{path}: " + ("; ".join(f"{d.element} ({d.confidence:.2f})" for d in found) or "nothing"))


def _score_config(args: argparse.Namespace, preset: str | None = None, **forced):
    """The ScoreConfig of a preset (``preset``, else ``--preset``) with the options a user gave on
    the command line."""
    from originality.method.search import score_preset

    overrides = {
        k: v
        for k, v in {
            "max_tokens": args.max_tokens,
            "threshold": args.threshold,
            "distance": args.distance,
            "samples": args.samples,
            "inversion_steps": args.inversion_steps,
            "shift_views": getattr(args, "shift_views", None),
            "phrase_length": getattr(args, "phrase_length", None),
            "seed": args.seed,
            "detector_threshold": args.detector_threshold,
            "inference_steps": getattr(args, "inference_steps", None),
            "dreamsim_cache": getattr(args, "dreamsim_cache", None),
            "dreamsim_type": getattr(args, "dreamsim_type", None),
            "clip_model": getattr(args, "clip_model", None),
            "min_editability": getattr(args, "min_editability", None),
            "signals": getattr(args, "signals", None),
            "reference_samples": getattr(args, "reference_samples", None),
        }.items()
        if v is not None
    }
    if getattr(args, "full_curve", False):
        overrides["full_curve"] = True
    if getattr(args, "force", False):
        overrides["force"] = True
    if getattr(args, "gradient_checkpointing", False):
        overrides["gradient_checkpointing"] = True
    if args.no_check:
        overrides["check"] = None
    return score_preset(preset or args.preset, **{**overrides, **forced})


def _score(args: argparse.Namespace) -> int:
    from originality.batch import (
        FAILED_EXIT,
        failures,
        prepare,
        processes,
        score_all,
        summary_table,
        write_batch_report,
    )
    from originality.domains import load_domain
    from originality.models.pipeline import (
        DEFAULT_REAL_MODEL,
        check_same_latent_space,
        load_pipeline,
        model_identity,
        resolve_device,
    )

    config = _score_config(args)
    domain = load_domain(args.domain)  # fail before loading the model
    if config.reference_samples > MAX_REFERENCE_SAMPLES:
        raise OriginalityError(
            f"--reference-samples is at most {MAX_REFERENCE_SAMPLES} (each is a sample drawn and read), got "
            f"{config.reference_samples}"
        )
    procs = processes()  # under `accelerate launch`: this process's share and GPU
    device = procs.device if procs.count > 1 and args.device == "auto" else args.device
    resolve_device(device)  # a device this machine lacks: one line, before anything loads
    model = args.model or (None if domain.name == "shapes" else DEFAULT_REAL_MODEL)
    identity = model_identity(model)  # hashes a local UNet's weights: once
    background_identity = model_identity(args.background_model) if args.background_model else None
    # The one preparation: every input checked, the settings made, the folder checked.
    batch = prepare(
        args.input, config, args.out, domain=args.domain, model=identity, prompt=args.prompt or None,
        background_model=background_identity,
    )  # fmt: skip
    pipeline = load_pipeline(model, device=device, dtype=args.dtype, cache_dir=args.cache_dir)
    background = None
    if args.background_model:
        background = load_pipeline(args.background_model, device=device, dtype=args.dtype, cache_dir=args.cache_dir)
        check_same_latent_space(pipeline, background, f"--background-model {args.background_model}")
    records = score_all(
        batch, pipeline, config, args.out, progress=not args.quiet, procs=procs, model=identity, background=background
    )
    if procs.index == 0:
        print(summary_table(records))
        report = write_batch_report(args.out, records)
        print(f"results: {Path(args.out) / 'results.jsonl'}; report: {report}")
        unread = [r for r in records if r["label"] == "unreadable"]
        if len(records) == 1 and unread:  # one image and no verdict: the exit status says so
            raise OriginalityError(f"{unread[0]['image']} is unreadable: {unread[0]['reason']} (--force scores it)")
        failed = failures(records)
        if failed and Path(args.input).is_file() and Path(args.input).suffix.lower() != ".csv":
            raise OriginalityError(failed[0]["reason"])  # one image, not a batch: a usage error's one line
        if failed:
            print(
                f"error: {len(failed)} of {len(records)} inputs failed (status 'error' in results.jsonl; "
                "rerun the command to retry them)",
                file=sys.stderr,
            )
            return FAILED_EXIT
    return 0


def _experiment_generalization(args: argparse.Namespace) -> None:
    from originality.experiments.generalization import run_generalization
    from originality.experiments.generalization_config import generalization_preset

    overrides: dict = {}
    if args.levels:
        overrides["levels"] = tuple(_ints(args.levels, "--levels"))
    if args.variants:
        overrides["variants"] = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    for key in ("samples", "images", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    config = generalization_preset(args.preset)
    if args.set:  # on top of the preset's own training settings
        overrides["train_overrides"] = {**config.train_overrides, **_parse_overrides(args.set)}
    config = dataclasses.replace(config, **overrides).validate()
    summary = run_generalization(
        args.out, config, progress=not args.quiet, measured_only=args.measured_only, data_parallel=args.data_parallel
    )
    if summary is None:  # a helper process under accelerate launch or torchrun
        return
    print(
        f"{'level':>5s}  {'empty prompt':>14s}  {'element prompt':>14s}  {'prompted images with it':>23s}  "
        f"{'empty vs an average element':>27s}"
    )
    for level, v in summary["levels"].items():
        print(
            f"{level:>5s}  {v['empty']['frequency']:14.1%}  {v['element']['frequency']:14.1%}  "
            f"{v['element']['image_rate']:23.1%}  {v['empty']['vs_average_element']:27.2f}"
        )
    print(f"fig3.png, fig12-quality.png, fig13-samples.png, summary.json and report.html in {args.out}")


def _experiment_generalization_compare(args: argparse.Namespace) -> None:
    from originality.experiments.generalization_summary import compare_lengths

    ladders = compare_lengths(args.runs, args.out)
    levels = sorted({int(level) for ladder in ladders for level in ladder["levels"]})
    print("held-out element's share of the element prompt's detections, by UNet steps and level")
    print(f"{'steps':>7s} {'recipe':>16s} {'detector':>12s}  " + "  ".join(f"{level:>6d}" for level in levels))
    for ladder in ladders:
        row = ladder["levels"]
        cells = [f"{row[str(lv)]['element']:6.1%}" if str(lv) in row else f"{'-':>6s}" for lv in levels]
        recipe = f"{ladder['train']} {ladder['recipe'][:8]}"
        print(f"{ladder['unet_steps']:>7,d} {recipe:>16s} {ladder['detector']:>12s}  " + "  ".join(cells))
    print(f"{args.out} and {Path(args.out).with_suffix('.json')}")


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise OriginalityError(f"{option} takes comma-separated integers, got {text!r}") from None


def _demo(args: argparse.Namespace) -> None:
    from originality.demo import run_demo

    run_demo(args.out, model=args.model, progress=not args.quiet)


class _Deprecated(argparse.Action):
    """An old spelling of an option: it works for one more release, with a one-line warning."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated and will be removed; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _deprecated(parser: argparse.ArgumentParser, old: str, new: str, **kwargs) -> None:
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, help=argparse.SUPPRESS, **kwargs)


def _add_score_options(parser: argparse.ArgumentParser, *, shared: bool = True) -> None:
    """The scoring options; ``shared=False`` leaves out those an experiment's own parser has
    (``--model``, ``--preset``, ``--quiet``)."""
    if shared:
        parser.add_argument(
            "--model",
            help="pipeline folder or hub id (default: the shipped shapes model; CompVis/stable-diffusion-v1-4 for "
            "real-image domains)",
        )
        parser.add_argument("--preset", default="quick", help="quick (CPU) or paper")
    parser.add_argument("--max-tokens", type=int, help="M, the largest token count tried (default 5)")
    parser.add_argument("--threshold", type=float, help="distance at or below which a reconstruction passes")
    parser.add_argument(
        "--distance",
        help="elements or shapes (shapes models), dreamsim (real images) or ssim; default: the domain's",
    )
    parser.add_argument("--samples", type=int, help="N reconstructions per token count")
    parser.add_argument("--inversion-steps", type=int, help="textual-inversion steps per token count")
    _deprecated(parser, "--steps", "--inversion-steps", type=int)
    parser.add_argument(
        "--shift-views", type=int, help="invert on this many translations of the query on its plain background"
    )
    parser.add_argument(
        "--phrase-length", type=int, help="prompt positions the m tokens fill, repeated in turn (default: m)"
    )
    parser.add_argument("--detector-threshold", type=float, help="detector confidence for the shapes distance")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-check", action="store_true", help="skip the in-distribution check")
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute the UNet's activations in the inversion's backward pass: less memory, more compute",
    )
    if shared:
        parser.add_argument("--quiet", action="store_true")


def _add_registered_experiments(expsub) -> None:
    """One command per experiment on the runner's skeleton, its options made from its config."""
    from originality.experiments.runner import option_fields, registered

    for name, experiment in registered().items():
        first = next(iter(experiment.presets))
        parser = expsub.add_parser(name, help=experiment.title, description=experiment.title)
        parser.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
        parser.add_argument(
            "--preset", choices=list(experiment.presets), help=f"named settings (default {first}); options override"
        )
        names = []
        for field, kind, default, text in option_fields(experiment.config_type()):
            flag, names = "--" + field.replace("_", "-"), [*names, field]
            if kind is bool:
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            else:
                shown = "" if default in (None, "") else f" (default {default})"
                parser.add_argument(flag, type=kind, default=None, help=f"{text}{shown}")
        if experiment.score_options:  # its config's ``score``: the options of ``score``
            _add_score_options(parser, shared=False)
        parser.add_argument("--quiet", action="store_true")
        parser.set_defaults(func=_experiment_registered, experiment_object=experiment, option_names=names)


def _experiment_registered(args: argparse.Namespace) -> None:
    from originality.experiments.runner import run_experiment

    experiment = args.experiment_object
    overrides = {n: getattr(args, n) for n in args.option_names if getattr(args, n) is not None}
    if experiment.score_options:
        overrides["score"] = _score_config(args, preset=experiment.config(args.preset).score.preset)
    config = experiment.config(args.preset, **overrides)
    summary = run_experiment(experiment, args.out, config, progress=not args.quiet)
    if summary is None:  # not the first of several processes: that one reports
        return
    print(experiment.table(summary))
    print(f"wrote {Path(args.out) / 'summary.json'} and {Path(args.out) / 'report.html'}")


def build_parser(experiments: bool = True) -> argparse.ArgumentParser:
    """The command line; ``experiments=False`` leaves out the experiments on the skeleton, whose
    modules take seconds to import (``main`` adds them only for ``originality experiment``)."""
    parser = argparse.ArgumentParser(prog="originality", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"originality {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="make, check and look at synthetic shapes datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    make = dsub.add_parser("make", help="render a dataset from a spec preset or spec file")
    make.add_argument("--spec", required=True, help="preset name (see 'data presets') or a .json/.yaml spec file")
    make.add_argument("--n", type=int, required=True, help="number of images")
    make.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    make.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    make.add_argument(
        "--colour-jitter",
        action="store_true",
        help="draw each element's colour inside its class (hue, saturation, value) instead of the palette's",
    )
    make.add_argument(
        "--size-jitter", action="store_true", help="draw each element's size inside its class (big or small)"
    )
    make.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    make.add_argument("--quiet", action="store_true", help="no progress bar")
    make.set_defaults(func=_data_make)

    stats = dsub.add_parser("stats", help="print statistics and check them against the spec")
    stats.add_argument("dataset")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=_data_stats)

    sheet = dsub.add_parser("sheet", help="draw a contact sheet PNG")
    sheet.add_argument("dataset")
    sheet.add_argument("--out", required=True)
    sheet.add_argument("--count", type=int, default=48)
    sheet.add_argument("--columns", type=int, default=8)
    sheet.set_defaults(func=_data_sheet)

    presets = dsub.add_parser("presets", help="list spec presets")
    presets.set_defaults(func=_data_presets)

    train = sub.add_parser("train", help="train a VAE + UNet from scratch on a shapes dataset (resumes if stopped)")
    train.add_argument("--data", required=True, help="dataset folder made by 'data make'")
    train.add_argument("--out", required=True, help="pipeline folder to write (rerun the command to resume)")
    train.add_argument("--preset", default="cpu", help="tiny | cpu | ship | paper (default cpu)")
    train.add_argument("--text-encoder", help="minilm (default), tiny, a hub id or a local folder")
    train.add_argument("--max-images", type=int, help="train on the first n images")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set unet_epochs=5 --set unet.layers_per_block=2",
    )
    train.add_argument(
        "--hours",
        type=float,
        help="time budget for this call: then checkpoint and save a snapshot; rerun to continue",
    )
    train.add_argument(
        "--carry",
        metavar="DIR",
        help="carry the run across machines: each call writes the UNet's EMA weights and the run state here "
        "(about a quarter of a checkpoint, to commit); a call with no checkpoint in --out starts from it",
    )
    train.add_argument("--overwrite", action="store_true", help="start again, discarding a run in --out")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=_train)

    sample = sub.add_parser("sample", help="write a grid of samples for prompts and seeds")
    sample.add_argument("--model", required=True, help="pipeline folder")
    sample.add_argument("--prompt", action="append", required=True, help="a caption; repeat for several rows")
    sample.add_argument("--seeds", type=int, default=8, help="samples per prompt (seeds seed..seed+n-1)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--inference-steps", type=int, default=50, help="sampler steps (default 50)")
    _deprecated(sample, "--steps", "--inference-steps", type=int)
    sample.add_argument("--guidance", type=float, default=3.0)
    sample.add_argument("--out", required=True, help="PNG file")
    sample.set_defaults(func=_sample)

    det = sub.add_parser("detector", help="train, evaluate and run the element detector")
    detsub = det.add_subparsers(dest="detector_command", required=True)
    dtrain = detsub.add_parser("train", help="train YOLO on shapes datasets (needs the 'detector' extra)")
    dtrain.add_argument("--train", required=True, help="shapes dataset folder to train on")
    dtrain.add_argument("--val", required=True, help="shapes dataset folder for validation")
    dtrain.add_argument("--out", required=True, help="folder for detector.safetensors and detector.json")
    dtrain.add_argument("--epochs", type=int, default=20)
    dtrain.add_argument("--batch", type=int, default=64)
    dtrain.add_argument("--workers", type=int, default=2)
    dtrain.add_argument("--seed", type=int, default=0)
    dtrain.add_argument("--lr0", type=float, default=0.002, help="initial learning rate (cosine decay)")
    dtrain.add_argument("--blur", type=float, default=0.0, help="share of training images blurred (0.3-1.2 px)")
    dtrain.add_argument("--init", help="start from this saved detector folder (train it longer)")
    dtrain.add_argument("--quiet", action="store_true")
    dtrain.set_defaults(func=_detector_train)
    deval = detsub.add_parser("evaluate", help="precision/recall and confusion matrices on a shapes dataset")
    deval.add_argument("--data", required=True)
    deval.add_argument("--detector", help="detector folder (default: the shipped one)")
    deval.add_argument("--detector-threshold", type=float, help="detector confidence (default 0.9)")
    _deprecated(deval, "--threshold", "--detector-threshold", type=float)
    deval.add_argument("--out", required=True, help="folder for evaluation.json and evaluation.png")
    deval.set_defaults(func=_detector_evaluate)
    dgen = detsub.add_parser("generated", help="how often detections on a model's samples match their captions")
    dgen.add_argument("--model", required=True, help="pipeline folder")
    dgen.add_argument("--data", required=True, help="shapes dataset whose captions to prompt with")
    dgen.add_argument("--n", type=int, default=256)
    dgen.add_argument("--detector", help="detector folder (default: the shipped one)")
    dgen.add_argument("--inference-steps", type=int, default=50, help="sampler steps (default 50)")
    _deprecated(dgen, "--steps", "--inference-steps", type=int)
    dgen.add_argument("--guidance", type=float, default=3.0)
    dgen.add_argument("--seed", type=int, default=0)
    dgen.add_argument("--component", help="only captions of this component (e.g. common)")
    dgen.add_argument("--detector-threshold", type=float, help="detector confidence (default 0.9)")
    _deprecated(dgen, "--threshold", "--detector-threshold", type=float)
    dgen.add_argument("--out", required=True)
    dgen.set_defaults(func=_detector_generated)
    ddetect = detsub.add_parser("detect", help="detect elements in images and draw the boxes")
    ddetect.add_argument("images", nargs="+")
    ddetect.add_argument("--detector", help="detector folder (default: the shipped one)")
    ddetect.add_argument("--detector-threshold", type=float, help="detector confidence (default 0.9)")
    _deprecated(ddetect, "--threshold", "--detector-threshold", type=float)
    ddetect.add_argument("--out", required=True, help="folder for the annotated PNGs")
    ddetect.set_defaults(func=_detector_detect)

    score = sub.add_parser("score", help="originality of an image (or a folder / CSV of images)")
    score.add_argument("input", help="an image, a folder of images, or a CSV with an 'image' column")
    score.add_argument("--domain", default="shapes", help="shapes, houses, art, ... or a domain file")
    score.add_argument("--out", required=True, help="output folder (rerun to resume)")
    score.add_argument("--full-curve", action="store_true", help="run every m instead of stopping at the first pass")
    score.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda, cuda:1, ...")
    score.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16/fp16 on GPU), fp32, fp16, bf16")
    score.add_argument("--cache-dir", help="Hugging Face cache for hub models (default: the hub's)")
    score.add_argument("--inference-steps", type=int, help="sampler steps (default: the domain's, 50 or 35)")
    score.add_argument("--dreamsim-cache", help="folder of the DreamSim weights (see method/dreamsim.py)")
    score.add_argument("--dreamsim-type", help="ensemble (default, the paper's) or a single backbone: dino_vitb16, ...")
    score.add_argument("--clip-model", help="CLIP for the editability check (default openai/clip-vit-base-patch32)")
    score.add_argument("--min-editability", type=float, help="share of edited samples that must show the concept")
    score.add_argument(
        "--signals",
        help="familiarity signals: all (with the token count; the presets' default), fast (signals alone, no "
        "inversion: seconds per image) or none (the token count alone)",
    )
    score.add_argument(
        "--force", action="store_true", help="score a shapes query the detector could not read in full anyway"
    )
    score.add_argument(
        "--prompt",
        help="the prompted signals' prompt (default, and for an empty --prompt '': the domain's reading of the image)",
    )
    score.add_argument(
        "--background-model",
        help="a second model on the same VAE, trained on the same images with every pair equally common: "
        "adds the likelihood ratio (its unconditional loss minus the model's)",
    )
    score.add_argument(
        "--reference-samples",
        type=int,
        help=f"the model's own samples the percentiles read against (default 64, at most {MAX_REFERENCE_SAMPLES})",
    )
    _add_score_options(score)
    score.set_defaults(func=_score)

    exp = sub.add_parser("experiment", help="the paper's experiments")
    expsub = exp.add_subparsers(dest="experiment", required=True)
    gen = expsub.add_parser("generalization", help="Fig. 3: generalization vs training diversity (trains models)")
    gen.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    gen.add_argument(
        "--preset",
        default="quick",
        help="quick (this CPU, ~2 h, too short to show much), cpu (4 levels, ~90 min each), "
        "paper (GPUs) or tiny (seconds)",
    )
    gen.add_argument("--levels", help="comma-separated ladder levels (default: 4,6,9,15,30,60)")
    gen.add_argument("--variants", help="comma-separated variants: big-full,big-empty,small-full,small-empty")
    gen.add_argument("--samples", type=int, help="images per prompt type (paper: 1024)")
    gen.add_argument("--images", type=int, help="training images per level")
    gen.add_argument("--seed", type=int, help="sampling seed of the measurements (the models stay the same)")
    gen.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a training setting of every level's model, e.g. --set unet_epochs=12.8",
    )
    gen.add_argument(
        "--measured-only",
        action="store_true",
        help="train nothing: write the figures and summary of the levels measured so far",
    )
    gen.add_argument(
        "--data-parallel",
        action="store_true",
        help="under torchrun / accelerate launch: train each model on all processes, one model at a time "
        "(default: one model per process)",
    )
    gen.add_argument("--quiet", action="store_true")
    gen.set_defaults(func=_experiment_generalization)
    cmp_ = expsub.add_parser(
        "generalization-compare", help="Fig. 3 per training length, pooled from finished generalization runs"
    )
    cmp_.add_argument("runs", nargs="+", help="output folders of `experiment generalization`")
    cmp_.add_argument("--out", required=True, help="the figure (.png); its numbers go beside it as .json")
    cmp_.set_defaults(func=_experiment_generalization_compare)
    if experiments:
        _add_registered_experiments(expsub)

    demo = sub.add_parser("demo", help="score the three shipped example queries with the shipped model")
    demo.add_argument("--out", default="outputs/demo")
    demo.add_argument("--model", help="pipeline folder (default: the shipped shapes model)")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(experiments="experiment" in argv).parse_args(argv)
    args.argv = argv
    try:
        status = args.func(args)  # a command may return its own exit status (score: some inputs failed)
    except OriginalityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
