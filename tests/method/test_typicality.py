import numpy as np
import pytest
import torch

from originality.method.query_reading import QueryReading
from originality.method.typicality import canonical_rerender, typicality


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
