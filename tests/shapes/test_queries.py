import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from originality.errors import OriginalityError
from originality.shapes.captions import parse_caption
from originality.shapes.dataset import read_table
from originality.shapes.queries import check_not_in_training, exact_pair_frequencies, make_queries, render_query
from originality.shapes.specs import originality_mix


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


def test_exact_pair_frequencies_count_the_querys_own_unit_and_tie_symmetric_pairs():
    spec = originality_mix()
    pairs = {"common": ("circle", "square"), "ch": ("circle", "hexagon"), "sh": ("square", "hexagon"),
             "hs": ("hexagon", "star"), "unseen": ("square", "triangle")}  # fmt: skip
    exact = exact_pair_frequencies(spec, pairs)
    rest = 1 - 0.1 - 0.3 - 0.001
    assert exact["common"] == pytest.approx(0.30) and exact["unseen"] == 0.0
    assert exact["ch"] == exact["sh"] == pytest.approx(rest * (0.2 * 0.5 + 0.2 * 0.2) / 4)  # tied exactly
    assert exact["hs"] == pytest.approx(rest * 2 * 0.2 * 0.2 / 4)
    # Drawn as the dataset draws its images, the shares agree.
    rng = np.random.default_rng(0)
    seen: Counter[tuple[str, ...]] = Counter()
    draws = 60_000
    for _ in range(draws):
        _, elements, _ = spec.sample(rng)
        if len(elements) == 2:
            seen[tuple(sorted(e.shape for e in elements))] += 1
    for name, pair in pairs.items():
        assert seen[tuple(sorted(pair))] / draws == pytest.approx(exact[name], abs=0.003), name
