import io

import numpy as np
import pytest
from PIL import Image

from originality.errors import OriginalityError
from originality.shapes.captions import parse_caption
from originality.shapes.dataset import read_table
from originality.shapes.queries import check_not_in_training, make_queries, render_query


def test_queries_hold_their_groups_pair_and_are_reproducible():
    for group, shapes in [("common", {"circle", "square"}), ("rare", {"circle", "triangle"}),
                          ("unseen", {"square", "triangle"})]:  # fmt: skip
        image, text = render_query(group, 3, seed=11)
        again, _ = render_query(group, 3, seed=11)
        assert {e.shape for e in parse_caption(text)} == shapes
        assert np.array_equal(np.asarray(image), np.asarray(again))
        other, _ = render_query(group, 4, seed=11)
        assert not np.array_equal(np.asarray(image), np.asarray(other))


def test_a_query_equal_to_a_training_image_is_refused(tiny_data, tmp_path):
    rows = make_queries(tmp_path, queries=2, seed=7, size=32)
    assert [r["group"] for r in rows] == ["common", "rare", "unseen"] * 2  # a stopped run scored groups evenly
    assert check_not_in_training(tmp_path, rows, tiny_data) > 0  # common captions were compared
    record = next(r for r in read_table(tiny_data).to_pylist() if r["component"] == "common")
    Image.open(io.BytesIO(record["image"]["bytes"])).save(tmp_path / rows[0]["image"])
    rows[0]["caption"] = record["caption"]
    with pytest.raises(OriginalityError, match="is a training image"):
        check_not_in_training(tmp_path, rows, tiny_data)
