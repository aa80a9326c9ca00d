import json

import numpy as np
import pytest

from originality.errors import OriginalityError
from originality.shapes import list_presets, load_spec, preset
from originality.shapes.specs import DatasetSpec


def test_every_preset_builds_and_validates():
    names = list_presets()
    assert "originality-mix" in names and "ladder-60-small-empty" in names
    for name in names:
        spec = preset(name)
        assert spec.name == name
        assert set(spec.held_out_elements) <= set(spec.spanning_set)


def test_ladder_grows_from_four_to_sixty_elements_and_holds_out_the_blue_circle():
    sizes = [len(preset(f"ladder-{lv}-big-full").spanning_set) for lv in (4, 6, 9, 15, 30, 60)]
    assert sizes == [4, 6, 9, 15, 30, 60]
    held = {preset(f"ladder-4-{v}").held_out[0] for v in ("big-full", "big-empty", "small-full", "small-empty")}
    assert held == {
        "big blue full circle",
        "big blue empty circle",
        "small blue full circle",
        "small blue empty circle",
    }


def test_originality_mix_samples_follow_its_rules():
    spec = preset("originality-mix")
    rng = np.random.default_rng(0)
    for _ in range(3000):
        component, elements, _ = spec.sample(rng)
        shapes = [e.shape for e in elements]
        assert not {"square", "triangle"} <= set(shapes)
        if component == "rest":
            assert 1 <= len(elements) <= 4
            assert sum(s in ("circle", "square", "triangle") for s in shapes) <= 1
        assert all(e.size == "big" and e.texture == "full" for e in elements)


def test_rarer_mix_differs_from_the_mix_only_in_the_rare_fraction():
    mix, rarer = preset("originality-mix"), preset("originality-mix-rarer")
    assert [(c.name, c.fraction) for c in rarer.components] == [("common", 0.3), ("rare", 0.0001)]
    assert mix.components[1].fraction == 0.001 and "0.1%" in mix.description and "0.01%" in rarer.description
    same = {k: v for k, v in mix.to_dict().items() if k not in ("name", "components", "description")}
    assert same == {k: v for k, v in rarer.to_dict().items() if k not in ("name", "components", "description")}


def test_spec_files_load_from_json_and_yaml_with_a_base(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"base": "originality-mix", "name": "mine", "empty_fraction": 0.2}))
    (tmp_path / "s.yaml").write_text("name: y\nshapes: [circle, star]\ncolours: [red]\nmax_elements: 2\n")
    spec = load_spec(tmp_path / "s.json")
    assert spec.name == "mine" and spec.empty_fraction == 0.2 and spec.components[0].name == "common"
    assert load_spec(tmp_path / "s.yaml").shapes == ["circle", "star"]
    assert DatasetSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "x", "colour": ["red"]}, "unknown spec key 'colour'"),
        ({"name": "x", "colours": ["purple"]}, "unknown colour 'purple'"),
        ({"name": "x", "shapes": ["circle"], "held_out": ["big red full square"]}, "not in the spanning set"),
        (
            {"name": "x", "empty_fraction": 0.5, "components": [{"name": "a", "fraction": 0.6, "shapes": ["star"]}]},
            "add up to 1.1",
        ),
        ({"name": "x", "max_elements": 0}, "max_elements must be an integer >= 1"),
        ({"name": "x", "components": [{"name": "a", "fraction": 0.1, "shape": ["star"]}]}, "unknown component key"),
        ({"empty_fraction": 0.1}, "needs a 'name'"),
    ],
)
def test_bad_specs_give_one_line_errors(data, message):
    with pytest.raises(OriginalityError, match=message) as info:
        DatasetSpec.from_dict(data)
    assert "\n" not in str(info.value)


def test_unknown_preset_and_unparsable_file(tmp_path):
    with pytest.raises(OriginalityError, match="unknown spec preset 'nope'"):
        load_spec("nope")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(OriginalityError, match="cannot parse spec file"):
        load_spec(tmp_path / "bad.yaml")
    with pytest.raises(OriginalityError, match="spec file not found"):
        load_spec(tmp_path / "missing.json")
