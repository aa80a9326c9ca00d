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
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from originality.errors import OriginalityError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
RESULTS = "results.jsonl"
SETTINGS = "settings.json"
PARTS = "results.rank*.jsonl"
LOCK = ".lock"


@dataclass
class Processes:
    """This process's place among those ``accelerate launch`` or ``torchrun`` started (one process: 0 of 1)."""

    index: int = 0
    count: int = 1
    state: Any = None

    @property
    def device(self):
        return self.state.device if self.state is not None else None

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def processes() -> Processes:
    """This process's place under ``accelerate launch`` (GPUs) or ``torchrun`` (GPUs or CPUs)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    import torch
    from accelerate import PartialState

    # Without a GPU, accelerate joins torchrun's process group only when told it runs on CPUs;
    # otherwise every process would take itself for the only one and score every image.
    state = PartialState(cpu=not torch.cuda.is_available())
    return Processes(state.process_index, state.num_processes, state)


@dataclass
class Query:
    name: str
    path: Path
    domain: str | None = None


def list_inputs(source: str | Path) -> list[Query]:
    source = Path(source)
    if not source.exists():
        raise OriginalityError(f"not found: {source}")
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise OriginalityError(f"no images in {source}")
        return [Query(p.name, p) for p in files]
    if source.suffix.lower() == ".csv":
        try:
            with source.open(newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise OriginalityError(f"cannot read {source}: {exc}") from exc
        if not rows or "image" not in rows[0]:
            raise OriginalityError(f"{source} needs an 'image' column")
        return [Query(r["image"], (source.parent / r["image"]), r.get("domain") or None) for r in rows]
    return [Query(source.name, source)]


def safe_name(name: str) -> str:
    """A folder name for an image name: hostile characters become '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
    return cleaned[:120]


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """The records of one append-only JSON-lines file by image, the first of each kept (a torn
    last line, from a kill mid-write, is ignored); empty when the file is absent."""
    records: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            records.setdefault(record["image"], record)
    return records


def finished(out: Path) -> dict[str, dict[str, Any]]:
    """Records already in ``results.jsonl`` and any part files."""
    records: dict[str, dict[str, Any]] = {}
    for path in [out / RESULTS, *sorted(out.glob(PARTS))]:
        for image, record in read_records(path).items():
            records.setdefault(image, record)
    return records


def merge_parts(out: Path) -> None:
    """Fold the per-process part files into ``results.jsonl`` (each image once), then drop them."""
    parts = sorted(out.glob(PARTS))
    if not parts:
        return
    known = set()
    if (out / RESULTS).is_file():
        known = {r["image"] for r in _records(out / RESULTS)}
    for part in parts:
        for record in _records(part):
            if record["image"] not in known:
                append_record(out, record)
                known.add(record["image"])
    for part in parts:
        part.unlink()


def _records(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def append_record(out: Path, record: dict[str, Any], file: str = RESULTS) -> None:
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(out / file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def folder_lock(out: Path, index: int = 0) -> Iterator[None]:
    """One writer per output folder: a second run on the same folder is refused, not interleaved.

    The lock file holds the owner's pid; a lock left by a process that no longer exists (killed)
    is taken over. Process k > 0 of a launched group takes ``.lock.k`` (process 0, or a lone
    run, takes ``.lock``).
    """
    lock = out / (LOCK if index == 0 else f"{LOCK}.{index}")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner and _alive(owner):
                raise OriginalityError(
                    f"another run (pid {owner}) is writing to {out}; wait for it or stop it"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its owner is gone
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        break
    else:
        raise OriginalityError(f"cannot lock {out}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_owner(lock: Path) -> int:
    try:
        return int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
) -> list[dict[str, Any]]:
    """Score every input not yet in ``out/results.jsonl``; returns all records, finished ones included.

    Under ``accelerate launch`` each process scores its share (``procs``: detected when None).
    ``model`` names the pipeline's model in the recorded settings (``models.pipeline.model_identity``).
    """
    procs = procs or processes()
    queries = list_inputs(source)
    out = Path(out)
    # Hidden entries are this module's own (a lock, a half-scored image's temp folder).
    resumable = (out / RESULTS).is_file() or any(out.glob(PARTS))
    if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()) and not resumable:
        raise OriginalityError(f"output folder {out} exists and holds no {RESULTS} to resume (choose another --out)")
    settings = run_settings(config, domain, model, distance, check)
    record = check_settings(out, settings)
    procs.barrier()  # every process has checked the folder before any writes to it
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, procs.index):
        if record and procs.index == 0:
            tmp = out / f".{SETTINGS}.tmp"
            tmp.write_text(json.dumps(settings, indent=1) + "\n")
            tmp.replace(out / SETTINGS)
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
        )
        procs.barrier()
        if procs.index == 0:
            merge_parts(out)
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

    settings = json.loads(json.dumps({"config": dataclasses.asdict(config), "domain": str(domain)}))
    settings.update(model=model, distance=name(distance), check=name(check))
    return settings


def check_settings(out: Path, settings: dict[str, Any]) -> bool:
    """Refuse to resume ``out`` with other settings. True when ``out`` has none recorded yet (a new
    folder, or one scored before settings were kept, whose records cannot be checked)."""
    from originality.method.search import saved_config

    path = out / SETTINGS
    if not path.is_file():
        return True
    try:
        saved = json.loads(path.read_text())
        saved["config"] = saved_config(saved["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise OriginalityError(f"{path} is damaged ({exc}); choose another --out") from exc
    if saved != settings:
        changed = [k for k in settings["config"] if saved["config"].get(k) != settings["config"][k]]
        changed += [k for k in settings if k != "config" and saved.get(k) != settings[k]]
        raise OriginalityError(
            f"{out} holds scores made with other settings ({', '.join(changed)}); choose another --out"
        )
    return False


def _score_all(queries, pipeline, config, out: Path, *, domain, progress, distance, check, procs) -> None:
    from tqdm.auto import tqdm

    from originality.domains import load_domain
    from originality.images import load_query
    from originality.method.search import components, score
    from originality.report.html import score_report

    done = finished(out)
    side = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    folders = folder_names(queries, done)
    todo = [q for q in queries if q.name not in done][procs.index :: procs.count]
    results_file = RESULTS if procs.count == 1 else f"results.rank{procs.index}.jsonl"
    built: dict[str, tuple] = {}  # one DreamSim / detector / CLIP per domain, not per image
    for q in tqdm(todo, desc="scoring", disable=not progress or len(todo) < 2, unit="image"):
        image = load_query(q.path, side)
        name = q.domain or domain
        if (distance is None or (check is None and config.check)) and name not in built:
            built[name] = components(config, load_domain(name), device=pipeline.device)
        use_distance, use_check = distance, check
        if name in built:
            use_distance = distance or built[name][0]
            use_check = check or built[name][1]
        final = out / folders[q.name]
        tmp = out / f".tmp-{folders[q.name]}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            result = score(
                image,
                pipeline,
                config,
                name,
                distance=use_distance,
                check=use_check,
                out=tmp,
                name=q.name,
                progress=progress,
            )
            image.save(tmp / "query.png")
            score_report(result.to_dict(), image, tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        record = {
            "image": q.name,
            "folder": folders[q.name],
            "count": result.count,
            "label": result.label,
            "soft_tokens": result.soft_tokens,
            "distances": {t.m: t.distance for t in result.per_m},
            # the check's verdict does not depend on the threshold: kept so that a threshold
            # sweep can be redone from this file alone
            "in_distribution": {t.m: t.in_distribution and t.in_distribution.passed for t in result.per_m},
            "process": procs.index,  # which of the launched processes scored it
        }
        append_record(out, record, results_file)


def summary_table(records: list[dict[str, Any]]) -> str:
    lines = [f"{'image':32s} {'tokens':>6s} {'soft':>5s}  distances by m"]
    for r in records:
        ds = " ".join(f"{m}:{d:.2f}" for m, d in r["distances"].items())
        lines.append(f"{r['image'][:32]:32s} {r['label']:>6s} {r['soft_tokens']:5.2f}  {ds}")
    return "\n".join(lines)


def write_batch_report(out: str | Path, records: list[dict[str, Any]]) -> Path:
    from originality.report.html import batch_report

    return batch_report(records, Path(out))
