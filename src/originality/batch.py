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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from originality.errors import OriginalityError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
RESULTS = "results.jsonl"


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
    from tqdm.auto import tqdm

    from originality.images import load_query
    from originality.method.search import score
    from originality.report.html import score_report

    queries = list_inputs(source)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / RESULTS).is_file():
        raise OriginalityError(f"output folder {out} exists and holds no {RESULTS} to resume (choose another --out)")
    out.mkdir(parents=True, exist_ok=True)
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
