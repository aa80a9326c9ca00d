"""Score many images: a folder, a CSV (``image`` column, optional ``domain``) or one file.

Each finished image gets its own folder (written under a temporary name, renamed when
complete) and one line in ``results.jsonl``, appended with a single write and an fsync. A
rerun skips the images already in ``results.jsonl``; a killed run loses nothing finished. The
run's settings (scoring config, domain, model) are kept in ``settings.json``, and a rerun with
other settings into the same folder is refused rather than mixed in.

Several processes split the images round-robin: ``accelerate launch --num_processes K -m
originality.cli score ...`` (one per GPU) or ``torchrun --nproc-per-node K -m originality.cli
score ...`` (GPUs or CPU cores). Process k appends to its own ``results.rank<k>.jsonl``; at the
end the first process merges them into ``results.jsonl``. A run that died before the merge leaves
its part files, which a rerun counts as finished and merges.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from originality import runs
from originality.detection.detector import detector_identity
from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.images import load_query, open_header
from originality.method.familiarity import SignalReader, learned_vectors
from originality.method.query_reading import read_query
from originality.method.search import (
    components,
    library_versions,
    needs_reading,
    saved_config,
    score,
    shapes_detector,
    write_result,
)
from originality.report.html import batch_report, score_report
from originality.runs import Processes, processes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
RESULTS = "results.jsonl"


@dataclass
class Query:
    name: str
    path: Path
    domain: str | None = None
    prompt: str | None = None  # the prompted signals' prompt, when the user gives one


def list_inputs(source: str | Path) -> list[Query]:
    """The images to score, every one checked (it exists, its header reads, its size is within
    limits) before any model loads: a bad row fails the run at once, not after the rows before it."""
    source = Path(source)
    if not source.exists():
        raise OriginalityError(f"not found: {source}")
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise OriginalityError(f"no images in {source}")
        queries = [(p.name, Query(p.name, p)) for p in files]
    elif source.suffix.lower() == ".csv":
        try:
            with source.open(newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise OriginalityError(f"cannot read {source}: {exc}") from exc
        if not rows or "image" not in rows[0]:
            raise OriginalityError(f"{source} needs an 'image' column")
        queries = []
        for n, r in enumerate(rows, start=2):  # row 1 is the header
            where = f"{source}, row {n}"
            if not (r.get("image") or "").strip():
                raise OriginalityError(f"{where}: empty 'image'")
            prompt = r.get("prompt") or r.get("caption") or None
            queries.append((where, Query(r["image"], source.parent / r["image"], r.get("domain") or None, prompt)))
    else:
        queries = [(source.name, Query(source.name, source))]
    for where, q in queries:
        if not q.path.is_file():
            raise OriginalityError(f"{where}: no image file {q.path}")
        open_header(q.path).close()
    return [q for _, q in queries]


def safe_name(name: str) -> str:
    """A folder name for an image name: hostile characters become '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
    return cleaned[:120]


def score_all(
    source: str | Path,
    pipeline,
    config,
    out: str | Path,
    *,
    domain: str = "shapes",
    progress: bool = True,
    distance=None,
    check=None,
    procs: Processes | None = None,
    model: str | None = None,
    prompt: str | None = None,
) -> list[dict[str, Any]]:
    """Score every input not yet in ``out/results.jsonl``; returns all records, finished ones included.

    Under ``accelerate launch`` each process scores its share (``procs``: detected when None).
    ``model`` names the pipeline's model in the recorded settings (``models.pipeline.model_identity``).
    ``prompt``: the prompted signals' prompt for every image without one of its own (a CSV's
    ``prompt`` or ``caption`` column).
    """
    procs = procs or processes()
    queries = list_inputs(source)
    out = Path(out)
    settings = run_settings(config, domain, model, distance, check)
    open_batch(out, settings, write=procs.first)
    procs.barrier()  # every process has checked the folder before any scores are written to it
    with runs.lock(out, procs.index):
        _score_all(
            queries,
            pipeline,
            config,
            out,
            domain=domain,
            progress=progress,
            distance=distance,
            check=check,
            procs=procs,
            model=model,
            prompt=prompt,
        )
        procs.barrier()
        if procs.first:
            runs.merge_parts(out, RESULTS, "image")
    procs.barrier()
    done = finished(out)
    return [done[q.name] for q in queries if q.name in done]


def folder_names(queries: list[Query], done: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A distinct folder per image, the same in every process (finished images keep theirs)."""
    names = {q: r["folder"] for q, r in done.items() if "folder" in r}
    used = set(names.values())
    for q in queries:
        if q.name in names:
            continue
        name = safe_name(q.name)
        while name in used:
            name += "_"
        used.add(name)
        names[q.name] = name
    return names


def run_settings(config, domain: str, model: str | None, distance=None, check=None) -> dict[str, Any]:
    """What a batch's scores depend on beside its images: resumed only where these match."""

    def name(part) -> str | None:  # a distance or check passed as an object: its kind
        return None if part is None else getattr(part, "__name__", type(part).__name__)

    settings = {"config": dataclasses.asdict(config), "domain": str(domain)}
    settings.update(model=model, distance=name(distance), check=name(check))
    if str(domain) == "shapes":  # the detector reads the queries, the samples and the signals' prompts
        settings["detector"] = detector_identity()
    return settings


def open_batch(out: str | Path, settings: dict[str, Any], write: bool = True) -> bool:
    """Create or resume the batch folder ``out`` (True: resumes), or refuse one of other settings.
    ``write=False`` only checks: the CLI does so before it loads a model."""
    return runs.open_run(
        out,
        settings,
        what="a batch",
        compare=_comparable,
        # a folder scored before settings were kept: its records cannot be checked, only resumed
        adopt=lambda out: bool(finished(out)),
        write=write,
    )


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """One flat dict, the saved config read with settings added since at their defaults."""
    return {**saved_config(settings["config"]), **{k: v for k, v in settings.items() if k != "config"}}


def finished(out: Path) -> dict[str, dict[str, Any]]:
    """Records already in ``results.jsonl`` and any part files, by image."""
    return runs.read_records(out, RESULTS, "image")


def _score_all(queries, pipeline, config, out: Path, *, domain, progress, distance, check, procs, model, prompt):
    done = finished(out)
    side = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    folders = folder_names(queries, done)
    todo = [q for q in queries if q.name not in done][procs.index :: procs.count]
    results_file = out / runs.part_file(RESULTS, procs)
    built: dict[str, tuple] = {}  # one DreamSim / detector / CLIP per domain, not per image
    reading_detector = None
    signals = None
    if config.signals != "none":
        signals = SignalReader(
            pipeline,
            model=model or str(pipeline.config.get("_name_or_path", "unrecorded")),
            samples=config.reference_samples,
            steps=config.resolve(load_domain(domain)).inference_steps,
            guidance=config.guidance_scale,
            detector_threshold=config.detector_threshold,
            cache_dir=out,
            progress=progress,
        )
    for q in tqdm(todo, desc="scoring", disable=not progress or len(todo) < 2, unit="image"):
        image = load_query(q.path, side)
        name = q.domain or domain
        the_domain = load_domain(name)
        resolved = config.resolve(the_domain)
        user_prompt = q.prompt or prompt
        reading = None
        # The reading matters where a verdict rests on it: a token count read by the detector, or
        # the prompted signals' prompt when the user gives none.
        counts = config.signals != "fast" and needs_reading(resolved, the_domain, distance)
        if the_domain.name == "shapes" and (counts or (signals is not None and not user_prompt)):
            if reading_detector is None:  # one per run, loaded when a query first needs it
                reading_detector = shapes_detector(dataclasses.replace(resolved, distance="elements"))
            reading = read_query(image, the_domain, detector=reading_detector)
        with runs.atomic_folder(out / folders[q.name]) as tmp:
            runs.save_image(image, tmp / "query.png")
            read = None
            skip = reading is not None and not reading.readable and not config.force
            if signals is not None and not skip:  # the optimisation-free part first: a fast run stops there
                read = signals(image, the_domain, prompt=user_prompt)
            if config.signals == "fast" or skip:
                result = signals_only(q.name, read, config, the_domain, reading)
                runs.write_json(tmp / "result.json", result)
            else:
                if (distance is None or (check is None and config.check)) and name not in built:
                    built[name] = components(config, the_domain, device=pipeline.device)
                use_distance, use_check = distance, check
                if name in built:
                    use_distance = distance or built[name][0]
                    use_check = check or built[name][1]
                scored = score(
                    image,
                    pipeline,
                    config,
                    the_domain,
                    distance=use_distance,
                    check=use_check,
                    out=tmp,
                    name=q.name,
                    progress=progress,
                    reading=reading,
                )
                if read is not None:  # the learned tokens' gap, prompt-free: m = 1 and the count
                    gaps = signals.learned(image, the_domain, learned_vectors(tmp, [1, scored.count or 1]))
                    read["learned_token_gap"] = gaps["gaps"]
                    read["seconds"]["learned_token_gap"] = gaps["seconds"]
                    scored.familiarity = read
                    write_result(scored, tmp)
                result = scored.to_dict()
            score_report(result, image, tmp)
        record = {
            "image": q.name,
            "folder": folders[q.name],
            "count": result["count"],
            "label": result["label"],
            "soft_tokens": result["soft_tokens"],
            "distances": {t["m"]: t["distance"] for t in result["per_m"]},
            # the check's verdict does not depend on the threshold: kept so that a threshold
            # sweep can be redone from this file alone
            "in_distribution": {t["m"]: (t["in_distribution"] or {}).get("passed") for t in result["per_m"]}
            if result["per_m"]
            else {},
            "process": procs.index,  # which of the launched processes scored it
        }
        if result.get("reading") is not None:
            record["reading"] = result["reading"]
        if result["label"] == "unreadable":
            record["reason"] = result["reading"]["reason"]
        if read is not None:
            record["signals"] = read["signals"]
            record["percentiles"] = read.get("percentiles", {})
            record["prompt_source"] = read["prompt_source"]
            record["learned_token_gap"] = read.get("learned_token_gap", {})
        runs.append_jsonl(results_file, record)


def signals_only(name: str, read: dict[str, Any] | None, config, domain, reading=None) -> dict[str, Any]:
    """result.json of an image with no token count: a ``--signals fast`` one (its familiarity), or
    one that could not be read (why)."""
    unreadable = reading is not None and not reading.readable and not config.force
    return {
        "image": name,
        "count": None,
        "label": "unreadable" if unreadable else "signals only",
        "reading": None if reading is None else reading.to_dict(),
        "soft_tokens": None,
        "per_m": [],
        "familiarity": read,
        "settings": {"config": dataclasses.asdict(config), "domain": dataclasses.asdict(domain)},
        "versions": library_versions(),
    }


def summary_table(records: list[dict[str, Any]]) -> str:
    """One line per image: the token count and distances, and the familiarity signals when read."""
    with_signals = any("percentiles" in r for r in records)
    head = f"{'image':32s} {'tokens':>12s} {'soft':>5s}"
    head += f"  {'guidance gap (pct)':>19s}" if with_signals else ""
    lines = [head + "  distances by m"]
    for r in records:
        soft = "" if r["soft_tokens"] is None else f"{r['soft_tokens']:5.2f}"
        line = f"{r['image'][:32]:32s} {r['label']:>12s} {soft:>5s}"
        if with_signals:
            gap, pct = r.get("signals", {}).get("guidance_gap"), r.get("percentiles", {}).get("guidance_gap")
            line += f"  {gap:9.3f} ({pct:5.1f}%)" if gap is not None and pct is not None else f"  {'':19s}"
        ds = " ".join(f"{m}:{d:.2f}" for m, d in r["distances"].items())
        lines.append(f"{line}  {ds}")
    return "\n".join(lines)


def write_batch_report(out: str | Path, records: list[dict[str, Any]]) -> Path:
    return batch_report(records, Path(out))
