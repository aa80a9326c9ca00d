"""Atomic, resumable training checkpoints, all tensors in safetensors.

A checkpoint is a folder: ``state.json`` (step, stage, losses, config fingerprint) and one
``.safetensors`` file per tensor group (model weights, EMA weights, optimizer moments).
It is written to ``checkpoint.tmp`` and swapped in with renames, so a kill or a full disk
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from originality.errors import OriginalityError


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into flat tensors and JSON-able groups."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{index}.{key}"] = (
                value.detach().cpu().contiguous() if torch.is_tensor(value) else torch.tensor(value)
            )
    return tensors, {"param_groups": state["param_groups"]}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def write_checkpoint(folder: Path, tensors: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]) -> None:
    """Write tensor groups and ``state`` as ``folder``, atomically replacing what was there."""
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for group, group_tensors in tensors.items():
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in group_tensors.items()}, tmp / f"{group}.safetensors"
            )
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OriginalityError(
            f"cannot write checkpoint {folder}: {exc.strerror or exc}; the previous checkpoint is kept"
        ) from exc


def read_checkpoint(folder: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None:
    """The checkpoint at ``folder`` (or the one a crash mid-swap left as ``.old``), or None."""
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        state_path = candidate / "state.json"
        if state_path.is_file():
            try:
                state = json.loads(state_path.read_text())
                tensors = {p.stem: load_file(p) for p in sorted(candidate.glob("*.safetensors"))}
            except (OSError, ValueError) as exc:
                raise OriginalityError(f"corrupt checkpoint {candidate}: {exc}") from exc
            return tensors, state
    return None
