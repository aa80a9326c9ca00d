"""A signal is one entry: a toy signal added in one place reaches every reader of signals."""

import json

import pytest
from PIL import Image, ImageDraw

from originality.batch import score_all
from originality.errors import OriginalityError
from originality.experiments.signals import MAIN, SignalsConfig, run_signals
from originality.method.search import score_preset
from originality.method.signals import REGISTRY, Signal, SignalConfig, register
from originality.models import load_pipeline

TOY = Signal(
    "toy_twice_unconditional",
    "nothing",
    ("unconditional",),
    lambda raw, w: 2 * (raw["unconditional"] * w).sum(dim=1),
    "twice the unconditional loss (a test's toy)",
    unet_passes=1,
)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(REGISTRY, TOY.name, TOY)  # added in one place, and gone after the test
    return TOY.name


def test_a_toy_signal_reaches_result_json_the_reference_and_the_report(toy, tiny_model, tmp_path):
    image = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(image).ellipse((6, 6, 20, 20), fill="red")
    image.save(tmp_path / "a.png")
    config = score_preset("quick", signals="fast", reference_samples=2, inference_steps=2, force=True)
    (record,) = score_all(tmp_path / "a.png", load_pipeline(tiny_model), config, tmp_path / "out", progress=False)
    assert record["signals"][toy] == pytest.approx(2 * record["signals"]["unconditional_loss"], rel=1e-5)
    assert toy in record["percentiles"]
    result = json.loads((tmp_path / "out" / record["folder"] / "result.json").read_text())
    assert toy in result["familiarity"]["signals"]
    reference = json.loads((tmp_path / "out" / "reference-shapes.json").read_text())
    assert toy in reference["values"] and toy in reference["settings"]["signals"]
    assert "twice the unconditional loss" in (tmp_path / "out" / record["folder"] / "report.html").read_text()


def test_a_reference_cached_before_a_signal_existed_is_drawn_again(tiny_model, tmp_path, monkeypatch):
    image = Image.new("RGB", (32, 32), "white")
    image.save(tmp_path / "a.png")
    config = score_preset("quick", signals="fast", reference_samples=2, inference_steps=2, force=True)
    pipeline = load_pipeline(tiny_model)
    score_all(tmp_path / "a.png", pipeline, config, tmp_path / "out", progress=False)
    monkeypatch.setitem(REGISTRY, TOY.name, TOY)
    image.save(tmp_path / "b.png")  # the same run, one more image: its cached reference lacks the toy
    records = score_all(tmp_path / "b.png", pipeline, config, tmp_path / "out", progress=False)
    record = next(r for r in records if r["image"] == "b.png")
    assert TOY.name in record["percentiles"]  # never silently without the new signal's percentile


def test_a_toy_signal_reaches_the_signals_experiment_summary(toy, tiny_model, tmp_path):
    config = SignalsConfig(
        queries=1,
        size=32,
        groups=MAIN,
        grid_seeds=(0,),
        grid=SignalConfig(timesteps=4, t_min=50, t_max=950, batch_size=4),
        reference_samples=2,
        reference_steps=2,
        bootstrap=10,
    )
    summary = run_signals(tiny_model, tmp_path / "s", config, progress=False)
    assert toy in summary["signals"] and summary["signals"][toy]["group_means"]


def test_a_signal_needs_nothing_or_a_prompt():
    with pytest.raises(OriginalityError, match="needs is one of"):
        register(Signal("bad", "a crystal ball", (), lambda raw, w: raw, "", 1))
