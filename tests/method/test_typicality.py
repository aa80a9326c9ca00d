import numpy as np
import pytest
import torch
from PIL import Image

import originality.method.familiarity as familiarity_module
from originality.method.query_reading import QueryReading
from originality.method.search import score_preset
from originality.method.typicality import canonical_rerender, typicality
from originality.models import load_pipeline
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


def test_an_atypical_query_is_read_on_its_rerender_and_gets_no_calibrated_verdict(tiny_model, monkeypatch):
    monkeypatch.setattr(familiarity_module, "THRESHOLD", -1.0)  # every query drawn unlike the model's images
    pipeline = load_pipeline(tiny_model)
    scorer = Scorer(pipeline, score_preset("quick", signals="fast", reference_samples=2, inference_steps=2))
    reading = QueryReading(
        readable=True, elements=[{"element": "big red full circle", "box": [4.0, 4.0, 14.0, 14.0], "confidence": 0.99}]
    )
    monkeypatch.setattr(scorer, "read", lambda image, domain, prompt=None: reading)
    image = Image.new("RGB", (32, 32), "white")
    result = scorer.score(image, name="q")
    read = result.familiarity
    assert read["read_on"] == "canonical re-render of the reading" and read["typicality"]["typical"] is False
    assert read["as_drawn"]["signals"].keys() == read["signals"].keys()
    assert read["as_drawn"]["signals"] != read["signals"]  # a white canvas and a red circle read apart
    assert read["calibrated"] is None
