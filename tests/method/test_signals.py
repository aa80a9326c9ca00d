import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.method import signals
from originality.method.familiarity import Reference, build_reference, choose_prompt, load_reference
from originality.method.signals import SignalConfig, compute_signals, percentile, query_latents, signal_grid
from originality.models.pipeline import load_pipeline
from pipelines import tiny_clip_pipeline

SMALL = SignalConfig(timesteps=6, t_min=50, t_max=950, seed=3, batch_size=4)


def shapes_image(colour, box=(6, 6, 20, 20)):
    image = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(image).ellipse(box, fill=colour)
    return image


@pytest.fixture(scope="module")
def pipeline(tiny_model):
    return load_pipeline(tiny_model)


def test_each_signal_is_deterministic_and_the_same_alone_or_batched(pipeline):
    images = [shapes_image("red"), shapes_image("blue", (10, 4, 28, 22))]
    prompts = ["big red full circle", "big blue full circle"]
    grid = signal_grid(pipeline, SMALL)
    latents = query_latents(pipeline, images)
    batched = compute_signals(pipeline, latents, prompts, grid)
    again = compute_signals(pipeline, latents, prompts, signal_grid(pipeline, SMALL))
    assert set(batched) == set(signals.signal_names())  # every registered signal, by default
    for name in ("unconditional_loss", "conditional_loss", "guidance_gap"):
        one = getattr(signals, name)
        alone = np.concatenate([one(pipeline, latents[i : i + 1], prompts[i : i + 1], grid) for i in range(2)])
        np.testing.assert_allclose(alone, batched[name], rtol=1e-5)
        np.testing.assert_array_equal(batched[name], again[name])
    assert batched["unconditional_loss"][0] != batched["unconditional_loss"][1]  # the images differ


def test_the_grid_is_the_same_for_every_query_and_moves_with_its_seed(pipeline):
    a, b = signal_grid(pipeline, SMALL), signal_grid(pipeline, SMALL)
    assert torch.equal(a.noise, b.noise) and torch.equal(a.timesteps, b.timesteps)
    other = signal_grid(pipeline, SignalConfig(**{**SMALL.to_dict(), "seed": 4}))
    assert not torch.equal(a.noise, other.noise)
    assert a.timesteps.tolist() == [50, 230, 410, 590, 770, 950]
    assert len(signal_grid(pipeline, SignalConfig(**{**SMALL.to_dict(), "noises": 2})).timesteps) == 12


def test_the_guidance_gap_is_zero_for_the_empty_prompt(pipeline):
    grid = signal_grid(pipeline, SMALL)
    latents = query_latents(pipeline, [shapes_image("red")])
    out = compute_signals(pipeline, latents, [""], grid)
    assert out["guidance_gap"][0] == pytest.approx(0.0, abs=1e-6)
    assert out["conditional_loss"][0] == pytest.approx(out["unconditional_loss"][0], rel=1e-6)
    assert compute_signals(pipeline, latents, ["big red full circle"], grid)["guidance_gap"][0] > 1e-4


def test_elbo_weights_sum_to_one_and_favour_the_ends_of_the_schedule(pipeline):
    grid = signal_grid(pipeline, SignalConfig(**{**SMALL.to_dict(), "weighting": "elbo"}))
    w = grid.weights()
    assert float(w.sum()) == pytest.approx(1.0) and (w > 0).all()
    assert w[0] > w[2] and w[-1] > w[2]  # log SNR changes fastest near t = 0 and t = T


def test_percentile_is_bounded_and_falls_as_the_signal_rises():
    reference = [0.1, 0.2, 0.3, 0.4]
    values = [percentile(v, reference) for v in (0.0, 0.1, 0.25, 0.4, 0.9)]
    assert values == [100.0, 87.5, 50.0, 12.5, 0.0]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(OriginalityError):
        percentile(0.1, [])


def test_prompt_order_user_then_reading_then_tokens_then_domain():
    shapes = load_domain("shapes")
    image = shapes_image("red")
    assert choose_prompt(image, shapes, user="mine", read=lambda _: "read") == ("mine", "user")
    assert choose_prompt(image, shapes, read=lambda _: "read", tokens=2) == ("read", "reading")
    assert choose_prompt(image, shapes, read=lambda _: None, tokens=2)[1] == "tokens"
    assert choose_prompt(image, shapes) == (shapes.prompt.format(shapes.initializer), "domain")


def test_a_long_prompt_is_truncated_with_a_warning(pipeline):
    grid = signal_grid(pipeline, SMALL)
    latents = query_latents(pipeline, [shapes_image("red")])
    long = " and ".join(["big red full circle"] * 40)
    with pytest.warns(UserWarning, match="truncated"):
        compute_signals(pipeline, latents, [long], grid, ["guidance_gap"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_signals(pipeline, latents, ["big red full circle"], grid, ["guidance_gap"])


def test_bad_inputs_are_one_line_errors(pipeline):
    with pytest.raises(OriginalityError, match="unknown signal"):
        compute_signals(pipeline, query_latents(pipeline, [shapes_image("red")]), None, signal_grid(pipeline, SMALL),
                        ["memorisation"])  # fmt: skip
    with pytest.raises(OriginalityError, match="unknown weighting"):
        SignalConfig(weighting="snr").validate()

    class NoText:
        unet, text_encoder, tokenizer = pipeline.unet, None, None

    with pytest.raises(OriginalityError, match="no empty-prompt path"):
        signal_grid(NoText(), SMALL)


def test_a_reference_is_cached_and_refused_for_another_model(pipeline, tmp_path):
    shapes = load_domain("shapes")
    cache = tmp_path / "reference.json"
    kwargs = dict(config=SMALL, samples=3, steps=2, guidance=3.0, cache=cache, progress=False)
    made = build_reference(pipeline, shapes, model="model-a", **kwargs)
    assert len(made.values["guidance_gap"]) == 3 and made.prompts == ["shapes"] * 3  # no reader: the domain prompt
    assert build_reference(pipeline, shapes, model="model-a", **kwargs).values == made.values  # from the cache
    with pytest.raises(OriginalityError, match="another model"):
        build_reference(pipeline, shapes, model="model-b", **kwargs)
    with pytest.raises(OriginalityError, match="other settings"):
        load_reference(cache, "model-a", {"grid": {}})
    assert isinstance(load_reference(cache, "model-a", made.settings), Reference)


def test_signals_on_a_clip_stable_diffusion_pipeline(tmp_path):
    pipe = tiny_clip_pipeline(tmp_path / "sd")
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    image = Image.new("RGB", (side, side), "white")
    out = compute_signals(pipe, query_latents(pipe, [image]), ["a photo of a house"], signal_grid(pipe, SMALL))
    assert all(np.isfinite(v).all() for v in out.values())


def test_a_reference_is_drawn_until_k_samples_are_read_and_compares_like_with_like(pipeline, tmp_path):
    shapes = load_domain("shapes")
    calls = []

    def every_other(image):  # a reader that reads the 1st, 3rd, 5th ... sample it is shown
        calls.append(image)
        return "big red full circle" if len(calls) % 2 == 1 else None

    reference = build_reference(
        pipeline, shapes, model="m", config=SMALL, samples=3, steps=2, guidance=3.0, read=every_other, progress=False
    )
    assert reference.sources.count("reading") == 3 and reference.drawn == 5 == len(reference.sources)
    assert reference.sources == ["reading", "domain", "reading", "domain", "reading"]
    read = [v for v, s in zip(reference.values["guidance_gap"], reference.sources, strict=True) if s == "reading"]
    # A prompted signal of a read query is placed among the read samples alone; one that needs
    # nothing among every sample drawn; a user's prompt among the read ones (the nearest kind).
    assert reference.comparable("guidance_gap", "reading") == read
    assert reference.comparable("guidance_gap", "user") == read
    assert len(reference.comparable("guidance_gap", "domain")) == 2
    assert reference.comparable("unconditional_loss", "reading") == reference.values["unconditional_loss"]
    top = max(read) + 1.0
    assert reference.percentiles({"guidance_gap": top}, "reading") == {"guidance_gap": 0.0}
    assert reference.used({"guidance_gap": 1.0, "unconditional_loss": 1.0}, "reading") == {
        "guidance_gap": 3,
        "unconditional_loss": 5,
    }
