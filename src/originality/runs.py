"""Run folders: where every command writes, and how it resumes.

A run folder keeps the settings it was made with in a marker file (``settings.json`` unless a
command names another). Opening it again with the same settings resumes; with other settings it
is refused in one line that names what differs (or, for a folder that is the command's own cache,
started again). A folder that holds something else is never written into.

Every file is written whole or not at all: into a hidden temporary name beside it, then renamed
over the target (:func:`atomic_path`, :func:`atomic_folder`). Records go to append-only JSON-lines
files, one write and an fsync each; a torn last line, from a kill mid-write, is cut before the
next append (:func:`append_jsonl`). One writer per folder (:func:`lock`).

Several processes (``accelerate launch`` or ``torchrun``): each appends to its own part file
(:func:`part_file`) and the first merges them (:func:`merge_parts`); :func:`wait_for` polls for
files other processes write, with no collective call to time out.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState

from originality.errors import OriginalityError

SETTINGS = "settings.json"
LOCK = ".lock"


# -- atomic writes ---------------------------------------------------------------------------------
@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed over it when the block ends, removed if it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A fresh temporary folder beside ``path``; it replaces ``path`` when the block ends."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    shutil.rmtree(tmp, ignore_errors=True)  # a stale one, left by a killed run
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def finite(data: Any) -> Any:
    """``data`` with every NaN or infinity replaced by None: JSON has no such numbers."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


def dumps(data: Any, indent: int | None = None) -> str:
    """Strict JSON (what any reader parses): non-finite numbers written as null."""
    return json.dumps(finite(data), indent=indent, allow_nan=False)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, dumps(data, indent=1) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_image(image, path: str | Path) -> Path:
    """A PIL image, as PNG."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """A matplotlib figure, as PNG."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(path)


# -- JSON-lines records ----------------------------------------------------------------------------
def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (a torn last line skipped); empty when it is absent."""
    path = Path(path)
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def repair_jsonl(path: str | Path) -> bool:
    """Cut a last line with no newline (a write a kill tore), so the next record starts on a line
    of its own rather than being glued onto it. True when something was cut."""
    path = Path(path)
    if not path.is_file():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as f:
        f.truncate(keep)
    print(f"{path}: dropped a torn last line ({len(data) - keep} bytes) left by an interrupted run", file=sys.stderr)
    return True


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record with a single write and an fsync."""
    path = Path(path)
    repair_jsonl(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (dumps(record) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# -- opening a run folder --------------------------------------------------------------------------
def differences(saved: Any, wanted: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two settings differ (the whole value when not both dicts)."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        keys = list(wanted) + [k for k in saved if k not in wanted]
        return [d for k in keys for d in differences(saved.get(k), wanted.get(k), f"{prefix}{k}.")]
    return [] if saved == wanted else [prefix.rstrip(".") or "settings"]


def _plain(data: Any) -> Any:
    """What ``data`` reads back as once written as JSON (tuples become lists, keys text)."""
    return json.loads(json.dumps(data))


def has_content(folder: Path) -> bool:
    """Whether ``folder`` holds anything but hidden entries (a lock, a temporary file)."""
    return folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())


def open_run(
    out: str | Path,
    settings: dict[str, Any],
    *,
    what: str = "a run",
    marker: str = SETTINGS,
    compare: Callable[[dict[str, Any]], Any] = lambda s: s,
    on_other: str = "refuse",
    adopt: Callable[[Path], bool] = lambda out: False,
    write: bool = True,
    hint: str = "choose another --out",
) -> bool:
    """Create, resume or refuse the run folder ``out``; True when it resumes one.

    ``what`` names such a folder in messages ("a batch"). ``settings`` is written to
    ``out/marker`` and compared (through ``compare``, applied to the saved and the wanted
    settings alike) with what a folder holds. On a difference, ``on_other``
    says what happens: ``"refuse"`` (one line naming the settings that differ), ``"restart"``
    (the folder is the command's own: emptied and made again) or ``"update"`` (the settings are
    rewritten; the command's cache keys keep runs apart). A folder with content but no marker is
    refused, unless ``adopt(out)`` says it is an older run of this command (kept before settings
    were recorded). ``write=False`` checks without writing (the helper processes of a launch).
    """
    out = Path(out)
    path = out / marker
    wanted = _plain(settings)
    resuming = False
    if path.is_file():
        try:
            saved = read_json(path)
            changed = differences(compare(saved), compare(wanted))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OriginalityError(f"{path} is damaged ({exc}); {hint}") from exc
        if not changed:
            resuming = True
        elif on_other == "restart":
            if write:
                shutil.rmtree(out)
        elif on_other == "refuse":
            raise OriginalityError(f"{out} holds {what} with other settings ({', '.join(changed)}); {hint}")
        else:
            resuming = True
    elif has_content(out):
        if not adopt(out):
            raise OriginalityError(f"output folder {out} exists and is not {what} to resume; {hint}")
        resuming = True
    if write:
        out.mkdir(parents=True, exist_ok=True)
        if not (path.is_file() and read_json(path) == wanted):
            write_json(path, wanted)
    return resuming


@contextmanager
def lock(out: str | Path, index: int = 0) -> Iterator[None]:
    """One writer per folder: a second run on it is refused, not interleaved.

    The lock file holds the owner's pid; a lock whose owner is gone (killed) is taken over.
    Process k > 0 of a launch takes ``.lock.k``.
    """
    out = Path(out)
    path = out / (LOCK if index == 0 else f"{LOCK}.{index}")
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _lock_owner(path)
            if owner and _alive(owner):
                raise OriginalityError(
                    f"another run (pid {owner}) is writing to {out}; wait for it or stop it"
                ) from None
            path.unlink(missing_ok=True)
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        break
    else:
        raise OriginalityError(f"cannot lock {out}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _lock_owner(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
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


# -- several processes -----------------------------------------------------------------------------
@dataclass
class Processes:
    """This process's place among those ``accelerate launch`` or ``torchrun`` started (one process: 0 of 1)."""

    index: int = 0
    count: int = 1
    state: Any = None

    @property
    def device(self):
        return self.state.device if self.state is not None else None

    @property
    def first(self) -> bool:
        return self.index == 0

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def processes() -> Processes:
    """This process's place under ``accelerate launch`` (GPUs) or ``torchrun`` (GPUs or CPUs)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    # Without a GPU, accelerate joins torchrun's process group only when told it runs on CPUs;
    # otherwise every process would take itself for the only one and do every job.
    state = PartialState(cpu=not torch.cuda.is_available())
    return Processes(state.process_index, state.num_processes, state)


def processes_apart(data_parallel: bool = False) -> Processes:
    """Under a launcher, this process's index and count, each process then working alone on its
    own GPU: the launcher's process-group variables are cleared before any model is built.
    ``data_parallel`` keeps them, for training that joins the process group."""
    count = int(os.environ.get("WORLD_SIZE", "1"))
    if count <= 1:
        return Processes()
    index, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if data_parallel:
        return Processes(index, count)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else None
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus[local % len(gpus)] if gpus else str(local)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(name, None)
    return Processes(index, count)


def part_file(name: str, procs: Processes) -> str:
    """The records file process k appends to: ``name`` alone, ``<stem>.rank<k>.jsonl`` in a launch."""
    if procs.count == 1:
        return name
    return f"{Path(name).stem}.rank{procs.index}{Path(name).suffix}"


def part_files(out: Path, name: str) -> list[Path]:
    return sorted(out.glob(f"{Path(name).stem}.rank*{Path(name).suffix}"))


Key = str | Callable[[dict[str, Any]], Any]


def _key_of(key: Key) -> Callable[[dict[str, Any]], Any]:
    return key if callable(key) else (lambda record: record[key])


def _settled(record: dict[str, Any]) -> bool:
    """A record that settles its key: anything but an error, which a later record replaces."""
    return record.get("status") != "error"


def read_records(out: Path, name: str, key: Key) -> dict[str, dict[str, Any]]:
    """The records of ``out/name`` and its part files by key (a field's name, or a function of the
    record): the first record that settles a key is kept; an error is kept only until one does."""
    of = _key_of(key)
    records: dict[str, dict[str, Any]] = {}
    for path in [out / name, *part_files(out, name)]:
        for record in read_jsonl(path):
            k = of(record)
            if k not in records or not _settled(records[k]):
                records[k] = record
    return records


def merge_parts(out: Path, name: str, key: Key) -> None:
    """Fold the part files into ``out/name`` (a key settled once; errors until it is), then drop them."""
    parts = part_files(out, name)
    if not parts:
        return
    of = _key_of(key)
    settled = {of(r) for r in read_jsonl(out / name) if _settled(r)}
    for part in parts:
        for record in read_jsonl(part):
            if of(record) not in settled:
                append_jsonl(out / name, record)
                if _settled(record):
                    settled.add(of(record))
    for part in parts:
        part.unlink()


def wait_for(paths: list[Path], seconds: float) -> None:
    """Poll until every file exists (no collective call, so no process-group timeout)."""
    pending = [p for p in paths if not p.exists()]
    while pending:
        time.sleep(seconds)
        pending = [p for p in pending if not p.exists()]
