"""Score many images: a folder, a CSV (``image`` column, optional ``domain``) or one file.

Each finished image gets its own folder (written under a temporary name, renamed when
complete) and one line in ``results.jsonl``, appended with a single write and an fsync. A
rerun skips the images already in ``results.jsonl``; a killed run loses nothing finished.
"""

from __future__ import annotations

import csv
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
LOCK = ".lock"


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


def finished(out: Path) -> dict[str, dict[str, Any]]:
    """Records already in ``results.jsonl`` (a torn last line, from a kill mid-write, is ignored)."""
    path = out / RESULTS
    records: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            records[record["image"]] = record
    return records


def append_record(out: Path, record: dict[str, Any]) -> None:
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(out / RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """One writer per output folder: a second run on the same folder is refused, not interleaved.

    The lock file holds the owner's pid; a lock left by a process that no longer exists (killed)
    is taken over.
    """
    lock = out / LOCK
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
) -> list[dict[str, Any]]:
    """Score every input not yet in ``out/results.jsonl``; returns all records, finished ones included."""
    queries = list_inputs(source)
    out = Path(out)
    # Hidden entries are this module's own (a lock, a half-scored image's temp folder).
    if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()) and not (out / RESULTS).is_file():
        raise OriginalityError(f"output folder {out} exists and holds no {RESULTS} to resume (choose another --out)")
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        return _score_all(
            queries, pipeline, config, out, domain=domain, progress=progress, distance=distance, check=check
        )


def _score_all(queries, pipeline, config, out: Path, *, domain, progress, distance, check) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    from originality.images import load_query
    from originality.method.search import score
    from originality.report.html import score_report

    done = finished(out)
    side = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    used = {safe_name(n) for n in done}
    todo = [q for q in queries if q.name not in done]
    for q in tqdm(todo, desc="scoring", disable=not progress or len(todo) < 2, unit="image"):
        image = load_query(q.path, side)
        folder_name = safe_name(q.name)
        while folder_name in used:
            folder_name += "_"
        used.add(folder_name)
        final = out / folder_name
        tmp = out / f".tmp-{folder_name}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            result = score(
                image,
                pipeline,
                config,
                q.domain or domain,
                distance=distance,
                check=check,
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
            "folder": folder_name,
            "count": result.count,
            "label": result.label,
            "soft_tokens": result.soft_tokens,
            "distances": {t.m: t.distance for t in result.per_m},
        }
        append_record(out, record)
        done[q.name] = record
    return [done[q.name] for q in queries if q.name in done]


def summary_table(records: list[dict[str, Any]]) -> str:
    lines = [f"{'image':32s} {'tokens':>6s} {'soft':>5s}  distances by m"]
    for r in records:
        ds = " ".join(f"{m}:{d:.2f}" for m, d in r["distances"].items())
        lines.append(f"{r['image'][:32]:32s} {r['label']:>6s} {r['soft_tokens']:5.2f}  {ds}")
    return "\n".join(lines)


def write_batch_report(out: str | Path, records: list[dict[str, Any]]) -> Path:
    from originality.report.html import batch_report

    return batch_report(records, Path(out))
