"""What a trained model says about itself: its training summary and model card (``README.md``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from originality import __version__  # noqa: E402
from originality.models.config import TrainConfig  # noqa: E402
from originality.runs import save_figure  # noqa: E402


def _changed(changes: dict[str, Any]) -> str:
    return " with " + ", ".join(f"`{k}={v}`" for k, v in changes.items()) if changes else ""


def _loss(value: float | None) -> str:
    return "none yet" if value is None else f"{value:.5f}"


def loss_curves(losses: dict[str, list[tuple[int, float]]], out: str | Path) -> Path:
    """One panel per training stage: running loss against step, log scale."""
    stages = [k for k, v in losses.items() if v]
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(4.5 * max(1, len(stages)), 3.2), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=False):
        steps, values = zip(*losses[stage], strict=True)
        ax.plot(steps, values, lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"{stage} loss")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out, dpi=120)
    plt.close(fig)
    return Path(out)


def training_record(
    config: TrainConfig, dataset: Path, info: dict[str, Any], run: Any, processes: int, command: str
) -> dict[str, Any]:
    """The summary of a run (``run``: the trainer's state) that lands in ``training/summary.json``."""
    return {
        "preset": config.preset,
        "dataset": {
            "path": str(dataset),
            "spec": info["spec"]["name"],
            # What a min-tokens run needs of a spec that is not a preset (a user's file).
            "fractions": {c["name"]: c["fraction"] for c in info["spec"]["components"]},
            "n": info["n"],
            "seed": info["seed"],
            "size": info["size"],
        },
        "steps": {k: len(v) and v[-1][0] for k, v in run.losses.items()},
        "samples_seen": run.samples_seen,
        "processes": processes,
        "final_loss": {k: v[-1][1] if v else None for k, v in run.losses.items()},
        "seconds": run.seconds,
        "scaling_factor": run.scaling_factor,
        "finished": run.stage == "done",
        "calls": run.calls,
        "command": command,
        "originality_version": __version__,
        "config": config.to_dict(),
    }


def model_card(config: TrainConfig, s: dict[str, Any]) -> str:
    """The pipeline folder's ``README.md``, from its training summary ``s``."""
    scaling = "the VAE's own" if config.latent_scaling == "vae" else "measured"
    return (
        "---\nlibrary_name: diffusers\ntags: [originality, shapes, text-to-image]\n---\n\n"
        f"# Shapes model: {s['dataset']['spec']} ({s['preset']} preset)\n\n"
        "A Stable-Diffusion-style model trained from scratch by `originality` (Haviv et al. 2024, App. E.1): "
        f"a VAE, then a UNet conditioned by the frozen text encoder `{config.text_encoder}`.\n\n"
        f"- dataset: `{s['dataset']['spec']}`, {s['dataset']['n']} images at {s['dataset']['size']} px, "
        f"seed {s['dataset']['seed']}\n"
        f"- training seed: {config.seed}; preset: `{s['preset']}`"
        + _changed(config.changes())
        + "\n"
        + (
            f"- VAE: pretrained, frozen, from `{config.vae_from}`\n"
            if config.vae_from
            else f"- VAE: {s['steps']['vae']} steps ({s['samples_seen']['vae']} samples), final loss "
            f"{_loss(s['final_loss']['vae'])}, {s['seconds']['vae']:.0f} s\n"
        )
        + f"- UNet: {s['steps']['unet']} steps ({s['samples_seen']['unet']} samples), final loss "
        f"{_loss(s['final_loss']['unet'])}, {s['seconds']['unet']:.0f} s "
        f"(latents {s['seconds']['latents']:.0f} s)\n"
        f"- latent scaling factor ({scaling}): {s['scaling_factor']:.5f}\n"
        + (
            ""
            if s["finished"]
            else "- **snapshot**: the time budget ran out before the planned steps; rerun the command to continue\n"
        )
        + f"- originality {__version__}\n\n"
        f"Made with:\n\n```\n{s['command']}\n```\n\n"
        + (
            # The command line does not show the launcher; the global batch is the same either way.
            f"in {s['processes']} processes (`torchrun --nproc-per-node {s['processes']} -m originality.cli` "
            f"or `accelerate launch --num_processes {s['processes']} -m originality.cli` in place of "
            "`originality`).\n\n"
            if s["processes"] > 1
            else ""
        )
        + (
            # Each budgeted call resumes the checkpoint; the card names only the last one.
            f"Made over {s['calls']} calls, each resuming the checkpoint of the last (the command above is the "
            "last); one call without a time budget (`--hours`, `max_minutes`) runs it in one.\n\n"
            if s["calls"] > 1
            else ""
        )
        + "Load with `originality.models.load_pipeline(folder)`; the settings are in `training/summary.json`.\n"
    )


def training_summary(out: str | Path) -> dict[str, Any] | None:
    """The training summary that ``Trainer`` writes into the pipeline folder ``out``, or None
    where there is none (a model not trained by ``originality``)."""
    path = Path(out) / "training" / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def finished_config(out: str | Path) -> TrainConfig | None:
    """The settings of the finished run in the pipeline folder ``out``; None where it holds no
    finished run, or one whose summary this version cannot read."""
    summary = training_summary(out)
    if not (summary and summary.get("finished")):
        return None
    try:
        return TrainConfig.from_dict(summary["config"])
    except (KeyError, TypeError):
        return None


def same_run(saved: TrainConfig, config: TrainConfig, epochs: bool = True) -> bool:
    """Whether ``saved`` is a run of ``config``'s settings (and, with ``epochs``, its length)."""
    same = saved.fingerprint() == config.fingerprint() and saved.vae_epochs == config.vae_epochs
    return same and (not epochs or saved.unet_epochs == config.unet_epochs)


def is_trained(out: str | Path, config: TrainConfig | None = None) -> bool:
    """Whether the pipeline folder ``out`` holds a finished run (its training summary says so);
    with ``config``, a finished run of those settings and epochs. A finished run of other epochs
    is not one: training it with ``config`` continues it (or refuses, when it ran longer)."""
    if config is None:
        summary = training_summary(out)
        return bool(summary and summary.get("finished"))
    saved = finished_config(out)  # unreadable: the trainer's own check of run.json decides
    return saved is not None and same_run(saved, config)
