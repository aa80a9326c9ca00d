"""Score many images: a folder, a CSV (``image`` column, optional ``domain``, ``prompt`` or
``caption``) or one file, with one :class:`~originality.scorer.Scorer` for the whole run.

**One preparation step** (:func:`prepare`) lists and checks every input, resolves the config,
computes the run's settings once and checks the folder, all before any model loads. Each
finished image gets its own folder (written under a temporary name, renamed when complete) and
one line in ``results.jsonl``, appended with a single write and an fsync. A rerun skips the
images already finished; a killed run loses nothing finished. The run's settings (scoring
config, domain, model, detector, the user's prompt) are kept in ``settings.json``, and a rerun
with other settings into the same folder is refused rather than mixed in.

**A batch survives its worst image.** An input that fails its check (a file that is not an
image, a truncated one) or fails while scoring gets a record with ``status: "error"`` and the
reason; the others are scored; a rerun retries the errors. ``unreadable`` is a verdict, not a
failure. Rows of a CSV are keyed by row: one image listed twice is two records in two folders.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from originality import runs
from originality.detection.detector import detector_identity
from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.images import fitting_note, load_query, open_header
from originality.method.search import saved_config
from originality.method.signals import headline
from originality.report.html import batch_report
from originality.runs import Processes, processes
from originality.scorer import RESULT_SCHEMA, Scorer, check_prompt, save_result

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
RESULTS = "results.jsonl"
FAILED_EXIT = 3  # some inputs failed (a usage error is 2)


@dataclass
class Query:
    key: str  # what its record is keyed by: the file name, or "row N: image" in a CSV
    name: str  # the image as the user named it
    path: Path
    domain: str | None = None
    prompt: str | None = None  # the prompted signals' prompt, when the user gives one
    row: int | None = None  # its row in a CSV (the header is row 1)
    problem: str | None = None  # why its check failed: it gets an error record, not a score
    size: tuple[int, int] | None = None  # (width, height) as its header says


@dataclass
class Batch:
    """What :func:`prepare` found: the inputs, the run's settings, the folder."""

    queries: list[Query]
    settings: dict[str, Any]
    out: Path
    domain: str = "shapes"
    prompt: str | None = None
    problems: list[Query] = field(default_factory=list)


def display(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 shown as \\xNN escapes, never a crash later."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def list_inputs(source: str | Path) -> list[Query]:
    """The images to score, every one checked (it exists, its header reads, its size is within
    limits) before any model loads. A problem with one input is kept on it (``problem``) for an
    error record; only a source that cannot be read at all, or a single image that fails, raises."""
    source = Path(source)
    if not source.exists():
        raise OriginalityError(f"not found: {display(str(source))}")
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise OriginalityError(f"no images in {display(str(source))}")
        queries = [Query(display(p.name), display(p.name), p) for p in files]
    elif source.suffix.lower() == ".csv":
        queries = _csv_queries(source)
    else:
        queries = [Query(display(source.name), display(source.name), source)]
    for q in queries:
        where = q.key if q.row is None else f"row {q.row}"
        if q.problem is None:
            q.problem, q.size = _check_file(q.path, where)
    if len(queries) == 1 and queries[0].problem and not source.is_dir() and source.suffix.lower() != ".csv":
        raise OriginalityError(queries[0].problem)
    return queries


def _csv_queries(source: Path) -> list[Query]:
    try:
        # utf-8-sig: a CSV saved by Excel as "CSV UTF-8" starts with a byte-order mark
        with source.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise OriginalityError(f"cannot read {display(str(source))}: {exc}") from exc
    if "image" not in header:
        raise OriginalityError(f"{display(str(source))} needs an 'image' column (its header: {', '.join(header)})")
    if not rows:
        raise OriginalityError(f"{display(str(source))} has a header and no rows")
    queries = []
    for n, r in enumerate(rows, start=2):  # row 1 is the header
        image = (r.get("image") or "").strip()
        prompt = r.get("prompt") or r.get("caption") or None
        query = Query(f"row {n}: {image}", image, source.parent / image, r.get("domain") or None, prompt, row=n)
        if not image:
            query.problem = f"row {n}: empty 'image'"
        else:
            try:
                check_prompt(prompt, f"row {n}: its prompt")
            except OriginalityError as exc:
                query.problem = str(exc)
        queries.append(query)
    return queries


def _check_file(path: Path, where: str) -> tuple[str | None, tuple[int, int] | None]:
    """(why the file cannot be scored, or None; its size)."""
    if not path.is_file():
        return f"{where}: no image file {display(str(path))}", None
    try:
        with open_header(path) as opened:
            return None, opened.size
    except OriginalityError as exc:
        return f"{where}: {exc}", None


def safe_name(name: str) -> str:
    """A folder name for an image name: hostile characters become '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
    return cleaned[:120]


def prepare(
    source: str | Path,
    config,
    out: str | Path,
    *,
    domain: str = "shapes",
    model: str | None = None,
    prompt: str | None = None,
    distance=None,
    check=None,
    write: bool = False,
    background_model: str | None = None,
) -> Batch:
    """The one preparation step of a batch, before any model loads: list and check the inputs,
    resolve the config for every domain named, compute the settings, check (``write``: create)
    the run folder. Raises one line for what makes the whole run impossible."""
    prompt = check_prompt(prompt)
    queries = list_inputs(source)
    for name in dict.fromkeys([domain, *(q.domain for q in queries if q.domain)]):
        the_domain = load_domain(name)
        resolved = config.resolve(the_domain)
        if resolved.distance == "dreamsim":
            from originality.method.dreamsim import preflight  # real images only: its imports are heavy

            preflight(resolved.dreamsim_cache, resolved.dreamsim_type)
    settings = run_settings(config, domain, model, distance, check, prompt)
    if background_model is not None:  # recorded only when given: folders made before it still resume
        settings["background_model"] = background_model
    out = Path(out)
    open_batch(out, settings, write=write)
    _check_prompts_unchanged(out, queries)
    return Batch(queries, settings, out, domain, prompt, [q for q in queries if q.problem])


def _check_prompts_unchanged(out: Path, queries: list[Query]) -> None:
    done = finished(out)
    for q in queries:
        record = done.get(q.key)
        if record is not None and record.get("status", "ok") == "ok" and record.get("row_prompt") != q.prompt:
            raise OriginalityError(
                f"{out}: {q.key} was scored with another prompt from its CSV row; choose another --out"
            )


def score_all(
    source: str | Path | Batch,
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
    background=None,
    background_model: str | None = None,
) -> list[dict[str, Any]]:
    """Score every input not yet finished in ``out``; returns all records, finished ones included,
    in the inputs' order (an input that failed has ``status: "error"`` and ``reason``).

    ``source`` may be a :class:`Batch` that :func:`prepare` made (the CLI prepares before loading
    the model). Under ``accelerate launch`` each process scores its share (``procs``: detected when
    None). ``model`` names the pipeline's model in the recorded settings
    (``models.pipeline.model_identity``). ``prompt``: the prompted signals' prompt for every image
    without one of its own (a CSV's ``prompt`` or ``caption`` column). ``background``: a second
    pipeline on the same VAE, for the likelihood ratio (``background_model`` names it in the settings).
    """
    procs = procs or processes()
    batch = source if isinstance(source, Batch) else None
    if batch is None:
        batch = prepare(
            source, config, out, domain=domain, model=model, prompt=prompt, distance=distance, check=check,
            background_model=background_model,
        )  # fmt: skip
    out = batch.out
    open_batch(out, batch.settings, write=procs.first)
    procs.barrier()  # every process has checked the folder before any scores are written to it
    scorer = Scorer(
        pipeline, config, model=model, cache_dir=out, distance=distance, check=check, background=background,
        progress=progress,
    )  # fmt: skip
    with runs.lock(out, procs.index):
        _score_all(batch, scorer, procs, progress)
        procs.barrier()
        if procs.first:
            runs.merge_parts(out, RESULTS, record_key)
    procs.barrier()
    done = finished(out)
    return [done[q.key] for q in batch.queries if q.key in done]


def record_key(record: dict[str, Any]) -> str:
    return record.get("key", record["image"])  # records written before keys were kept: the image


def folder_names(queries: list[Query], done: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A distinct folder per input, the same in every process (finished inputs keep theirs)."""
    names = {k: r["folder"] for k, r in done.items() if r.get("folder")}
    used = set(names.values())
    for q in queries:
        if q.key in names:
            continue
        name = safe_name(q.name)
        while name in used:
            name += "_"
        used.add(name)
        names[q.key] = name
    return names


def run_settings(config, domain: str, model: str | None, distance=None, check=None, prompt=None) -> dict[str, Any]:
    """What a batch's scores depend on beside its images: resumed only where these match."""

    def name(part) -> str | None:  # a distance or check passed as an object: its kind
        return None if part is None else getattr(part, "__name__", type(part).__name__)

    settings = {"config": dataclasses.asdict(config), "domain": str(domain), "schema": RESULT_SCHEMA}
    settings.update(model=model, distance=name(distance), check=name(check), prompt=prompt)
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
    """One flat dict, the saved config read with settings added since at their defaults. The
    schema and the prompt are compared as they are: a folder from before they were kept differs."""
    flat = {**saved_config(settings["config"]), **{k: v for k, v in settings.items() if k != "config"}}
    flat.setdefault("schema", 1)
    flat.setdefault("prompt", "(not recorded)")
    return flat


def finished(out: Path) -> dict[str, dict[str, Any]]:
    """Records already in ``results.jsonl`` and any part files, by key; a later record replaces an
    error (a rerun retries errors)."""
    return runs.read_records(out, RESULTS, record_key)


def _score_all(batch: Batch, scorer: Scorer, procs: Processes, progress: bool) -> None:
    out = batch.out
    done = finished(out)
    folders = folder_names(batch.queries, done)
    retry = [q for q in batch.queries if q.key not in done or done[q.key].get("status") == "error"]
    todo = retry[procs.index :: procs.count]
    results_file = out / runs.part_file(RESULTS, procs)
    for q in tqdm(todo, desc="scoring", disable=not progress or len(todo) < 2, unit="image"):
        base = {
            "schema": RESULT_SCHEMA,
            "key": q.key,
            "image": q.name,
            "row": q.row,
            "prompt": q.prompt or batch.prompt,
            "row_prompt": q.prompt,
            "process": procs.index,  # which of the launched processes scored it
        }
        if q.problem is not None:
            runs.append_jsonl(results_file, error_record(base, q.problem))
            continue
        try:
            record = _score_one(q, batch, scorer, out / folders[q.key], base)
        except Exception as exc:  # one image never stops the batch; a kill (KeyboardInterrupt) still does
            record = error_record(base, _reason(exc))
        runs.append_jsonl(results_file, record)


def _score_one(q: Query, batch: Batch, scorer: Scorer, folder: Path, base: dict[str, Any]) -> dict[str, Any]:
    image = load_query(q.path, scorer.side)
    result = scorer.score(image, name=q.name, domain=q.domain or batch.domain, prompt=q.prompt or batch.prompt)
    note = fitting_note(q.size, scorer.side) if q.size else None
    if note and result.unreadable:  # say that the model saw a crop of the file
        result.unreadable += f" ({note})"
    with runs.atomic_folder(folder) as tmp:
        data = save_result(result, image, tmp)
    record = {
        **base,
        "status": "ok",
        "folder": folder.name,
        "count": data["count"],
        "label": data["label"],
        "soft_tokens": data["soft_tokens"],
        "distances": {t["m"]: t["distance"] for t in data["per_m"]},
        # the check's verdict does not depend on the threshold: kept so that a threshold
        # sweep can be redone from this file alone
        "in_distribution": {t["m"]: (t["in_distribution"] or {}).get("passed") for t in data["per_m"]},
    }
    if data.get("reading") is not None:
        record["reading"] = data["reading"]
    if data["label"] == "unreadable":
        record["reason"] = data["unreadable"]
    read = data.get("familiarity")
    if read is not None:
        record["signals"] = read["signals"]
        record["percentiles"] = read.get("percentiles", {})
        record["prompt_source"] = read["prompt_source"]
        record["learned_token_gap"] = read.get("learned_token_gap", {})
        if read.get("calibrated"):
            record["calibrated"] = read["calibrated"]
    return record


def error_record(base: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        **base,
        "status": "error",
        "reason": reason,
        "folder": None,
        "count": None,
        "label": "error",
        "soft_tokens": None,
        "distances": {},
        "in_distribution": {},
    }


def _reason(exc: Exception) -> str:
    if isinstance(exc, OriginalityError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"


def failures(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status") == "error"]


def summary_table(records: list[dict[str, Any]]) -> str:
    """One line per image: the token count and distances, and the familiarity signals when read;
    a failed input's reason."""
    with_signals = any("percentiles" in r for r in records)
    calibrated = any(r.get("calibrated") for r in records)
    lead = headline()
    head = f"{'image':32s} {'tokens':>12s} {'soft':>5s}"
    head += f"  {(lead.replace('_', ' ') + ' (pct)')[:19]:>19s}" if with_signals else ""
    lines = [head + "  distances by m"]
    for r in records:
        name = r["image"] if r.get("row") is None else f"{r['image']} (row {r['row']})"
        if r.get("status") == "error":
            lines.append(f"{name[:32]:32s} {'error':>12s}  {r['reason']}")
            continue
        soft = "" if r["soft_tokens"] is None else f"{r['soft_tokens']:5.2f}"
        line = f"{name[:32]:32s} {r['label']:>12s} {soft:>5s}"
        if with_signals:
            gap, pct = r.get("signals", {}).get(lead), r.get("percentiles", {}).get(lead)
            line += f"  {gap:9.3f} ({pct:5.1f}%)" if gap is not None and pct is not None else f"  {'':19s}"
        ds = " ".join(f"{m}:{d:.2f}" for m, d in r["distances"].items())
        if calibrated:
            ds += f"  [{r['calibrated']['statement']}]" if r.get("calibrated") else ""
        lines.append(f"{line}  {ds}")
    return "\n".join(lines)


def write_batch_report(out: str | Path, records: list[dict[str, Any]]) -> Path:
    return batch_report(records, Path(out))
