"""Datasets and models made once per settings, in an experiment's ``cache/`` folder.

Each artefact's folder is named by the hash of the settings that made it (``data-<key>``,
``model-<key>``): a killed run resumes where it stopped, a rerun with one setting changed rebuilds
only what depends on it, and a model asked for with more epochs continues the longest finished
shorter run of the same settings. The generalization experiment and the fixed-location ablation
share them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from originality import runs
from originality.models import train as train_model
from originality.models.card import finished_config, is_trained, same_run, training_summary
from originality.shapes.dataset import make_dataset


def key(*parts: Any) -> str:
    """A short, stable hash of JSON-able settings."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_key(spec, images: int, size: int, seed: int) -> str:
    return key(spec.to_dict(), images, size, seed)


def model_key(data: str, train) -> str:
    return key(data, train.fingerprint(), train.vae_epochs, train.unet_epochs)


def cached_dataset(spec, images: int, size: int, seed: int, cache: Path, progress: bool) -> Path:
    key = data_key(spec, images, size, seed)
    folder = cache / f"data-{key}"
    if (folder / ".complete").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)  # a half-written dataset from a killed run
    make_dataset(spec, images, folder, size=size, seed=seed, progress=progress)
    runs.write_text(folder / ".complete", key)
    return folder


def cached_model(
    spec, images: int, size: int, seed: int, train, cache: Path, progress: bool, command: str, first: bool = True
) -> Path:
    """A model trained on ``spec``'s dataset with ``train``; resumes a killed training run, and
    continues the longest finished shorter run of the same settings in ``cache`` (more epochs
    train on rather than start again). ``first``: the process that makes the data and seeds the
    continued run; the others of a data-parallel run wait for it."""
    key = data_key(spec, images, size, seed)
    folder = cache / f"model-{model_key(key, train)}"
    if is_trained(folder, train):  # a folder copied in from a shorter run is trained on, not reused
        return folder
    record = folder / "training" / "run.json"
    if not record.is_file() and (shorter := shorter_run(cache, key, train)) is not None:
        if first:
            _continue_from(shorter, folder, progress)
        else:
            runs.wait_for([record], 1.0)
    data = cached_dataset(spec, images, size, seed, cache, progress)
    return train_model(train, data, folder, progress=progress, command=command)


def shorter_run(cache: Path, data: str, train) -> Path | None:
    """The finished model in ``cache`` trained on dataset ``data`` with ``train``'s settings for
    fewer UNet epochs (the same VAE epochs) that ran the most steps, or None."""
    best, most = None, 0
    for folder in (record.parents[1] for record in cache.glob("model-*/training/run.json")):
        saved, summary = finished_config(folder), training_summary(folder)
        if (
            saved is not None
            and same_run(saved, train, epochs=False)
            and saved.unet_epochs < train.unet_epochs
            and Path(summary["dataset"]["path"]).name == f"data-{data}"
            and (folder / "training" / "checkpoint").is_dir()
            and summary["steps"]["unet"] > most
        ):
            best, most = folder, summary["steps"]["unet"]
    return best


def _continue_from(shorter: Path, folder: Path, progress: bool) -> None:
    """Seed ``folder`` with ``shorter``'s checkpoint, latents and run record; the record goes in
    last, so that a process waiting for it finds the rest in place."""
    source, work = shorter / "training", folder / "training"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "checkpoint", work / "checkpoint", dirs_exist_ok=True)
    if (source / "latents.safetensors").is_file():
        shutil.copy2(source / "latents.safetensors", work / "latents.safetensors")
    with runs.atomic_path(work / "run.json") as tmp:
        shutil.copy2(source / "run.json", tmp)
    if progress:
        print(f"continuing {shorter.name} into {folder.name} (more epochs of the same run)", flush=True)
