import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from originality.errors import OriginalityError
from originality.method.query_reading import QueryReading
from originality.method.search import score_preset
from originality.method.signals import SignalConfig
from originality.method.typicality import CHECK_FILE, TypicalityCheck, canonical_rerender, typicality
from originality.models import load_pipeline
from originality.report.html import familiarity_section
from originality.scorer import Scorer


def test_typicality_is_the_low_noise_loss_over_the_references():
    value = typicality(torch.tensor([2.0, 2.0, 4.0, 4.0]), [1.0, 1.0, 1.0, 1.0], torch.tensor([100, 150, 500, 900]))
    assert value == pytest.approx(2.0)  # only t <= 200 counts: fine detail, not composition


def test_the_canonical_rerender_draws_the_reading_where_it_was_read():
    reading = QueryReading(
        readable=True,
        elements=[{"element": "big red full circle", "box": [10.0, 10.0, 26.0, 26.0], "confidence": 0.99}],
    )
    image = np.asarray(canonical_rerender(reading, 64)).astype(int)
    ys, xs = np.nonzero((255 - image).sum(-1) > 60)
    assert abs(xs.mean() - 18) < 2 and abs(ys.mean() - 18) < 2
    assert image[18, 18, 0] > 150 and image[18, 18, 2] < 100  # red, drawn by the renderer


def check_file(folder, **extra):
    data = {"statistic": "rerender_low_t", "threshold": 1.05, "grid": SignalConfig(timesteps=3, t_max=200).to_dict()}
    (folder / CHECK_FILE).write_text(json.dumps({**data, **extra}))


@pytest.fixture
def checked_model(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    return model


READ = QueryReading(
    readable=True,
    elements=[
        {"element": "big red full circle", "box": [2.0, 2.0, 12.0, 12.0], "confidence": 0.99},
        {"element": "big blue full square", "box": [16.0, 16.0, 28.0, 28.0], "confidence": 0.98},
    ],
)


def pure_colours() -> Image.Image:
    image = Image.new("RGB", (32, 32), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((2, 2, 12, 12), fill=(255, 0, 0))
    draw.rectangle((16, 16, 28, 28), fill=(0, 0, 255))
    return image


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"statistic": "low_t"}, "not 'rerender_low_t'"),
        ({"threshold": "nan"}, "finite"),
        ({"grid": {**SignalConfig().to_dict(), "t_max": 980}}, "t <= 200"),
        ({"grid": {"timesteps": 0}}, "must be >= 1"),
    ],
)
def test_a_damaged_check_is_refused(tmp_path, damage, message):
    check_file(tmp_path, **damage)
    with pytest.raises(OriginalityError, match=message):
        TypicalityCheck.load(tmp_path)


def test_a_flagged_query_is_read_on_its_rerender_and_the_report_says_so(checked_model, monkeypatch):
    assert TypicalityCheck.load(checked_model) is None  # a model without a check: nothing changes
    config = score_preset("quick", signals="fast", reference_samples=2, inference_steps=2)
    plain = Scorer(load_pipeline(checked_model), config)
    monkeypatch.setattr(Scorer, "read", lambda self, image, domain, prompt=None: READ)
    as_drawn = plain.score(pure_colours()).familiarity
    assert "typicality" not in as_drawn

    check_file(checked_model, threshold=1e-6)  # every query is flagged
    scorer = Scorer(load_pipeline(checked_model), config)
    familiarity = scorer.score(pure_colours()).familiarity
    verdict = familiarity["typicality"]
    assert verdict["flagged"] and verdict["value"] > 0 and familiarity["read_on"] == "canonical re-render"
    again = canonical_rerender(READ, 32)
    reread = plain.signal_reader()(again, plain.domain("shapes"), reading=familiarity["prompt"])
    assert familiarity["signals"] == pytest.approx(reread["signals"])  # the re-render's signals, not the query's
    assert familiarity["signals"] != pytest.approx(as_drawn["signals"])
    assert "Drawn unlike this model's training images" in familiarity_section(familiarity)

    check_file(checked_model, threshold=1e6)
    kept = Scorer(load_pipeline(checked_model), config).score(pure_colours()).familiarity
    assert kept["read_on"] == "query" and kept["signals"] == pytest.approx(as_drawn["signals"])
    assert kept["typicality"]["value"] == pytest.approx(verdict["value"])
