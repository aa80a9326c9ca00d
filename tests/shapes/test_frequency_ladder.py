import itertools
from collections import Counter

import numpy as np
import pytest

from originality.errors import OriginalityError
from originality.shapes import frequency_ladder as fl
from originality.shapes import preset
from originality.shapes.dataset import make_dataset, read_table, render_example
from originality.shapes.specs import DatasetSpec, frequency_background, frequency_ladder
from originality.shapes.statistics import check_statistics, compute_statistics, dataset_report, pair_key
from originality.shapes.vocabulary import COLOURS, SHAPES

SMALL_COPIES = (1, 2, 3, 4, 6)  # the duplication ladder at a size a 12K-image test holds
N = 12_000


def test_levels_are_log_spaced_with_exactly_one_and_a_tenth_percent_and_never():
    rates = fl.LEVELS
    assert len(rates) >= 8 and rates[-1] == 0.0
    assert 0.01 in rates and 0.001 in rates and min(r for r in rates if r) == pytest.approx(1e-4)
    ratios = [a / b for a, b in itertools.pairwise(rates[:-1])]
    assert ratios == pytest.approx([10 ** (1 / 3)] * len(ratios))
    assert [fl.level_name(r) for r in (rates[0], 0.01, 0.001, 0.0)] == ["2.15%", "1%", "0.1%", "0%"]


def test_each_level_holds_every_shape_twice_and_colours_evenly_and_no_pair_twice():
    levels = fl.ladder_pairs()
    assert len(levels) == len(fl.LEVELS) and all(len(p) == fl.PAIRS_PER_LEVEL for p in levels)
    for pairs in levels:
        elements = [e for p in pairs for e in p]
        assert Counter(e.shape for e in elements) == dict.fromkeys(SHAPES, 2)
        assert sorted(Counter(e.colour for e in elements).values()) == [3, 3, 4]
        assert len(set(elements)) == len(elements)  # an element at most once per level
        assert all(a != b for a, b in pairs)
    every = [frozenset(p) for pairs in levels for p in pairs]
    assert len(set(every)) == len(every)
    per_element = Counter(e for pairs in levels for p in pairs for e in p)
    assert set(per_element.values()) == {6} and len(per_element) == len(SHAPES) * len(COLOURS)
    # Colours spread over the levels: each colour is the four-slot one at three levels.
    rich = [Counter(e.colour for p in pairs for e in p).most_common(1)[0][0] for pairs in levels]
    assert Counter(rich) == dict.fromkeys(COLOURS, 3)
    assert fl.ladder_pairs() == levels  # seeded: the same design on every machine


def test_copied_pairs_lie_outside_the_ladder():
    ladder = {frozenset(p) for pairs in fl.ladder_pairs() for p in pairs}
    copied = [frozenset(p) for pairs in fl.copied_pairs() for p in pairs]
    assert len(copied) == len(fl.COPIES) * fl.IMAGES_PER_COPY_LEVEL == len(set(copied))
    assert not ladder & set(copied)


@pytest.fixture(scope="module")
def ladder_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder")
    return make_dataset(frequency_ladder(SMALL_COPIES), N, root / "ladder", seed=2, progress=False)


def test_the_ladder_dataset_holds_every_rate_exactly(ladder_data):
    report = dataset_report(ladder_data)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    exact = report["statistics"]["exact_pairs"]
    for rate, pairs in zip(fl.LEVELS, fl.ladder_pairs(), strict=True):
        for pair in pairs:
            assert exact.get(pair_key(list(pair)), 0.0) == round(rate * N) / N
    for k, pairs in zip(SMALL_COPIES, fl.copied_pairs(), strict=True):
        assert all(exact[pair_key(list(p))] == k / N for p in pairs)
    counts = frequency_ladder(SMALL_COPIES).plan_counts(N)
    shares = {0: counts["empty"], 1: sum(counts["filler"].values()), 2: sum(counts["planned"])}
    assert report["statistics"]["element_counts"] == {k: v / N for k, v in shares.items()}
    per_element = Counter(
        e["shape"] + e["colour"] for r in read_table(ladder_data, ["elements"]).to_pylist() for e in r["elements"]
    )
    assert max(per_element.values()) - min(per_element.values()) <= 1  # balanced to one image


def test_copies_are_one_image_and_fresh_renders_are_not(ladder_data):
    rows = read_table(ladder_data, ["image", "component", "caption"]).to_pylist()
    copies = [r for r in rows if r["component"] == "copies x6"]
    by_pair = Counter()
    images: dict[str, set[bytes]] = {}
    for r in copies:
        key = " + ".join(sorted(r["caption"].split(" and ")))
        by_pair[key] += 1
        images.setdefault(key, set()).add(r["image"]["bytes"])
    assert set(by_pair.values()) == {6} and all(len(v) == 1 for v in images.values())
    fresh = [r["image"]["bytes"] for r in rows if r["component"] == "ladder 2.15%"]
    assert len(set(fresh)) == len(fresh)


def test_the_checks_catch_a_count_off_by_one(ladder_data):
    spec = frequency_ladder(SMALL_COPIES)
    rows = read_table(ladder_data, ["component", "elements"]).to_pylist()
    victim = next(i for i, r in enumerate(rows) if r["component"] == "ladder 1%")
    rows[victim] = {"component": "filler", "elements": rows[victim]["elements"][:1]}
    failed = {c.name for c in check_statistics(rows, spec) if not c.ok}
    assert "ladder 1% images" in failed and "filler images" in failed


def test_the_background_holds_every_pair_at_one_share_and_no_copies(tmp_path):
    out = make_dataset(frequency_background(SMALL_COPIES), N, tmp_path / "bg", seed=2, progress=False)
    report = dataset_report(out)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    exact = report["statistics"]["exact_pairs"]
    ladder = [pair_key(list(p)) for pairs in fl.ladder_pairs() for p in pairs]
    assert {exact[k] for k in ladder} == {round(fl.PAIRS_PER_LEVEL * sum(fl.LEVELS) / 45 * N) / N}
    # The pair images fill the same share as in the ladder mix (to rounding).
    ladder_share = sum(round(r * N) for r in fl.LEVELS) * fl.PAIRS_PER_LEVEL
    assert abs(sum(exact[k] for k in ladder) * N - ladder_share) <= 45
    fresh = [
        r["image"]["bytes"] for r in read_table(out, ["image", "component"]).to_pylist() if r["component"] == "fresh x6"
    ]
    assert len(fresh) == 6 * fl.IMAGES_PER_COPY_LEVEL == len(set(fresh))


def test_planned_specs_refuse_what_they_cannot_hold():
    spec = preset("frequency-ladder")
    with pytest.raises(OriginalityError, match="too small"):
        spec.plan_counts(2_000)
    with pytest.raises(OriginalityError, match="plans its images"):
        spec.sample(np.random.default_rng(0))
    with pytest.raises(OriginalityError, match="plans its images"):
        render_example(spec, 0, 0, 64)
    with pytest.raises(OriginalityError, match="one of fraction or count"):
        DatasetSpec.from_dict({"name": "x", "planned": [{"name": "a", "elements": ["big red full circle"]}]})
    with pytest.raises(OriginalityError, match="outside the spanning set"):
        DatasetSpec.from_dict(
            {
                "name": "x",
                "sizes": ["big"],
                "planned": [{"name": "a", "elements": ["small red full circle"], "count": 1}],
            }
        )
    # One element too common for balanced filler to catch up with.
    lopsided = DatasetSpec.from_dict(
        {
            "name": "x",
            "shapes": ["circle", "square"],
            "colours": ["red"],
            "sizes": ["big"],
            "textures": ["full"],
            "planned": [{"name": "a", "elements": ["big red full circle"], "fraction": 0.8}],
        }
    )
    with pytest.raises(OriginalityError, match="big red full circle is in 800"):
        lopsided.plan_counts(1_000)


def test_a_planned_spec_round_trips_and_others_keep_their_old_form():
    spec = preset("frequency-ladder")
    again = DatasetSpec.from_dict(spec.to_dict())
    assert again.plan(30_000, 1).tolist() == spec.plan(30_000, 1).tolist()
    assert "planned" not in preset("originality-mix").to_dict()


def test_exact_pairs_count_images_of_two_elements_only():
    rows = [
        {
            "component": "a",
            "elements": [
                {"shape": "circle", "colour": "red", "size": "big", "texture": "full"},
                {"shape": "square", "colour": "blue", "size": "big", "texture": "full"},
            ],
        },
        {
            "component": "a",
            "elements": [
                {"shape": "square", "colour": "blue", "size": "big", "texture": "full"},
                {"shape": "circle", "colour": "red", "size": "big", "texture": "full"},
                {"shape": "star", "colour": "red", "size": "big", "texture": "full"},
            ],
        },
    ]
    stats = compute_statistics(rows)
    assert stats["exact_pairs"] == {"big blue full square + big red full circle": 0.5}
    assert stats["pairs"]["circle+square"] == 1.0
