import json

import pytest

import originality.experiments.positive_control as pc
from originality import runs
from originality.cli import main
from originality.errors import OriginalityError
from originality.experiments.runner import run_experiment
from originality.shapes.dataset import read_table
from originality.shapes.statistics import pair_key


def test_a_model_that_draws_its_training_images_gets_rho_one(tiny_data, tmp_path):
    """Known answer: 'samples' that are the training images themselves have the training rates."""
    out = tmp_path / "run"
    out.mkdir()
    rows = [r for r in read_table(tiny_data, columns=["elements"]).to_pylist() if r["elements"]]
    config = pc.PRESETS["default"]()
    config.data, config.read = str(tiny_data), len(rows)
    runs.write_json(out / "registered.json", pc.register(pc.training_rates(tiny_data), config))
    for i, r in enumerate(rows):
        phrases = sorted(pair_key([e]) for e in r["elements"])
        runs.append_jsonl(out / "samples.jsonl", {"seed": i, "class": "read", "elements": phrases})
    for i in range(10):
        runs.append_jsonl(out / "samples.jsonl", {"seed": -i, "class": "blank", "elements": []})
    summary = pc.summarise(out, config)
    assert summary["samples"]["drawn"] == len(rows) + 10 and summary["samples"]["read"] == len(rows)
    for unit in ("pairs", "elements", "shape_pairs"):
        rates = summary[unit]["rates"]
        assert all(t == pytest.approx(m) for t, m in rates.values()), unit
    assert summary["elements"]["registered"] >= 5 and summary["elements"]["rho"] == pytest.approx(1.0)
    if summary["shape_pairs"]["registered"] >= 2:
        assert summary["shape_pairs"]["rho"] == pytest.approx(1.0)
    assert summary["positive_control"]["rates"] == summary["pairs"]["rates"]
    # A model that draws only the rarest element it was trained on reads as no match.
    rare = min(summary["elements"]["rates"], key=lambda k: summary["elements"]["rates"][k][0])
    (out / "samples.jsonl").unlink()
    for i in range(50):
        runs.append_jsonl(out / "samples.jsonl", {"seed": i, "class": "read", "elements": [rare]})
    flipped = pc.summarise(out, config)
    assert flipped["elements"]["rates"][rare][1] == 1.0 and (flipped["elements"]["rho"] or 0.0) < 0.5


def test_draws_until_read_resumes_where_it_stopped_and_keeps_its_registration(
    tiny_model, tiny_data, tmp_path, monkeypatch
):
    config = pc.PRESETS["quick"]()
    config.model, config.data = str(tiny_model), str(tiny_data)
    config.read, config.max_samples, config.batch, config.inference_steps = 6, 12, 4, 2
    real, calls = pc.generate, []

    def once_then_fail(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pc, "generate", once_then_fail)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(pc.EXPERIMENT, tmp_path / "run", config, progress=False)
    first = runs.read_jsonl(tmp_path / "run" / "samples.jsonl")
    registered = (tmp_path / "run" / "registered.json").read_text()
    assert [r["seed"] for r in first] == [config.seed + i for i in range(4)]
    assert calls[0]["guidance_scale"] == 1.0  # the empty prompt alone
    monkeypatch.setattr(pc, "generate", real)
    summary = run_experiment(pc.EXPERIMENT, tmp_path / "run", config, progress=False)
    records = runs.read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert [r["seed"] for r in records] == [config.seed + i for i in range(len(records))]
    read = sum(r["class"] == "read" for r in records)
    assert read >= config.read or len(records) == config.max_samples
    assert summary["samples"]["drawn"] == len(records) and summary["samples"]["read"] == read
    assert (tmp_path / "run" / "registered.json").read_text() == registered
    assert (tmp_path / "run" / "positive-control.png").stat().st_size > 1000
    assert set(json.loads((tmp_path / "run" / "summary.json").read_text())["positive_control"]) == {
        "rho", "rho_ci", "rates"
    }  # fmt: skip


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    assert main(["experiment", "positive-control", "--out", str(tmp_path / "x"), "--read", "5"]) == 2
    assert "needs --data" in capsys.readouterr().err
    argv = ["experiment", "positive-control", "--out", str(tmp_path / "x"), "--data", str(tmp_path)]
    assert main([*argv, "--detector-threshold", "nan"]) == 2
    assert "--detector-threshold must be in (0, 1)" in capsys.readouterr().err
    assert main([*argv, "--read", "50", "--max-samples", "10"]) == 2
    assert "more than --max-samples" in capsys.readouterr().err
    with pytest.raises(OriginalityError, match="not a shapes dataset"):
        pc.PositiveControlConfig(data=str(tmp_path)).validate()
