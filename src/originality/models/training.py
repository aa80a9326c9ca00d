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
``accelerate`` runs the loops: one process by default, ``accelerate launch`` for several
GPUs (the global batch is split across processes), mixed precision by setting.
"""

from __future__ import annotations

import functools
import io
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from originality import __version__
from originality.errors import OriginalityError
from originality.models.checkpoints import load_optimizer, optimizer_tensors, read_checkpoint, write_checkpoint
from originality.models.config import TrainConfig
from originality.models.pipeline import (
    assemble,
    build_unet,
    build_vae,
    pretrained_vae,
    quiet_libraries,
    save_pipeline,
    training_scheduler,
)
from originality.models.text_encoders import encode_prompts, load_text_encoder
from originality.shapes.dataset import read_info, read_table

TEXT_CACHE_BYTES = 2 * 1024**3  # cache caption embeddings when they fit in this much memory


@dataclass
class RunState:
    stage: str = "vae"  # vae -> unet -> done
    step: int = 0
    losses: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: {"vae": [], "unet": []})
    scaling_factor: float | None = None
    seconds: dict[str, float] = field(default_factory=lambda: {"vae": 0.0, "latents": 0.0, "unet": 0.0})
    samples_seen: dict[str, int] = field(default_factory=lambda: {"vae": 0, "unet": 0})
    calls: int = 0  # calls that trained at least one step (0 in states written before it was counted)


def _changed(changes: dict[str, Any]) -> str:
    return " with " + ", ".join(f"`{k}={v}`" for k, v in changes.items()) if changes else ""


def _loss(value: float | None) -> str:
    return "none yet" if value is None else f"{value:.5f}"


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


def load_images(dataset: Path, config: TrainConfig, progress: bool) -> tuple[torch.Tensor, list[str], dict[str, Any]]:
    """Decode the dataset into a uint8 tensor (N, 3, H, W) and its captions."""
    info = read_info(dataset)
    if info["size"] != config.resolution:
        raise OriginalityError(
            f"dataset {dataset} is {info['size']} px but the model is {config.resolution} px "
            f"(make the data with --size {config.resolution} or change the resolution)"
        )
    table = read_table(dataset, columns=["image", "caption"])
    if config.max_images is not None:
        table = table.slice(0, config.max_images)
    from tqdm.auto import tqdm

    images = np.empty((table.num_rows, config.resolution, config.resolution, 3), dtype=np.uint8)
    for i, item in enumerate(
        tqdm(table.column("image").to_pylist(), desc="decoding images", disable=not progress, unit="img")
    ):
        try:
            images[i] = np.asarray(Image.open(io.BytesIO(item["bytes"])).convert("RGB"))
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a corrupt dataset
            raise OriginalityError(f"corrupt image {i} in dataset {dataset}: {exc}") from exc
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), table.column("caption").to_pylist(), info


def latent_shard(n: int, processes: int, index: int) -> slice:
    """The contiguous run of ``n`` images that process ``index`` encodes. Only trailing shards may
    be short, so gathering them in order and trimming to ``n`` restores the order; an empty shard
    would leave a process nothing to encode, so that is refused."""
    size = -(-n // processes)
    if size * (processes - 1) >= n:
        raise OriginalityError(f"{n} images cannot be shared by {processes} training processes; use fewer processes")
    return slice(index * size, (index + 1) * size)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


class CaptionEmbeddings:
    """Frozen-encoder embeddings of captions: cached per unique caption when they fit."""

    def __init__(self, tokenizer, encoder, captions: list[str], device: torch.device, progress: bool):
        self.tokenizer, self.encoder, self.device = tokenizer, encoder, device
        unique = sorted(set(captions) | {""})
        self.index = {c: i for i, c in enumerate(unique)}
        length, width = tokenizer.model_max_length, encoder.config.hidden_size
        self.cache: torch.Tensor | None = None
        if len(unique) * length * width * 4 <= TEXT_CACHE_BYTES:
            from tqdm.auto import tqdm

            chunks = [
                self._encode(unique[i : i + 256])
                for i in tqdm(range(0, len(unique), 256), desc="encoding captions", disable=not progress)
            ]
            self.cache = torch.cat(chunks)

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.tokenizer, self.encoder, prompts)

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[torch.tensor([self.index[p] for p in prompts], device=self.cache.device)]
        return self._encode(prompts)


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
    ):
        from accelerate import Accelerator

        quiet_libraries()  # library load reports and bars; the run has its own progress bar
        self.config, self.dataset, self.out = config, Path(dataset), Path(out)
        self.command = command or " ".join(sys.argv)
        self.on_step = on_step
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
        import shutil

        run_file = self.work / "run.json"
        main = self.accelerator.is_main_process
        if overwrite and self.out.exists():
            if main:
                shutil.rmtree(self.out)
        elif run_file.is_file():
            saved = json.loads(run_file.read_text())
            if saved.get("fingerprint") != self.config.fingerprint():
                raise OriginalityError(
                    f"{self.out} holds a run with other settings (preset {saved.get('preset')!r}); "
                    "use --overwrite to start again"
                )
        elif self.out.exists() and any(self.out.iterdir()):
            raise OriginalityError(f"output folder {self.out} exists and is not empty (use --overwrite)")
        self.accelerator.wait_for_everyone()  # no rank reads the folder while rank 0 clears it
        if main:
            self.work.mkdir(parents=True, exist_ok=True)
            run_file.write_text(
                json.dumps(
                    {
                        "fingerprint": self.config.fingerprint(),
                        "preset": self.config.preset,
                        "config": self.config.to_dict(),
                        "dataset": str(self.dataset),
                    },
                    indent=1,
                )
            )

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
        unet = build_unet(cfg, encoder.config.hidden_size)
        if run.stage == "unet":
            text = CaptionEmbeddings(tokenizer, encoder, captions, self.device, self.progress)
            finished = self._train_unet(unet, mean, std, captions, text, tensors, run, budget)
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
        from safetensors.torch import load_file, save_file

        path = self.work / "latents.safetensors"
        if path.is_file():
            cached = load_file(path)
            if len(cached["mean"]) == len(images) and run.scaling_factor is not None:
                return cached["mean"], cached["std"]
        start = time.perf_counter()
        from tqdm.auto import tqdm

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
            tmp = path.with_suffix(".tmp")
            save_file({"mean": mean.contiguous(), "std": std.contiguous()}, tmp)
            tmp.replace(path)
        return mean, std

    # -- stage 2: the UNet ------------------------------------------------------------------------------
    def _train_unet(self, unet, mean, std, captions, text, tensors, run: RunState, budget) -> bool:
        from diffusers.training_utils import EMAModel

        cfg, acc = self.config, self.accelerator
        scheduler = training_scheduler()
        total = self._steps(len(mean), cfg.unet_batch, cfg.unet_epochs)
        if "unet" in tensors:
            unet.load_state_dict(tensors["unet"])
        unet.to(self.device)
        ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, foreach=True)
        if "ema" in tensors:
            names = [n for n, _ in unet.named_parameters()]
            ema.shadow_params = [tensors["ema"][n].to(self.device) for n in names]
            ema.optimization_step = run.step
        optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=cfg.weight_decay)
        if "unet_optimizer" in tensors:
            load_optimizer(optimizer, tensors["unet_optimizer"], self._meta)
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
            group["lr"] = lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        if cfg.grad_clip:
            self.accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        return loss.detach()

    def _loop(self, stage: str, total: int, step_fn, save, run: RunState, budget: list[int | None], batch: int) -> bool:
        """Run steps ``run.step .. total``; checkpoint on cadence; False if stopped by ``budget``."""
        from tqdm.auto import tqdm

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
        from originality.report.plots import loss_curves

        pipeline = assemble(vae, encoder, tokenizer, unet)
        curve = self.work / "loss.png"
        loss_curves(run.losses, curve)
        save_pipeline(pipeline, self.out, bundle_text_encoder=self.config.bundle_text_encoder, card=self._card(run))
        (self.work / "summary.json").write_text(json.dumps(self._summary(run), indent=1))

    def _summary(self, run: RunState) -> dict[str, Any]:
        return {
            "preset": self.config.preset,
            "dataset": {
                "path": str(self.dataset),
                "spec": self.info["spec"]["name"],
                # What a min-tokens run needs of a spec that is not a preset (a user's file).
                "fractions": {c["name"]: c["fraction"] for c in self.info["spec"]["components"]},
                "n": self.info["n"],
                "seed": self.info["seed"],
                "size": self.info["size"],
            },
            "steps": {k: len(v) and v[-1][0] for k, v in run.losses.items()},
            "samples_seen": run.samples_seen,
            "processes": self.accelerator.num_processes,
            "final_loss": {k: v[-1][1] if v else None for k, v in run.losses.items()},
            "seconds": run.seconds,
            "scaling_factor": run.scaling_factor,
            "finished": run.stage == "done",
            "calls": run.calls,
            "command": self.command,
            "originality_version": __version__,
            "config": self.config.to_dict(),
        }

    def _card(self, run: RunState) -> str:
        s = self._summary(run)
        return (
            "---\nlibrary_name: diffusers\ntags: [originality, shapes, text-to-image]\n---\n\n"
            f"# Shapes model: {s['dataset']['spec']} ({s['preset']} preset)\n\n"
            "A Stable-Diffusion-style model trained from scratch by `originality` (Haviv et al. 2024, App. E.1): "
            f"a VAE, then a UNet conditioned by the frozen text encoder `{self.config.text_encoder}`.\n\n"
            f"- dataset: `{s['dataset']['spec']}`, {s['dataset']['n']} images at {s['dataset']['size']} px, "
            f"seed {s['dataset']['seed']}\n"
            f"- training seed: {self.config.seed}; preset: `{s['preset']}`"
            + _changed(self.config.changes())
            + "\n"
            + (
                f"- VAE: pretrained, frozen, from `{self.config.vae_from}`\n"
                if self.config.vae_from
                else f"- VAE: {s['steps']['vae']} steps ({s['samples_seen']['vae']} samples), final loss "
                f"{_loss(s['final_loss']['vae'])}, {s['seconds']['vae']:.0f} s\n"
            )
            + f"- UNet: {s['steps']['unet']} steps ({s['samples_seen']['unet']} samples), final loss "
            f"{_loss(s['final_loss']['unet'])}, {s['seconds']['unet']:.0f} s "
            f"(latents {s['seconds']['latents']:.0f} s)\n"
            f"- latent scaling factor (measured): {s['scaling_factor']:.5f}\n"
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


def train(
    config: TrainConfig, dataset: str | Path, out: str | Path, *, max_minutes: float | None = None, **kwargs: Any
) -> Path:
    """Train (or resume) a model on ``dataset`` into the pipeline folder ``out``.

    With ``max_minutes`` it stops after that long and saves a snapshot; calling again continues.
    """
    return Trainer(config, dataset, out, **kwargs).run(max_minutes=max_minutes)
