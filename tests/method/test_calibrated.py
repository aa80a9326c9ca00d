"""The familiarity verdict in training frequency (a model's familiarity-calibration.json)."""

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from originality.batch import score_all
from originality.cli import main
from originality.errors import OriginalityError
from originality.method.calibrated import CALIBRATION, FrequencyCalibration
from originality.method.query_reading import QueryReading
from originality.method.search import score_preset
from originality.method.signals import SignalConfig
from originality.method.typicality import CHECK_FILE
from originality.models import load_pipeline
from originality.models.pipeline import save_pipeline
from originality.scorer import Scorer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines import tiny_clip_pipeline  # noqa: E402


def calibration(measure="unconditional_loss", grid=None, **extra) -> dict:
    return {
        "measure": measure,
        "needs": "nothing",
        "log10_frequency": {"intercept": -2.0, "slope": -1.0},
        "interval": {"low": -0.5, "high": 0.5, "level": 0.9},
        "range": [1e-4, 0.0215],
        "held_out_coverage": 0.9,
        "grid": SignalConfig().to_dict() if grid is None else grid,
        **extra,
    }


def test_the_verdict_maps_a_value_to_a_share_of_the_training_images(tmp_path):
    (tmp_path / CALIBRATION).write_text(json.dumps(calibration()))
    cal = FrequencyCalibration.load(tmp_path)
    inside = cal.verdict(0.0)  # log10 f = -2: 1%
    assert inside["frequency"] == pytest.approx(0.01) and inside["where"] == "inside"
    assert inside["interval"] == pytest.approx([10**-2.5, 10**-1.5])
    assert inside["statement"] == "about as familiar as a pair in 1% [0.32%, 3.2%] of its training images"
    assert cal.verdict(5.0)["where"] == "below" and "rarest" in cal.verdict(5.0)["statement"]
    assert cal.verdict(-1.0)["where"] == "above"  # 10%: past the most common level it saw
    assert FrequencyCalibration.load(tmp_path / "nothing-here") is None


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"interval": {"low": math.nan, "high": 0.5, "level": 0.9}}, "not finite"),
        ({"range": [0.5, 0.1]}, "out of order"),
        ({"log10_frequency": "steep"}, "not a familiarity calibration"),
    ],
)
def test_a_damaged_calibration_is_refused(tmp_path, damage, message):
    (tmp_path / CALIBRATION).write_text(json.dumps(calibration(**damage)))
    with pytest.raises(OriginalityError, match=message):
        FrequencyCalibration.load(tmp_path)


@pytest.fixture
def calibrated_model(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / CALIBRATION).write_text(json.dumps(calibration()))
    return model


def drawn(path):
    image = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(image).ellipse((6, 6, 20, 20), fill="red")
    image.save(path)
    return path


READ = QueryReading(
    readable=True, elements=[{"element": "big red full circle", "box": [6.0, 6.0, 20.0, 20.0], "confidence": 0.99}]
)


def test_a_calibrated_model_says_how_common_the_query_is(calibrated_model, tmp_path, monkeypatch):
    monkeypatch.setattr(Scorer, "read", lambda self, image, domain, prompt=None: READ)
    config = score_preset("quick", signals="fast", reference_samples=2, inference_steps=2)
    (record,) = score_all(drawn(tmp_path / "a.png"), load_pipeline(calibrated_model), config, tmp_path / "o",
                          progress=False)  # fmt: skip
    value = record["signals"]["unconditional_loss"]
    assert record["calibrated"]["frequency"] == pytest.approx(10 ** (-2.0 - value))
    result = json.loads((tmp_path / "o" / record["folder"] / "result.json").read_text())
    assert result["familiarity"]["calibrated"]["statement"] == record["calibrated"]["statement"]
    assert "In training frequency" in (tmp_path / "o" / record["folder"] / "report.html").read_text()


def test_no_verdict_where_the_measure_was_read_otherwise(calibrated_model, tmp_path):
    (calibrated_model / CALIBRATION).write_text(json.dumps(calibration(grid={**SignalConfig().to_dict(), "seed": 7})))
    config = score_preset("quick", signals="fast", reference_samples=2, inference_steps=2)
    pipeline = load_pipeline(calibrated_model)
    (record,) = score_all(drawn(tmp_path / "a.png"), pipeline, config, tmp_path / "o1", progress=False)
    assert "calibrated" not in record  # another grid
    (calibrated_model / CALIBRATION).write_text(json.dumps(calibration("guidance_gap")))
    pipeline = load_pipeline(calibrated_model)
    (record,) = score_all(drawn(tmp_path / "b.png"), pipeline, config, tmp_path / "o2", progress=False, prompt="red")
    assert "calibrated" not in record  # fitted on the reading, read here with the user's prompt


def test_no_verdict_for_a_query_flagged_as_drawn_otherwise_or_read_only_by_force(calibrated_model, monkeypatch):
    # The rule: a calibration fitted on rendered pairs says nothing of a query the typicality
    # check flags, or of one scored under --force although unreadable (it once said both).
    config = score_preset("quick", signals="fast", reference_samples=2, inference_steps=2, force=True)
    query = Image.open(drawn(calibrated_model / "q.png"))
    monkeypatch.setattr(Scorer, "read", lambda self, image, domain, prompt=None: READ)
    assert Scorer(load_pipeline(calibrated_model), config).score(query).familiarity["calibrated"] is not None
    grid = SignalConfig(timesteps=3, t_max=200).to_dict()
    check = {"statistic": "rerender_low_t", "threshold": 1e-6, "grid": grid}  # flags every query
    (calibrated_model / CHECK_FILE).write_text(json.dumps(check))
    familiarity = Scorer(load_pipeline(calibrated_model), config).score(query).familiarity
    assert familiarity["typicality"]["flagged"] and familiarity["calibrated"] is None
    (calibrated_model / CHECK_FILE).unlink()
    unreadable = QueryReading(readable=False, elements=[], reason="no element read")
    monkeypatch.setattr(Scorer, "read", lambda self, image, domain, prompt=None: unreadable)
    familiarity = Scorer(load_pipeline(calibrated_model), config).score(query).familiarity
    assert familiarity["signals"] and familiarity["calibrated"] is None


def test_a_background_model_adds_the_likelihood_ratio_and_another_vae_is_refused(tiny_model, tmp_path, capsys):
    drawn(tmp_path / "q.png")
    argv = ["score", str(tmp_path / "q.png"), "--model", str(tiny_model), "--signals", "fast", "--quiet", "--force",
            "--reference-samples", "2", "--inference-steps", "2"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "o"), "--background-model", str(tiny_model)]) == 0
    record = json.loads((tmp_path / "o" / "results.jsonl").read_text())
    assert record["signals"]["likelihood_ratio"] == pytest.approx(0.0, abs=1e-6)  # the same model twice
    other = load_pipeline(tiny_model)
    with torch.no_grad():
        for p in other.vae.parameters():
            p.add_(0.01)
    save_pipeline(other, tmp_path / "other-vae")
    assert main([*argv, "--out", str(tmp_path / "o2"), "--background-model", str(tmp_path / "other-vae")]) == 2
    assert "another VAE than the model" in capsys.readouterr().err


def test_a_pipeline_built_in_memory_reads_no_calibration_from_the_working_directory(tmp_path, monkeypatch):
    """Before, a pipeline without a folder read one from Path(""), the working directory."""
    (tmp_path / CALIBRATION).write_text(json.dumps(calibration()))
    monkeypatch.chdir(tmp_path)
    pipeline = tiny_clip_pipeline(tmp_path / "pipe")
    assert FrequencyCalibration.load(tmp_path) is not None  # a valid calibration lies there
    assert Scorer(pipeline, score_preset("quick")).calibration is None
