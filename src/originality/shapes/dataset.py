"""Write a spec's images as sharded Parquet files that Hugging Face ``datasets`` loads.

Layout of a dataset folder::

    data/train-00000-of-00004.parquet   # index, image (PNG bytes), caption, component, elements
    spec.json                           # the spec, n, size, seed and package version
    README.md                           # a dataset card

``datasets.load_dataset(folder, split="train")`` reads it in one call: the Parquet
schema carries the ``datasets`` features, so ``image`` decodes to a PIL image.

Image ``i`` is drawn from ``numpy.random.default_rng([seed, i])``: the bytes depend
only on (spec, size, seed, i), not on the number of workers or shards. Workers render
chunks in parallel; the parent writes them in index order into a temporary folder
that is moved into place only when complete.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value
from tqdm.auto import tqdm

from originality import __version__
from originality.errors import OriginalityError
from originality.shapes.captions import caption
from originality.shapes.rendering import jittered_colour, jittered_side, png_bytes, render, sample_layout
from originality.shapes.specs import DatasetSpec

FORMAT_VERSION = 1
INFO_FILE = "spec.json"
CHUNK = 500  # images per worker task: small enough for a smooth progress bar

FEATURES = Features(
    {
        "index": Value("int64"),
        "image": Image(),
        "caption": Value("string"),
        "component": Value("string"),
        "elements": List(
            {
                "shape": Value("string"),
                "colour": Value("string"),
                "size": Value("string"),
                "texture": Value("string"),
                "bbox": List(Value("float32"), length=4),
            }
        ),
    }
)
SCHEMA = FEATURES.arrow_schema


def render_example(
    spec: DatasetSpec,
    index: int,
    seed: int,
    size: int,
    colour_jitter: bool = False,
    size_jitter: bool = False,
    plan: np.ndarray | None = None,
) -> dict[str, Any]:
    """Image ``index`` of the dataset (spec, seed, size), as a row of the Parquet table;
    ``colour_jitter``: each element's colour drawn inside its class instead of the palette's;
    ``size_jitter``: its size drawn inside its class; ``plan``: a planned spec's
    :meth:`~DatasetSpec.plan` for the dataset's n and seed."""
    rng = np.random.default_rng([seed, index])
    if spec.planned:
        if plan is None:
            raise OriginalityError(f"spec {spec.name!r} plans its images: pass its plan for the dataset's n")
        component, elements, rng = spec.planned_image(int(plan[index]), index, seed, rng)
        centres = None
    else:
        component, elements, centres = spec.sample(rng)
    sides = [jittered_side(e, size, rng) for e in elements] if size_jitter else None
    placed = sample_layout(elements, size, rng, allow_overlap=spec.allow_overlap, fixed_centres=centres, sides=sides)
    colours = [jittered_colour(p.element.colour, rng) for p in placed] if colour_jitter else None
    image = render(placed, size, colours=colours)
    return {
        "index": index,
        "image": {"bytes": png_bytes(image), "path": None},
        "caption": caption(elements),
        "component": component,
        "elements": [{**p.element.as_dict(), "bbox": [round(v, 3) for v in p.bbox]} for p in placed],
    }


def _render_chunk(args: tuple[dict[str, Any], int, int, int, int, int, bool, bool]) -> pa.RecordBatch:
    spec_dict, n, start, stop, seed, size, colour_jitter, size_jitter = args
    spec = DatasetSpec.from_dict(spec_dict)
    plan = spec.plan(n, seed) if spec.planned else None
    rows = [render_example(spec, i, seed, size, colour_jitter, size_jitter, plan) for i in range(start, stop)]
    return pa.RecordBatch.from_pylist(rows, schema=SCHEMA)


def _chunks(n: int, shard_size: int) -> list[tuple[int, int]]:
    out = []
    for shard_start in range(0, n, shard_size):
        shard_stop = min(n, shard_start + shard_size)
        out += [(s, min(shard_stop, s + CHUNK)) for s in range(shard_start, shard_stop, CHUNK)]
    return out


# The renderer's tested range; beyond it one image alone runs to gigabytes.
MIN_SIZE, MAX_SIZE = 8, 1024
MAX_IMAGES = 10_000_000


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty folder (unless ``overwrite``) or an unwritable parent, and never
    take a folder whose replacement would delete the current folder, a parent of it, the root or
    the home folder."""
    target = out.resolve()
    here = Path.cwd().resolve()
    if target == here or target in here.parents or target == Path(target.anchor) or target == Path.home().resolve():
        raise OriginalityError(
            f"--out {out} is the current folder, a parent of it, the root or home: choose a new folder"
        )
    if out.exists():
        if not out.is_dir():
            raise OriginalityError(f"output {out} exists and is not a folder")
        if any(out.iterdir()) and not overwrite:
            raise OriginalityError(f"output folder {out} exists and is not empty (use --overwrite)")
    parent = out.parent if str(out.parent) else Path(".")
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OriginalityError(f"cannot write to {existing}: permission denied")


def publish(tmp: Path, out: Path) -> None:
    """Move a completed temporary folder to ``out``, replacing what was there."""
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def make_dataset(
    spec: DatasetSpec,
    n: int,
    out: str | Path,
    *,
    size: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    workers: int | None = None,
    shard_size: int = 10_000,
    progress: bool = True,
    colour_jitter: bool = False,
    size_jitter: bool = False,
) -> Path:
    """Render ``n`` images of ``spec`` into the dataset folder ``out``; returns ``out``."""
    if n < 1:
        raise OriginalityError(f"--n must be >= 1, got {n}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise OriginalityError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} px, got {size}")
    if n > MAX_IMAGES:
        raise OriginalityError(f"--n must be at most {MAX_IMAGES:,}, got {n:,}")
    if shard_size < 1:
        raise OriginalityError(f"shard size must be >= 1, got {shard_size}")
    out = Path(out)
    check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        (tmp / "data").mkdir(parents=True)
        _write_shards(spec, n, tmp / "data", size, seed, workers, shard_size, progress, colour_jitter, size_jitter)
        info = {
            "format": FORMAT_VERSION,
            "spec": spec.to_dict(),
            "n": n,
            "size": size,
            "seed": seed,
            "colour_jitter": colour_jitter,
            "size_jitter": size_jitter,
            "shard_size": shard_size,
            "originality_version": __version__,
        }
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "README.md").write_text(_card(info))
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_shards(
    spec: DatasetSpec,
    n: int,
    data_dir: Path,
    size: int,
    seed: int,
    workers: int | None,
    shard_size: int,
    progress: bool,
    colour_jitter: bool = False,
    size_jitter: bool = False,
) -> None:
    n_shards = (n + shard_size - 1) // shard_size
    if spec.planned:
        spec.plan_counts(n)  # one line now, not a traceback from every worker, when n is too small
    tasks = [(spec.to_dict(), n, a, b, seed, size, colour_jitter, size_jitter) for a, b in _chunks(n, shard_size)]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=n, desc=f"rendering {spec.name}", unit="img", disable=not progress)
    writer: pq.ParquetWriter | None = None
    shard = -1
    pool = mp.get_context("fork").Pool(workers) if workers > 1 and len(tasks) > 1 else None
    try:
        batches: Iterator[pa.RecordBatch] = pool.imap(_render_chunk, tasks) if pool else map(_render_chunk, tasks)
        for (_, _, start, *_), batch in zip(tasks, batches, strict=True):
            if start // shard_size != shard:
                if writer is not None:
                    writer.close()
                shard = start // shard_size
                path = data_dir / f"train-{shard:05d}-of-{n_shards:05d}.parquet"
                writer = pq.ParquetWriter(path, SCHEMA)
            writer.write_batch(batch)
            bar.update(batch.num_rows)
    finally:
        if writer is not None:
            writer.close()
        if pool is not None:
            pool.terminate()
        bar.close()


def _card(info: dict[str, Any]) -> str:
    spec = info["spec"]
    jittered = [k for k in ("colour", "size") if info.get(f"{k}_jitter")]
    return (
        f"# Shapes dataset: {spec['name']}\n\n"
        f"{spec.get('description', '')}\n\n"
        f"- images: {info['n']} at {info['size']} px, seed {info['seed']}\n"
        + (f"- {' and '.join(jittered)} drawn inside each class, not the palette's\n" if jittered else "")
        + f"- made by originality {info['originality_version']}; the spec is in `{INFO_FILE}`\n\n"
        "Load with `datasets.load_dataset(folder, split='train')`.\n"
    )


# -- reading -------------------------------------------------------------------------------------
def read_info(path: str | Path) -> dict[str, Any]:
    """The ``spec.json`` of a dataset folder, checked."""
    path = Path(path)
    info_path = path / INFO_FILE
    if not path.is_dir():
        raise OriginalityError(f"dataset folder not found: {path}")
    if not info_path.is_file():
        raise OriginalityError(f"{path} is not a shapes dataset (no {INFO_FILE})")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as exc:
        raise OriginalityError(f"corrupt {info_path}: {exc}") from exc
    if info.get("format") != FORMAT_VERSION:
        raise OriginalityError(f"{path}: dataset format {info.get('format')!r}, this version reads {FORMAT_VERSION}")
    return info


def dataset_identity(path: str | Path) -> dict[str, Any]:
    """What a run records of a training dataset: its spec's name, its size and its seed."""
    info = read_info(path)
    return {"spec": info["spec"]["name"], "n": info["n"], "seed": info["seed"]}


def shard_paths(path: str | Path) -> list[Path]:
    shards = sorted((Path(path) / "data").glob("train-*.parquet"))
    if not shards:
        raise OriginalityError(f"{path}: no data shards")
    return shards


def read_table(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """The dataset's rows as one Arrow table (``columns`` to skip the image bytes)."""
    read_info(path)
    try:
        return pa.concat_tables(pq.read_table(p, columns=columns) for p in shard_paths(path))
    except (OSError, pa.ArrowException) as exc:
        raise OriginalityError(f"corrupt dataset {path}: {str(exc).splitlines()[0]}") from exc


def load(path: str | Path):
    """The dataset as a Hugging Face ``datasets.Dataset``."""
    read_info(path)
    return datasets.load_dataset(str(path), split="train")
