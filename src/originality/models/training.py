"""Train a Stable-Diffusion-style model from scratch on a shapes dataset (App. E.1).

Two stages, as in the paper:

1. **VAE** (``AutoencoderKL``): MSE reconstruction + a small KL term, on the images.
2. **UNet** (``UNet2DConditionModel``) conditioned by a frozen BERT-family encoder, on
   latents encoded *once* after stage 1 (the posterior's mean and std are cached and a
   latent is sampled from them each step), with the latent scaling factor measured on the
   data rather than SD's 0.18215. DDPM noise schedule, min-SNR weighting, caption dropout
   for classifier-free guidance, EMA of the UNet weights.

Everything the run needs to resume lives in ``out/training/``: a checkpoint (safetensors
only) written atomically every ``checkpoint_every`` steps or ``checkpoint_minutes``, the
cached latents and the loss log. The data order of every epoch and the noise of every
step are drawn from generators seeded by (seed, stage, epoch or step), so a killed run
resumes where it stopped and ends with the same weights as an uninterrupted one.

A run that must move to another machine between calls (a training longer than a sitting)
takes a ``carry`` folder: each call ends by writing the UNet's EMA weights and the run state
there (no optimizer moments: a quarter of the checkpoint, small enough to commit), and a call
that finds no checkpoint of its own starts from the carry. The UNet then continues from the
EMA weights with fresh AdamW moments and a new warm-up, so such a run is not bit-identical to
an uninterrupted one.
``accelerate`` runs the loops: one process by default, ``accelerate launch`` for several
GPUs (the global batch is split across processes), mixed precision by setting.
"""

from __future__ import annotations

import functools
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from originality import runs
from originality.errors import OriginalityError
from originality.models.card import loss_curves, model_card, training_record
from originality.models.checkpoints import load_optimizer, optimizer_tensors, read_checkpoint, write_checkpoint
from originality.models.config import TrainConfig
from originality.models.data import CaptionEmbeddings, latent_shard, load_images, to_model_range
from originality.models.pipeline import (
    assemble,
    build_unet,
    build_vae,
    pretrained_vae,
    quiet_libraries,
    save_pipeline,
    training_scheduler,
)
from originality.models.text_encoders import load_text_encoder
from originality.runs import write_json


@dataclass
class RunState:
    stage: str = "vae"  # vae -> unet -> done
    step: int = 0
    losses: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: {"vae": [], "unet": []})
    scaling_factor: float | None = None
    seconds: dict[str, float] = field(default_factory=lambda: {"vae": 0.0, "latents": 0.0, "unet": 0.0})
    samples_seen: dict[str, int] = field(default_factory=lambda: {"vae": 0, "unet": 0})
    calls: int = 0  # calls that trained at least one step (0 in states written before it was counted)


def _generator(*key: int) -> torch.Generator:
    seed = int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0] % (2**63))
    return torch.Generator().manual_seed(seed)


@functools.lru_cache(maxsize=2)
def _epoch_permutation(n: int, seed: int, stage: int, epoch: int) -> torch.Tensor:
    """Drawn once per epoch (cached), not once per step; callers only slice it."""
    return torch.randperm(n, generator=_generator(seed, stage, epoch))


def _batch_indices(n: int, batch: int, step: int, seed: int, stage: int) -> torch.Tensor:
    """Indices of global batch ``step``: epochs are permutations drawn from (seed, stage, epoch)."""
    steps_per_epoch = max(1, n // batch)  # drop the last partial batch: every step sees `batch` samples
    epoch, offset = divmod(step, steps_per_epoch)
    return _epoch_permutation(n, seed, stage, epoch)[offset * batch : (offset + 1) * batch]


class VAEObjective(torch.nn.Module):
    """Reconstruction MSE + ``kl_weight`` x KL for a latent sampled with the given noise."""

    def __init__(self, vae, kl_weight: float):
        super().__init__()
        self.vae, self.kl_weight = vae, kl_weight

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.mean + posterior.std * eps).sample
        return F.mse_loss(recon.float(), x) + self.kl_weight * posterior.kl().mean()


class Trainer:
    """One training run into ``out``; ``run()`` does (or resumes) both stages and saves."""

    def __init__(
        self,
        config: TrainConfig,
        dataset: str | Path,
        out: str | Path,
        *,
        overwrite: bool = False,
        progress: bool = True,
        command: str | None = None,
        on_step: Callable[[str, int], None] | None = None,
        carry: str | Path | None = None,
    ):
        quiet_libraries()  # library load reports and bars; the run has its own progress bar
        self.config, self.dataset, self.out = config, Path(dataset), Path(out)
        self.command = command or " ".join(sys.argv)
        self.on_step = on_step
        self.carry = None if carry is None else Path(carry)
        self._warm_from = 0  # the step the learning-rate warm-up counts from (later after a carry)
        self.work = self.out / "training"
        # Without a GPU, accelerate joins torchrun's process group only when told it runs on CPUs;
        # otherwise every process takes itself for the only one and trains a model of its own.
        self.accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available())
        self.progress = progress and self.accelerator.is_main_process  # one set of bars, not one per rank
        self.device = self.accelerator.device
        self._check_out(overwrite)

    # -- set-up ---------------------------------------------------------------------------------------
    def _check_out(self, overwrite: bool) -> None:
        """Start fresh with ``overwrite``; otherwise resume a run of the same settings, or refuse."""
        main = self.accelerator.is_main_process
        record = {
            "fingerprint": self.config.fingerprint(),
            "preset": self.config.preset,
            "config": self.config.to_dict(),
            "dataset": str(self.dataset),
        }

        def open_run(write: bool) -> None:
            runs.open_run(
                self.out,
                record,
                marker="training/run.json",
                compare=lambda saved: {"fingerprint": saved.get("fingerprint")},
                on_other="refuse",
                write=write,
                hint="use --overwrite to start again",
            )

        if overwrite:
            if main and self.out.exists():
                shutil.rmtree(self.out)
        else:
            open_run(write=False)  # every rank checks before the first one writes
        self.accelerator.wait_for_everyone()  # no rank reads the folder while rank 0 clears it
        if main:
            open_run(write=True)

    def _load_state(self) -> tuple[dict[str, dict[str, torch.Tensor]], RunState]:
        found = read_checkpoint(self.work / "checkpoint")
        self._meta: dict[str, Any] = {}
        if found is None:
            return {}, RunState()
        tensors, state = found
        self._meta = state.get("optimizer_meta", {})
        run = RunState(**{k: v for k, v in state.items() if k in RunState.__dataclass_fields__})
        run.losses = {k: [tuple(x) for x in v] for k, v in run.losses.items()}
        return tensors, run

    # -- the run ----------------------------------------------------------------------------------
    def run(self, stop_after_steps: int | None = None, max_minutes: float | None = None) -> Path:
        """Train (resuming if a checkpoint exists) and save the pipeline into ``out``.

        ``stop_after_steps`` stops early (after that many steps in this call) without
        saving the pipeline: tests use it to simulate a killed run. ``max_minutes`` is a time
        budget for this call: when it runs out during the UNet stage, the run is checkpointed and
        a usable snapshot (EMA weights so far) is saved; rerunning the command continues it.
        """
        cfg = self.config
        images, captions, info = load_images(self.dataset, cfg, self.progress)
        self.info = info
        tokenizer, encoder = load_text_encoder(
            cfg.text_encoder, max_length=cfg.max_length, scratch=self.work / "tiny-text-encoder"
        )
        encoder.to(self.device)
        self._take_carry()
        tensors, run = self._load_state()
        self._counted = False
        budget = [stop_after_steps]
        self._deadline = None if max_minutes is None else time.perf_counter() + 60 * max_minutes
        planned = self._steps(len(images), cfg.unet_batch, cfg.unet_epochs)
        if run.stage == "done" and run.step < planned:
            run.stage = "unet"  # more epochs asked for: continue the finished run
        elif run.stage == "done" and run.step > planned:  # saving it would label it with fewer epochs
            raise OriginalityError(
                f"{self.out} holds a run trained for {run.step} UNet steps, more than the {planned} asked; "
                "ask for at least as many epochs, or use --overwrite to start again"
            )
        if cfg.vae_from:
            vae = pretrained_vae(cfg.vae_from, cfg)  # frozen: no stage 1
            tensors.setdefault("vae", {k: v.detach().clone() for k, v in vae.state_dict().items()})
            if run.stage == "vae":
                run.stage, run.step = "unet", 0
        else:
            vae = build_vae(cfg)
            if "vae" in tensors:
                vae.load_state_dict(tensors["vae"])
            if run.stage == "vae" and not self._train_vae(vae, images, tensors, run, budget):
                return self.out
            vae = build_vae(cfg)
            vae.load_state_dict(tensors["vae"])
        vae.to(self.device).eval().requires_grad_(False)
        mean, std = self._latents(vae, images, run)
        if cfg.latent_scaling == "vae":
            run.scaling_factor = float(vae.config.scaling_factor)
        unet = build_unet(cfg, encoder.config.hidden_size)
        if run.stage == "unet":
            text = CaptionEmbeddings(tokenizer, encoder, captions, self.device, self.progress)
            finished = self._train_unet(unet, mean, std, captions, text, tensors, run, budget)
            self._write_carry()
            # Stopped by a test's step budget, or out of time before any UNet step: no snapshot to save.
            if not finished and (run.step == 0 or not self._out_of_time()):
                return self.out
            self.accelerator.wait_for_everyone()  # rank 0 has written the last checkpoint
            tensors, run = self._load_state()
        unet.load_state_dict(tensors["ema"])
        vae.register_to_config(scaling_factor=run.scaling_factor)
        if self.accelerator.is_main_process:
            self._save(vae.cpu(), encoder.cpu(), tokenizer, unet.cpu(), run)
        return self.out

    # -- carrying a run across machines ----------------------------------------------------------------
    def _take_carry(self) -> None:
        """Start from the carry folder when this run has no checkpoint of its own."""
        if self.carry is None or read_checkpoint(self.work / "checkpoint") is not None:
            return
        found = read_checkpoint(self.carry)
        if found is None:
            return  # the first call: nothing carried yet
        tensors, state = found
        if state.get("fingerprint") != self.config.fingerprint():
            raise OriginalityError(
                f"the carry {self.carry} holds a run of other settings (fingerprint {state.get('fingerprint')}, "
                f"these {self.config.fingerprint()}); choose another --carry"
            )
        if state.get("stage") == "vae":
            raise OriginalityError(f"the carry {self.carry} stopped in the VAE stage; only UNet runs are carried")
        if self.accelerator.is_main_process:
            write_checkpoint(self.work / "checkpoint", tensors, state)
        self.accelerator.wait_for_everyone()

    def _write_carry(self) -> None:
        """The EMA weights and the run state of the last checkpoint, into the carry folder."""
        if self.carry is None or not self.accelerator.is_main_process:
            return
        found = read_checkpoint(self.work / "checkpoint")
        if found is None or "ema" not in found[0]:
            return
        tensors, state = found
        state = {k: v for k, v in state.items() if k != "optimizer_meta"}
        write_checkpoint(self.carry, {"ema": tensors["ema"]}, state)

    def _out_of_time(self) -> bool:
        if self._deadline is None:  # the same on every rank
            return False
        late = time.perf_counter() >= self._deadline
        if self.accelerator.num_processes == 1:
            return late
        # Every rank stops at the same step, or the others would wait forever in the next all-reduce.
        flag = torch.tensor([float(late)], device=self.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    # -- stage 1: the VAE ----------------------------------------------------------------------------
    def _steps(self, n: int, batch: int, epochs: float) -> int:
        return max(1, math.ceil(epochs * max(1, n // batch)))

    def _latent_side(self) -> tuple[int, int]:
        side = self.config.resolution // 2 ** (len(self.config.vae.block_out_channels) - 1)
        return side, side

    def _train_vae(self, vae, images, tensors, run: RunState, budget: list[int | None]) -> bool:
        cfg, acc = self.config, self.accelerator
        total = self._steps(len(images), cfg.vae_batch, cfg.vae_epochs)
        optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=cfg.weight_decay)
        if "vae_optimizer" in tensors:
            load_optimizer(optimizer, tensors["vae_optimizer"], self._meta)
        # The objective is one module so that its forward goes through DDP under `accelerate launch`.
        objective, optimizer = acc.prepare(VAEObjective(vae, cfg.kl_weight), optimizer)
        objective.train()

        def step_fn(step: int) -> float:
            idx = self._local(_batch_indices(len(images), cfg.vae_batch, step, cfg.seed, 1))
            x = to_model_range(images[idx]).to(self.device)
            g = _generator(cfg.seed, 1, step, 1 + acc.process_index)
            eps = torch.randn((len(idx), cfg.vae.latent_channels, *self._latent_side()), generator=g).to(self.device)
            with acc.autocast():
                loss = objective(x, eps)
            return self._optimise(loss, objective, optimizer, step, cfg.vae_lr)

        def save(run: RunState) -> None:
            opt_tensors, meta = optimizer_tensors(optimizer)
            self._meta = meta
            self._checkpoint({"vae": acc.unwrap_model(objective).vae.state_dict(), "vae_optimizer": opt_tensors}, run)

        done = self._loop("vae", total, step_fn, save, run, budget, cfg.vae_batch)
        if done:
            run.stage, run.step = "unet", 0
            save(run)
            tensors["vae"] = {k: v.detach().cpu() for k, v in acc.unwrap_model(objective).vae.state_dict().items()}
        return done

    # -- cached latents ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _latents(self, vae, images: torch.Tensor, run: RunState) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.work / "latents.safetensors"
        if path.is_file():
            cached = load_file(path)
            if len(cached["mean"]) == len(images) and run.scaling_factor is not None:
                return cached["mean"], cached["std"]
        start = time.perf_counter()
        # Each process encodes one contiguous shard; the gather puts the shards back in order.
        acc = self.accelerator
        mine = images[latent_shard(len(images), acc.num_processes, acc.process_index)]
        means, stds = [], []
        for i in tqdm(range(0, len(mine), 256), desc="encoding latents", disable=not self.progress):
            dist = vae.encode(to_model_range(mine[i : i + 256]).to(self.device)).latent_dist
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
        mean, std = torch.cat(means), torch.cat(stds)
        if acc.num_processes > 1:  # the last shard may be short: pad, gather, trim
            mean, std = (acc.gather(acc.pad_across_processes(t.to(self.device))).cpu() for t in (mean, std))
            mean, std = mean[: len(images)], std[: len(images)]
        # Scale latents to unit variance, as SD's 0.18215 does for its own VAE.
        run.scaling_factor = float(1.0 / torch.sqrt(mean.var() + (std**2).mean()))
        run.seconds["latents"] = time.perf_counter() - start
        if self.accelerator.is_main_process:
            with runs.atomic_path(path) as tmp:
                save_file({"mean": mean.contiguous(), "std": std.contiguous()}, tmp)
        return mean, std

    # -- stage 2: the UNet ------------------------------------------------------------------------------
    def _train_unet(self, unet, mean, std, captions, text, tensors, run: RunState, budget) -> bool:
        cfg, acc = self.config, self.accelerator
        scheduler = training_scheduler()
        total = self._steps(len(mean), cfg.unet_batch, cfg.unet_epochs)
        if "unet" in tensors:
            unet.load_state_dict(tensors["unet"])
        elif "ema" in tensors:  # a carried checkpoint: weights only
            unet.load_state_dict(tensors["ema"])
        unet.to(self.device)
        ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, foreach=True)
        if "ema" in tensors:
            names = [n for n, _ in unet.named_parameters()]
            ema.shadow_params = [tensors["ema"][n].to(self.device) for n in names]
            ema.optimization_step = run.step
        optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=cfg.weight_decay)
        if "unet_optimizer" in tensors:
            load_optimizer(optimizer, tensors["unet_optimizer"], self._meta)
        else:  # fresh moments (a new run, or a carried one): warm up again from here
            self._warm_from = run.step
        unet, optimizer = acc.prepare(unet, optimizer)
        unet.train()
        alphas = scheduler.alphas_cumprod.to(self.device)
        scale = run.scaling_factor
        mean, std = mean.to(self.device), std.to(self.device)

        def step_fn(step: int) -> float:
            idx = self._local(_batch_indices(len(mean), cfg.unet_batch, step, cfg.seed, 2))
            g = _generator(cfg.seed, 2, step, 1 + acc.process_index)
            b = len(idx)
            z = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g).to(self.device)) * scale
            noise = torch.randn(z.shape, generator=g).to(self.device)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=g).to(self.device)
            drop = torch.rand(b, generator=g) < cfg.caption_dropout
            prompts = ["" if d else captions[i] for d, i in zip(drop.tolist(), idx.tolist(), strict=True)]
            cond = text(prompts)
            noisy = scheduler.add_noise(z, noise, t)
            with acc.autocast():
                pred = unet(noisy, t, encoder_hidden_states=cond).sample
            loss = F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))
            if cfg.snr_gamma is not None:
                snr = alphas[t] / (1 - alphas[t])
                loss = loss * torch.clamp(snr, max=cfg.snr_gamma) / snr
            value = self._optimise(loss.mean(), unet, optimizer, step, cfg.unet_lr)
            ema.step(acc.unwrap_model(unet).parameters())
            return value

        def save(run: RunState) -> None:
            opt_tensors, meta = optimizer_tensors(optimizer)
            self._meta = meta
            model = acc.unwrap_model(unet)
            names = [n for n, _ in model.named_parameters()]
            shadow = dict(zip(names, ema.shadow_params, strict=True))
            ema_state = {k: shadow.get(k, v) for k, v in model.state_dict().items()}
            self._checkpoint(
                {"vae": tensors["vae"], "unet": model.state_dict(), "ema": ema_state, "unet_optimizer": opt_tensors},
                run,
            )

        done = self._loop("unet", total, step_fn, save, run, budget, cfg.unet_batch)
        if done:
            run.stage = "done"
            save(run)
        return done

    # -- shared loop pieces -----------------------------------------------------------------------------
    def _local(self, idx: torch.Tensor) -> torch.Tensor:
        acc = self.accelerator
        return idx[acc.process_index :: acc.num_processes]

    def _optimise(self, loss: torch.Tensor, model, optimizer, step: int, lr: float) -> torch.Tensor:
        cfg = self.config
        for group in optimizer.param_groups:  # linear warm-up, then constant
            group["lr"] = lr * min(1.0, (step + 1 - self._warm_from) / max(1, cfg.warmup_steps))
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        if cfg.grad_clip:
            self.accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        return loss.detach()

    def _loop(self, stage: str, total: int, step_fn, save, run: RunState, budget: list[int | None], batch: int) -> bool:
        """Run steps ``run.step .. total``; checkpoint on cadence; False if stopped by ``budget``."""
        cfg = self.config
        bar = tqdm(
            total=total,
            initial=run.step,
            desc=f"training {stage}",
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
        )
        started, last_save, window = time.perf_counter(), time.perf_counter(), []
        seconds_before, last_good = run.seconds[stage], run.step

        def checkpoint() -> None:
            run.seconds[stage] = seconds_before + time.perf_counter() - started
            save(run)

        try:
            while run.step < total:
                if self._out_of_time():
                    if window:  # the snapshot's summary reports the loss up to here
                        run.losses[stage].append((run.step, sum(window) / len(window)))
                    checkpoint()
                    return False
                if budget[0] is not None:
                    if budget[0] <= 0:
                        checkpoint()
                        return False
                    budget[0] -= 1
                if not self._counted:  # a call that trains counts once, whatever its stages
                    run.calls, self._counted = run.calls + 1, True
                loss = float(step_fn(run.step))
                if not math.isfinite(loss):
                    raise OriginalityError(
                        f"{stage} loss became {loss} at step {run.step}; stopped. The last good checkpoint "
                        f"(step {last_good}) is kept in {self.work}: lower the learning rate and rerun"
                    )
                window.append(loss)
                run.step += 1
                run.samples_seen[stage] += batch
                if self.on_step:
                    self.on_step(stage, run.step)
                if len(window) == 25 or run.step == total:
                    run.losses[stage].append((run.step, sum(window) / len(window)))
                    bar.set_postfix(loss=f"{run.losses[stage][-1][1]:.4f}")
                    window = []
                bar.update(1)
                minutes = (time.perf_counter() - last_save) / 60
                if run.step < total and (run.step % cfg.checkpoint_every == 0 or minutes > cfg.checkpoint_minutes):
                    checkpoint()
                    last_good, last_save = run.step, time.perf_counter()
        finally:
            bar.close()
        run.seconds[stage] = seconds_before + time.perf_counter() - started
        return True

    def _checkpoint(self, tensors: dict[str, dict[str, torch.Tensor]], run: RunState) -> None:
        for group, values in tensors.items():
            if any(torch.is_floating_point(v) and not torch.isfinite(v).all() for v in values.values()):
                raise OriginalityError(
                    f"non-finite {group} weights at {run.stage} step {run.step}; stopped. The last good checkpoint "
                    f"is kept in {self.work}: lower the learning rate and rerun"
                )
        if not self.accelerator.is_main_process:
            return
        state = dict(run.__dict__)
        state["optimizer_meta"] = self._meta
        state["fingerprint"] = self.config.fingerprint()
        write_checkpoint(self.work / "checkpoint", tensors, state)

    # -- saving ---------------------------------------------------------------------------------------------
    def _save(self, vae, encoder, tokenizer, unet, run: RunState) -> None:
        pipeline = assemble(vae, encoder, tokenizer, unet)
        loss_curves(run.losses, self.work / "loss.png")
        summary = training_record(
            self.config, self.dataset, self.info, run, self.accelerator.num_processes, self.command
        )
        card = model_card(self.config, summary)
        save_pipeline(pipeline, self.out, bundle_text_encoder=self.config.bundle_text_encoder, card=card)
        write_json(self.work / "summary.json", summary)


def train(
    config: TrainConfig, dataset: str | Path, out: str | Path, *, max_minutes: float | None = None, **kwargs: Any
) -> Path:
    """Train (or resume) a model on ``dataset`` into the pipeline folder ``out``.

    With ``max_minutes`` it stops after that long and saves a snapshot; calling again continues.
    """
    return Trainer(config, dataset, out, **kwargs).run(max_minutes=max_minutes)
