import dataclasses
import json
import math

import pytest
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline
from safetensors.torch import load_file

from originality.errors import OriginalityError
from originality.models import generate, load_pipeline, train, train_preset
from originality.models.card import is_trained, training_summary
from originality.models.config import with_overrides
from originality.models.data import latent_shard, load_images, to_model_range
from originality.models.pipeline import save_pipeline
from originality.models.training import Trainer


def test_tiny_trains_and_both_losses_fall(tiny_model):
    out = tiny_model
    state = json.loads((out / "training" / "checkpoint" / "state.json").read_text())
    for stage in ("vae", "unet"):
        losses = [v for _, v in state["losses"][stage]]
        assert len(losses) >= 2 and losses[-1] < losses[0], (stage, losses)
    s = training_summary(out)
    assert s["steps"] == {"vae": 64, "unet": 128}
    assert s["samples_seen"] == {"vae": 64 * 8, "unet": 128 * 8}
    assert s["dataset"]["fractions"] == {"common": 0.3, "rare": 0.001}  # what min-tokens reads
    assert math.isfinite(s["scaling_factor"]) and s["scaling_factor"] > 0
    assert (out / "training" / "loss.png").stat().st_size > 1000
    card = (out / "README.md").read_text()
    assert "originality-mix" in card and "tiny" in card


def test_saved_folder_is_a_diffusers_pipeline_and_reloads_identically(tiny_model, tmp_path):
    out = tiny_model
    plain = StableDiffusionPipeline.from_pretrained(out, safety_checker=None, requires_safety_checker=False)
    assert plain.vae.config.scaling_factor == pytest.approx(training_summary(out)["scaling_factor"])
    prompts, seeds = ["big red full circle and big blue full square", ""], [3, 4]
    first = generate(load_pipeline(out), prompts, seeds, steps=4)
    save_pipeline(load_pipeline(out), tmp_path / "copy")
    again = generate(load_pipeline(tmp_path / "copy"), prompts, seeds, steps=4)
    for a, b in zip(first, again, strict=True):
        assert a.tobytes() == b.tobytes()
    different_seed = generate(load_pipeline(out), prompts[:1], [5], steps=4)
    assert different_seed[0].tobytes() != first[0].tobytes()


@pytest.fixture(scope="module")
def whole_and_other_seed(small_data, tmp_path_factory):
    config = dataclasses.replace(train_preset("tiny"), checkpoint_every=10)
    root = tmp_path_factory.mktemp("resume")
    whole = train(config, small_data, root / "whole", progress=False)
    other = train(dataclasses.replace(config, seed=1), small_data, root / "other", progress=False)
    return whole, other


@pytest.mark.parametrize("stop_after", [10, 30])  # in the VAE stage (16 steps); in the UNet stage (32)
def test_interrupted_and_resumed_run_ends_with_the_same_weights(
    small_data, tiny_config, tmp_path, stop_after, whole_and_other_seed
):
    whole, other_seed = whole_and_other_seed
    Trainer(tiny_config, small_data, tmp_path / "resumed", progress=False).run(stop_after_steps=stop_after)
    assert not (tmp_path / "resumed" / "model_index.json").exists()
    resumed = Trainer(tiny_config, small_data, tmp_path / "resumed", progress=False).run()
    for part in ("unet", "vae"):
        a, b, c = (load_file(f / part / "diffusion_pytorch_model.safetensors") for f in (whole, resumed, other_seed))
        assert a.keys() == b.keys()
        # Same data order, noise and optimizer state: equal up to float rounding (a fresh process may sum
        # in another order, ~1e-5 here), while another seed moves the weights by ~0.5.
        assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4, part
        assert max((a[k] - c[k]).abs().max().item() for k in a) > 1e-2, part


def test_minilm_encoder_is_referenced_not_copied(small_data, tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, text_encoder="minilm", unet_epochs=0.2, vae_epochs=0.2)
    out = train(config, small_data, tmp_path / "m", progress=False)
    assert not list((out / "text_encoder").glob("*.safetensors"))
    pipeline = load_pipeline(out)
    assert pipeline.text_encoder.config.hidden_size == 384
    assert pipeline.text_encoder.config.use_attention_mask
    assert pipeline.tokenizer.model_max_length == 48
    (image,) = generate(pipeline, ["big red full circle"], [0], steps=2)
    assert image.size == (32, 32)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(small_data, tiny_config, tmp_path):
    broken = dataclasses.replace(tiny_config, snr_gamma=float("nan"))  # NaN loss weights in the UNet stage
    with pytest.raises(OriginalityError, match="unet loss became nan at step 0"):
        train(broken, small_data, tmp_path / "m", progress=False)
    state = json.loads((tmp_path / "m" / "training" / "checkpoint" / "state.json").read_text())
    assert state["stage"] == "unet"  # the finished VAE stage survived
    vae = load_file(tmp_path / "m" / "training" / "checkpoint" / "vae.safetensors")
    assert all(torch.isfinite(v).all() for v in vae.values())


def test_bad_inputs(small_data, tiny_config, tmp_path):
    with pytest.raises(OriginalityError, match="unknown training preset 'huge'"):
        train_preset("huge")
    with pytest.raises(OriginalityError, match="is 32 px but the model is 64 px"):
        train(dataclasses.replace(tiny_config, resolution=64), small_data, tmp_path / "a", progress=False)
    with pytest.raises(OriginalityError, match="dataset folder not found"):
        train(tiny_config, tmp_path / "missing", tmp_path / "b", progress=False)
    with pytest.raises(OriginalityError, match="cannot load text encoder 'no/such-model'"):
        train(
            dataclasses.replace(tiny_config, text_encoder="no/such-model"), small_data, tmp_path / "c", progress=False
        )
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    with pytest.raises(OriginalityError, match="exists and is not a run to resume"):
        train(tiny_config, small_data, tmp_path / "d", progress=False)


def test_rerun_with_more_epochs_continues_the_run(small_data, tiny_config, tmp_path):
    short = dataclasses.replace(tiny_config, unet_epochs=0.5)
    out = train(short, small_data, tmp_path / "m", progress=False)
    assert training_summary(out)["steps"]["unet"] == 8
    out = train(dataclasses.replace(tiny_config, unet_epochs=1.0), small_data, tmp_path / "m", progress=False)
    assert training_summary(out)["steps"]["unet"] == 16
    assert training_summary(out)["samples_seen"]["vae"] == 16 * 8  # the VAE was not trained again


def test_a_finished_run_of_other_epochs_is_not_the_run_asked_for(small_data, tiny_config, tmp_path):
    short = dataclasses.replace(tiny_config, unet_epochs=0.5)
    out = train(short, small_data, tmp_path / "m", progress=False)
    assert is_trained(out) and is_trained(out, short)
    assert not is_trained(out, dataclasses.replace(short, unet_epochs=1.0))  # a cache trains it on
    assert not is_trained(out, dataclasses.replace(short, seed=short.seed + 1))
    # Fewer epochs than it ran: saving would label 8 steps' weights with 4, so it is refused.
    with pytest.raises(OriginalityError, match="trained for 8 UNet steps, more than the 4 asked"):
        train(dataclasses.replace(short, unet_epochs=0.25), small_data, out, progress=False)
    assert training_summary(out)["config"]["unet_epochs"] == 0.5


def test_time_budget_saves_a_snapshot_and_a_rerun_finishes(small_data, tiny_config, tmp_path):
    out = tmp_path / "m"
    trainer = Trainer(tiny_config, small_data, out, progress=False)

    def out_of_time_at_unet_step_5(stage, step):
        if stage == "unet" and step == 5:
            trainer._deadline = 0.0  # the clock has run out

    trainer.on_step = out_of_time_at_unet_step_5
    trainer.run(max_minutes=60)
    snapshot = training_summary(out)
    assert not snapshot["finished"] and snapshot["steps"]["unet"] <= 5
    assert "snapshot" in (out / "README.md").read_text() and "Made over" not in (out / "README.md").read_text()
    load_pipeline(out)  # usable as it is
    command = "originality train --data d --out m --hours 0.5"
    assert training_summary(train(tiny_config, small_data, out, progress=False, command=command))["finished"]
    assert training_summary(out)["calls"] == 2
    assert training_summary(out)["steps"]["unet"] == tiny_config.unet_epochs * 128 // tiny_config.unet_batch
    card = (out / "README.md").read_text()
    # The card names the last call, and says how to make the model in one.
    assert "snapshot" not in card and command in card and "Made over 2 calls" in card


def test_a_preset_differing_only_in_epochs_continues_the_run(tiny_config):
    longer = dataclasses.replace(tiny_config, preset="tiny-long", unet_epochs=5.0)
    assert longer.fingerprint() == tiny_config.fingerprint()
    assert dataclasses.replace(tiny_config, unet_lr=1e-4).fingerprint() != tiny_config.fingerprint()


def test_the_shipped_models_run_can_still_be_continued():
    # The shipped model's run (src/originality/assets/shapes-model/README.md) was saved before
    # `vae_from` existed; a setting added later must not orphan it.
    assert train_preset("ship").fingerprint() == "1a3d13bab22e9e84"
    assert dataclasses.replace(train_preset("ship"), vae_from="shipped").fingerprint() != "1a3d13bab22e9e84"


def test_changes_lists_only_what_differs_from_the_named_preset():
    assert train_preset("ship").changes() == {}
    config = with_overrides(train_preset("ship"), {"unet_lr": 6.4e-5, "unet.block_out_channels": [32, 64, 64]})
    assert config.changes() == {"unet_lr": 6.4e-5, "unet.block_out_channels": (32, 64, 64)}
    assert dataclasses.replace(config, preset="mine").changes() == {}  # no preset to compare with


def test_a_pretrained_vae_is_used_frozen_and_stage_one_skipped(tiny_model, small_data, tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, vae_from=str(tiny_model), unet_epochs=0.5)
    out = train(config, small_data, tmp_path / "m", progress=False)
    s = training_summary(out)
    assert s["steps"]["vae"] == 0 and s["steps"]["unet"] > 0
    source = load_file(tiny_model / "vae" / "diffusion_pytorch_model.safetensors")
    saved = load_file(out / "vae" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(source[k], saved[k]) for k in source)
    card = (out / "README.md").read_text()
    assert f"pretrained, frozen, from `{tiny_model}`" in card
    # The card names what was changed from the preset, not only the preset's name.
    assert f"preset: `tiny` with `vae_from={tiny_model}`, `unet_epochs=0.5`, `checkpoint_every=10`" in card
    bad = dataclasses.replace(tiny_config, vae_from=str(tmp_path / "nothing"))
    with pytest.raises(OriginalityError, match="no VAE found"):
        train(bad, small_data, tmp_path / "bad", progress=False)


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    from originality.models import checkpoints

    folder = tmp_path / "checkpoint"
    checkpoints.write_checkpoint(folder, {"unet": {"w": torch.ones(3)}}, {"step": 1})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "save_file", disk_full)
    with pytest.raises(OriginalityError, match="No space left on device; the previous checkpoint is kept"):
        checkpoints.write_checkpoint(folder, {"unet": {"w": torch.zeros(3)}}, {"step": 2})
    tensors, state = checkpoints.read_checkpoint(folder)
    assert state["step"] == 1 and torch.equal(tensors["unet"]["w"], torch.ones(3))
    assert not folder.with_name("checkpoint.tmp").exists()


def test_two_cpu_processes_train_one_model_and_stop_together(small_data, tmp_path, torchrun):
    out = tmp_path / "ddp"
    # 127 images: the two ranks' latent shards differ in size (64 and 63).
    args = [
        "train",
        "--data",
        str(small_data),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--quiet",
        "--set",
        "max_images=127",
    ]
    # A budget that runs out mid-training: the ranks see the deadline at different moments, and
    # must still stop at the same step (else one waits forever in the next all-reduce).
    first = torchrun(*args, "--hours", "0.0005", timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    state = json.loads((out / "training" / "checkpoint" / "state.json").read_text())
    assert state["stage"] in ("vae", "unet")  # the budget stopped it before the end
    assert not is_trained(out)  # a snapshot, not a finished run: the experiments' caches train on
    done = torchrun(*args, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("saved pipeline to") == 1  # one report, not one per process
    s = training_summary(out)
    assert s["processes"] == 2  # one process group, not two models trained side by side
    assert "in 2 processes (`torchrun --nproc-per-node 2" in (out / "README.md").read_text()  # the card
    assert s["steps"] == {"vae": 15, "unet": 30} and s["finished"] and is_trained(out)
    assert s["samples_seen"]["unet"] == 30 * train_preset("tiny").unet_batch  # the global batch, split
    # Each rank encoded half the latents: gathered, they are every image's, in dataset order.
    config = dataclasses.replace(train_preset("tiny"), max_images=127)
    images, _, _ = load_images(small_data, config, progress=False)
    vae = AutoencoderKL.from_pretrained(out / "vae").eval()
    with torch.no_grad():
        want = vae.encode(to_model_range(images)).latent_dist.mean
    cached = load_file(out / "training" / "latents.safetensors")["mean"]
    assert cached.shape == want.shape
    torch.testing.assert_close(cached, want, atol=1e-4, rtol=1e-4)


def test_latent_shards_cover_the_images_in_order_or_refuse_an_empty_one():
    for n, processes in ((10, 1), (10, 2), (10, 3), (7, 4), (2, 2)):
        covered = [i for k in range(processes) for i in range(n)[latent_shard(n, processes, k)]]
        assert covered == list(range(n)), (n, processes)
    for n, processes in ((5, 4), (1, 2)):  # 5 over 4: shards of 2, 2, 1 and none
        with pytest.raises(OriginalityError, match="use fewer processes"):
            latent_shard(n, processes, 0)


def test_a_folder_without_a_training_run_has_no_summary(tmp_path):
    assert training_summary(tmp_path) is None and not is_trained(tmp_path)


def test_a_carried_run_continues_on_another_machine_from_weights_alone(tiny_model, small_data, tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, vae_from=str(tiny_model), latent_scaling="vae", unet_epochs=2)
    carry = tmp_path / "carry"
    Trainer(config, small_data, tmp_path / "here", progress=False, carry=carry).run(stop_after_steps=12)
    carried = {p.name for p in carry.iterdir()}
    assert carried == {"ema.safetensors", "state.json"}  # no optimizer moments, no raw weights, no VAE
    state = json.loads((carry / "state.json").read_text())
    assert state["step"] == 12 and "optimizer_meta" not in state
    ema = load_file(carry / "ema.safetensors")
    # "Another machine": a new --out holding nothing but what was carried.
    warm_from = []
    trainer = Trainer(config, small_data, tmp_path / "there", progress=False, carry=carry)
    real = trainer._optimise

    def spy(loss, model, optimizer, step, lr):
        warm_from.append(trainer._warm_from)
        return real(loss, model, optimizer, step, lr)

    trainer._optimise = spy
    out = trainer.run()
    s = training_summary(out)
    assert s["steps"]["unet"] == 32 and s["samples_seen"]["unet"] == 32 * 8  # 12 carried + 20 here
    assert set(warm_from) == {12}  # fresh AdamW moments warm up again from the carried step
    assert json.loads((carry / "state.json").read_text())["step"] == 32
    assert not all(torch.equal(ema[k], v) for k, v in load_file(carry / "ema.safetensors").items())
    # The VAE's own scaling: two UNets on one frozen VAE share one latent space.
    source = AutoencoderKL.from_pretrained(tiny_model / "vae")
    assert s["scaling_factor"] == pytest.approx(source.config.scaling_factor)
    other = dataclasses.replace(config, seed=5)
    with pytest.raises(OriginalityError, match="other settings"):
        Trainer(other, small_data, tmp_path / "elsewhere", progress=False, carry=carry).run()


def test_latent_scaling_and_caption_dropout_are_checked(tiny_config):
    with pytest.raises(OriginalityError, match="needs a pretrained VAE"):
        dataclasses.replace(tiny_config, latent_scaling="vae")
    with pytest.raises(OriginalityError, match="latent_scaling"):
        with_overrides(tiny_config, {"vae_from": "shipped", "latent_scaling": "data"})
    with pytest.raises(OriginalityError, match="caption_dropout"):
        with_overrides(tiny_config, {"caption_dropout": 1.5})
