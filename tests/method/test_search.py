import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from originality.domains import load_domain
from originality.errors import OriginalityError
from originality.method.search import score, score_preset, soft_tokens
from originality.models import load_pipeline
from originality.scorer import save_result


def query() -> Image.Image:
    image = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(image).rectangle((4, 4, 14, 14), fill=(20, 40, 220))
    return image


class PassFrom:
    """A distance that fails until call number ``k`` (1-based), then passes."""

    def __init__(self, k: int):
        self.k, self.calls = k, 0

    def __call__(self, query, samples):
        self.calls += 1
        return np.full(len(samples), 0.0 if self.calls >= self.k else 1.0)


def tiny_config(**kw):
    return score_preset(
        "quick", inversion_steps=2, batch_size=2, samples=2, inference_steps=2, check=None, signals="none", **kw
    )


def test_early_exit_stops_at_the_first_passing_m(tiny_model, tmp_path):
    pipeline = load_pipeline(tiny_model)
    distance = PassFrom(2)
    result = score(query(), pipeline, tiny_config(), "shapes", distance=distance)
    assert result.count == 2 and result.label == "2" and distance.calls == 2
    assert [t.m for t in result.per_m] == [1, 2]
    # In memory: the learned vectors and the samples of each m, nothing on disk yet.
    assert sorted(result.learned) == [1, 2] and result.learned[2].shape[0] == 2
    assert [len(result.samples[m]) for m in (1, 2)] == [2, 2]
    assert "learned" not in result.to_dict() and "samples" not in result.to_dict()
    save_result(result, query(), tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert torch.equal(load_file(tmp_path / "embeddings" / "learned_embeds_m2.safetensors")["<s*>"], result.learned[2])
    assert saved["label"] == "2" and saved["per_m"][0]["passed"] is False
    assert load_file(tmp_path / "embeddings" / "learned_embeds_m2.safetensors")["<s*>"].shape[0] == 2
    assert (tmp_path / "samples" / "m1.png").is_file()


def test_full_curve_runs_every_m_and_plus_when_none_passes(tiny_model):
    pipeline = load_pipeline(tiny_model)
    full = score(query(), pipeline, tiny_config(full_curve=True, max_tokens=3), distance=PassFrom(2))
    assert [t.m for t in full.per_m] == [1, 2, 3] and full.count == 2
    never = score(query(), pipeline, tiny_config(max_tokens=2), distance=PassFrom(99))
    assert never.count is None and never.label == "+" and never.soft_tokens == 3.0


def test_an_element_distance_records_why_each_sample_differs(tiny_model, tmp_path):
    from originality.detection.detector import Detection
    from originality.method.distances import ElementsDistance
    from originality.shapes import Element

    class FirstImageHasASquare:  # the query reads as a square, every sample as nothing
        threshold = 0.5

        def detect(self, images, **kw):
            square = Detection(Element("square", "blue"), (4, 4, 14, 14), 1.0)
            return [[square] if i == 0 else [] for i in range(len(images))]

    distance = ElementsDistance(FirstImageHasASquare())
    result = score(query(), load_pipeline(tiny_model), tiny_config(max_tokens=1), distance=distance)
    save_result(result, query(), tmp_path)
    assert result.per_m[0].why == ["nothing read", "nothing read"] and result.label == "+"
    assert json.loads((tmp_path / "result.json").read_text())["per_m"][0]["why"] == ["nothing read"] * 2


def test_soft_tokens_interpolates_the_threshold_crossing():
    assert soft_tokens([(1, 0.2, True)], 0.5, 5) == 1.0
    assert soft_tokens([(1, 0.9, False), (2, 0.1, True)], 0.5, 5) == pytest.approx(1.5)
    assert soft_tokens([(1, 0.9, False), (2, 0.8, False), (3, 0.4, True)], 0.5, 5) == pytest.approx(2.75)
    assert soft_tokens([(1, 0.9, False)], 0.5, 1) == 2.0


def test_bad_settings():
    with pytest.raises(OriginalityError, match="M \\(max tokens\\) must be >= 1"):
        score_preset("quick", max_tokens=0)
    with pytest.raises(OriginalityError, match="unknown scoring preset"):
        score_preset("slow")


def test_the_shapes_distance_and_check_read_samples_at_the_configured_confidence():
    from originality.method.search import shapes_detector

    shapes = load_domain("shapes")
    assert shapes_detector(score_preset("quick", distance="ssim", check=None).resolve(shapes)) is None
    detector = shapes_detector(score_preset("quick", detector_threshold=0.7).resolve(shapes))
    assert detector.threshold == 0.7
    with pytest.raises(OriginalityError, match="detector threshold"):
        score_preset("quick", detector_threshold=0)


def test_the_distance_and_check_of_one_m_share_one_detector_pass():
    from originality.method.search import LastCallCache

    class Counting:
        threshold = 0.5

        def __init__(self):
            self.calls = 0

        def detect(self, images, **kw):
            self.calls += 1
            return [[] for _ in images]

    inner = Counting()
    cached = LastCallCache(inner)
    images = [Image.new("RGB", (8, 8)) for _ in range(3)]
    cached.detect(images)
    cached.detect(list(images))  # same images: no second pass
    assert inner.calls == 1 and cached.threshold == 0.5
    cached.detect(images[:2])
    cached.detect(images, threshold=0.9)
    assert inner.calls == 3
