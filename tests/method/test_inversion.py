import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from originality.errors import OriginalityError
from originality.method.inversion import (
    InversionSettings,
    add_placeholders,
    denoising_loss,
    encode_prompts,
    image_latents,
    initial_vector,
    invert,
    placeholder_phrase,
    save_embeddings,
    set_embeddings,
    shifted_views,
)
from originality.models import load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipelines import tiny_clip_pipeline  # noqa: E402


def query(side: int = 32) -> Image.Image:
    image = Image.new("RGB", (side, side), "white")
    from PIL import ImageDraw

    ImageDraw.Draw(image).ellipse((4, 4, 16, 16), fill=(220, 20, 20))
    return image


@pytest.fixture(params=["bert", "clip"])
def make_pipeline(request, tiny_model, tmp_path):
    """A factory of identical fresh pipelines: our BERT-based tiny model, or a tiny CLIP-based SD."""
    if request.param == "bert":
        return lambda: load_pipeline(tiny_model)
    return lambda: tiny_clip_pipeline(tmp_path, seed=0)


@pytest.fixture
def pipeline(make_pipeline):
    return make_pipeline()


def snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_only_the_new_embedding_rows_change(pipeline):
    ids = add_placeholders(pipeline, 3)
    old = pipeline.text_encoder.get_input_embeddings().weight.detach().clone()
    before = {name: snapshot(getattr(pipeline, name)) for name in ("unet", "vae", "text_encoder")}
    settings = InversionSettings(steps=5, batch_size=4, lr=1e-2, initializer="big", templates=("a photo of {}",))
    result = invert(pipeline, query(), 3, settings)
    assert result.embeddings.shape == (3, pipeline.text_encoder.config.hidden_size)
    init = pipeline.text_encoder.get_input_embeddings().weight[
        pipeline.tokenizer("big", add_special_tokens=False).input_ids[0]
    ]
    assert not torch.allclose(result.embeddings[0], init)  # learned something
    for name, state in before.items():  # the frozen model is untouched
        after = getattr(pipeline, name).state_dict()
        assert all(torch.equal(state[k], after[k]) for k in state), name
    set_embeddings(pipeline, result.embeddings)
    table = pipeline.text_encoder.get_input_embeddings().weight
    changed = (table != old).any(-1).nonzero().flatten().tolist()
    assert changed == sorted(ids)


def test_the_loss_falls(tiny_model):
    pipeline = load_pipeline(tiny_model)
    settings = InversionSettings(steps=60, batch_size=8, lr=2e-2, initializer="big", seed=1)
    init = initial_vector(pipeline, "big").repeat(2, 1)
    result = invert(pipeline, query(), 2, settings)
    # On one fixed draw of noise and timesteps, so that the comparison is not noise.
    assert denoising_loss(pipeline, query(), result.embeddings) < denoising_loss(pipeline, query(), init)


def test_the_norm_cap_holds_each_vector_within_a_multiple_of_the_vocabulary_mean(tiny_model):
    pipeline = load_pipeline(tiny_model)
    mean = pipeline.text_encoder.get_input_embeddings().weight.detach().norm(dim=1).mean().item()
    settings = InversionSettings(steps=20, batch_size=4, lr=0.5, initializer="big", seed=1)
    free = invert(pipeline, query(), 2, settings).embeddings.norm(dim=1)
    capped = invert(pipeline, query(), 2, dataclasses.replace(settings, norm_cap=1.1)).embeddings.norm(dim=1)
    assert free.max() > 1.1 * mean * 1.05  # a large lr leaves the vocabulary's scale ...
    assert capped.max() <= 1.1 * mean * (1 + 1e-5)  # ... and the cap brings it back


def test_saved_embeddings_load_with_diffusers_and_give_the_same_prompt_embeddings(make_pipeline, tmp_path):
    pipeline = make_pipeline()
    result = invert(pipeline, query(), 2, InversionSettings(steps=3, batch_size=2, lr=1e-2, initializer="big"))
    path = save_embeddings(result, tmp_path / "learned_embeds.safetensors")
    set_embeddings(pipeline, result.embeddings)
    ours = encode_prompts(pipeline, [f"a photo of {placeholder_phrase(2)}"])

    target = make_pipeline()  # fresh: no placeholder tokens yet
    target.load_textual_inversion(str(path))
    prompt = target.maybe_convert_prompt("a photo of <s*>", target.tokenizer)
    assert prompt == f"a photo of {placeholder_phrase(2)}"
    with torch.no_grad():
        assert torch.allclose(encode_prompts(target, [prompt]), ours, atol=1e-5)


def test_shifted_views_move_the_whole_content_on_its_background():
    import numpy as np

    image = query(32)
    views = shifted_views(image, 12, seed=3)
    assert len(views) == 12 and views[0].tobytes() == image.tobytes()  # the query itself comes first
    content = (np.asarray(image) != 255).any(-1).sum()
    offsets = set()
    for view in views:
        pixels = np.asarray(view)
        mask = (pixels != 255).any(-1)
        assert mask.sum() == content  # nothing cut at the frame, nothing added
        ys, xs = np.nonzero(mask)
        offsets.add((int(ys.min()), int(xs.min())))
        corner = pixels[ys.min() : ys.min() + 13, xs.min() : xs.min() + 13]
        assert np.array_equal(corner, np.asarray(image)[4:17, 4:17])  # moved, not redrawn
    assert len(offsets) > 6  # the views differ
    assert shifted_views(image, 12, seed=3)[5].tobytes() == views[5].tobytes()  # seeded


def test_an_image_without_a_plain_border_is_not_shifted():
    import numpy as np

    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    assert all(v.tobytes() == noise.tobytes() for v in shifted_views(noise, 4))


def test_shift_views_invert_on_every_view_and_one_view_changes_nothing(tiny_model):
    pipeline = load_pipeline(tiny_model)
    mean, std = image_latents(pipeline, query(), views=6)
    assert mean.shape[0] == 6 and std.shape[0] == 6
    assert not torch.allclose(mean[0], mean[1])
    assert torch.equal(mean[:1], image_latents(pipeline, query())[0])  # the query's own latents, to the bit
    settings = InversionSettings(steps=4, batch_size=4, lr=1e-2, initializer="big", seed=1)
    plain = invert(pipeline, query(), 1, settings).embeddings
    assert torch.equal(invert(pipeline, query(), 1, dataclasses.replace(settings, shift_views=1)).embeddings, plain)
    shifted = invert(pipeline, query(), 1, dataclasses.replace(settings, shift_views=6)).embeddings
    assert not torch.allclose(shifted, plain)
    one_view = image_latents(pipeline, query())
    with pytest.raises(OriginalityError, match="latents hold 1 views of the query; the settings ask for 6"):
        invert(pipeline, query(), 1, dataclasses.replace(settings, shift_views=6), latents=one_view)


def test_a_phrase_length_repeats_the_m_tokens_and_learns_only_m_vectors(pipeline):
    assert placeholder_phrase(2, 5) == "<s*> <s*>_1 <s*> <s*>_1 <s*>"
    assert placeholder_phrase(3, 2) == placeholder_phrase(3)
    ids = add_placeholders(pipeline, 2)
    tokens = pipeline.tokenizer(placeholder_phrase(2, 5), add_special_tokens=False).input_ids
    assert tokens == [ids[0], ids[1], ids[0], ids[1], ids[0]]
    settings = InversionSettings(steps=4, batch_size=4, lr=1e-2, initializer="big", seed=1, templates=("{}",))
    tiled = invert(pipeline, query(), 2, dataclasses.replace(settings, phrase_length=5)).embeddings
    assert tiled.shape == (2, pipeline.text_encoder.config.hidden_size)
    assert not torch.allclose(tiled, invert(pipeline, query(), 2, settings).embeddings)  # the prompt changed


def test_inverting_on_the_cpu_uses_deterministic_kernels_and_restores_the_setting(tiny_model):
    pipeline = load_pipeline(tiny_model)
    seen = []
    hook = pipeline.unet.register_forward_hook(lambda *_: seen.append(torch.are_deterministic_algorithms_enabled()))
    try:
        invert(pipeline, query(), 1, InversionSettings(steps=2, batch_size=2, lr=1e-2, initializer="big"))
    finally:
        hook.remove()
    # The backward of picking prompt rows by index sums in a thread-timing order on the CPU.
    assert seen == [True, True]
    assert not torch.are_deterministic_algorithms_enabled()


def test_gradient_checkpointing_learns_the_same_vectors_recomputing_the_unet_blocks(tiny_model, monkeypatch):
    pipeline = load_pipeline(tiny_model)
    checkpointed_calls = []
    real = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        checkpointed_calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counting)
    settings = InversionSettings(steps=2, batch_size=2, lr=1e-2, initializer="big")
    plain = invert(pipeline, query(), 1, settings).embeddings
    assert not checkpointed_calls
    checkpointed = invert(pipeline, query(), 1, dataclasses.replace(settings, gradient_checkpointing=True))
    assert checkpointed_calls  # the UNet's blocks ran through torch's checkpoint
    assert torch.allclose(checkpointed.embeddings, plain, atol=1e-6)
    assert not pipeline.unet.is_gradient_checkpointing  # the pipeline is left as it was


def test_bad_inputs(tiny_model):
    pipeline = load_pipeline(tiny_model)
    with pytest.raises(OriginalityError, match="number of tokens must be >= 1"):
        invert(pipeline, query(), 0, InversionSettings(steps=1))
    with pytest.raises(OriginalityError, match="query must be 32x32"):
        invert(pipeline, query(64), 1, InversionSettings(steps=1))


def test_an_m_token_prompt_uses_only_its_m_vectors_whatever_placeholders_exist(make_pipeline):
    """diffusers expands a prompt's ``<s*>`` to every ``<s*>_k`` the tokenizer knows; generation must
    not, or m = 1 after an m = 5 inversion would draw with five vectors (four of them stale)."""
    import numpy as np

    from originality.method.reconstruction import reconstruct

    pipeline = make_pipeline()
    dim = pipeline.text_encoder.get_input_embeddings().weight.shape[1]
    one = torch.randn(1, dim, generator=torch.Generator().manual_seed(0))
    before = reconstruct(pipeline, one, [0, 1], steps=2)
    set_embeddings(pipeline, torch.randn(5, dim, generator=torch.Generator().manual_seed(1)))  # <s*>_1.._4 exist now
    after = reconstruct(pipeline, one, [0, 1], steps=2)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(before, after, strict=True))
