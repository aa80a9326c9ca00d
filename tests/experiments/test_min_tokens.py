import dataclasses
import json
import shutil

import pytest

from originality import runs
from originality.errors import OriginalityError
from originality.experiments.min_tokens import (
    EXPERIMENT,
    MinTokensConfig,
    comparable,
    identity,
    summarise,
    training_fractions,
)
from originality.experiments.runner import run_experiment
from originality.method.search import score_preset


def run_min_tokens(model, out, config, training=None):
    """The experiment on the skeleton, as ``originality experiment min-tokens`` runs it."""
    mine = dataclasses.replace(config, model=None if model is None else str(model))
    mine = dataclasses.replace(mine, training_data=None if training is None else str(training))
    return run_experiment(EXPERIMENT, out, mine)


def test_summary_histogram_and_spearman_follow_the_counts(scored):
    config = MinTokensConfig(queries=4, score=score_preset("quick", max_tokens=3))
    rows, records = [], []
    for group, counts in [("common", [1, 1, 1, 2]), ("rare", [2, 3, 2, 3]), ("unseen", [None, None, 3, None])]:
        for i, c in enumerate(counts):
            second = "red" if i % 2 == 0 else "blue"  # one colour, then two
            text = f"big red full circle and big {second} full square"
            rows.append({"image": f"{group}-{i}", "group": group, "caption": text})
            records.append(scored(f"{group}-{i}", c))
    summary = summarise(records, rows, config)
    assert summary["groups"]["common"]["histogram"] == {"1": 3, "2": 1, "3": 0, "+": 0}
    assert summary["groups"]["unseen"]["histogram"]["+"] == 3
    assert summary["groups"]["unseen"]["mean_tokens"] == pytest.approx((4 + 4 + 3 + 4) / 4)
    assert summary["spearman"]["rho"] > 0.8 and summary["spearman"]["p"] < 0.01
    colours = summary["by_colours"]
    assert set(colours) == {"one colour", "2 colours"}
    assert colours["one colour"]["common"]["tokens"] == [1, 1] and colours["2 colours"]["common"]["tokens"] == [1, 2]
    assert colours["2 colours"]["unseen"]["mean_tokens"] == pytest.approx(4.0)
    swapped = {"common": "unseen", "unseen": "common", "rare": "rare"}  # the opposite ordering
    rows = [dict(r, group=swapped[r["group"]]) for r in rows]
    assert summarise(records, rows, config)["spearman"]["rho"] < -0.8


def test_experiment_writes_figures_and_resumes(tiny_model, tiny_data, tmp_path):
    score = score_preset(
        "quick", inversion_steps=2, batch_size=2, samples=2, inference_steps=2, max_tokens=2, distance="ssim",
        check=None, threshold=0.99,
    )  # fmt: skip
    config = MinTokensConfig(queries=1, size=32, score=score)
    out = tmp_path / "exp"
    summary = run_min_tokens(tiny_model, out, config, training=tiny_data)
    for name in ("fig6.png", "curves.png", "threshold-sweep.png", "summary.json", "report.html", "queries.csv"):
        assert (out / name).is_file(), name
    assert sum(summary["groups"]["rare"]["histogram"].values()) == 1
    assert all(len(g["distance_mean_by_m"]) == 2 for g in summary["groups"].values())  # full curve
    assert summary["training_images_compared"] > 0
    lines = (out / "scores" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3
    again = run_min_tokens(tiny_model, out, config, training=tiny_data)  # resumes: nothing rescored
    assert (out / "scores" / "results.jsonl").read_text().splitlines() == lines
    assert again["groups"] == json.loads((out / "summary.json").read_text())["groups"]
    # The state worth committing is experiment.json and results.jsonl: a copy of those two resumes.
    light = tmp_path / "light"
    (light / "scores").mkdir(parents=True)
    shutil.copy(out / "experiment.json", light)
    shutil.copy(out / "scores" / "results.jsonl", light / "scores")
    restored = run_min_tokens(tiny_model, light, config)
    assert (light / "scores" / "results.jsonl").read_text().splitlines() == lines  # nothing rescored
    assert restored["groups"] == again["groups"] and (light / "report.html").is_file()
    # the check verdicts travel in results.jsonl, so the sweep needs no result.json
    assert restored["threshold_sweep"]["queries"] == 3
    more = MinTokensConfig(queries=2, size=32, score=score)  # more queries extend the run
    extended = run_min_tokens(tiny_model, out, more, training=tiny_data)
    assert (out / "scores" / "results.jsonl").read_text().splitlines()[:3] == lines
    assert sum(g["queries"] for g in extended["groups"].values()) == 6
    other = MinTokensConfig(queries=2, size=32, query_seed=5, score=score)
    with pytest.raises(OriginalityError, match="other settings"):
        run_min_tokens(tiny_model, out, other)


def test_a_run_that_reads_samples_with_the_detector_records_which_detector(tiny_model, tmp_path):
    from originality.detection.detector import detector_identity

    reading = MinTokensConfig(model=str(tiny_model), score=score_preset("quick")).validate()  # reads elements
    settings = {"config": {**reading.to_dict(), "queries": None}, **identity(reading)}
    assert settings["detector"] == detector_identity()
    blind = MinTokensConfig(score=score_preset("quick", distance="ssim", check=None, threshold=0.9)).validate()
    assert "detector" not in identity(blind)
    # A folder scored with another detector is not resumed: its scores are another detector's readings.
    out = tmp_path / "exp"
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps({**settings, "detector": "0123456789ab"}))
    with pytest.raises(OriginalityError, match="other settings"):
        run_min_tokens(tiny_model, out, reading)


def test_two_processes_share_the_queries(tiny_model, tmp_path, torchrun):
    out = tmp_path / "exp"
    run = torchrun(
        "experiment", "min-tokens", "--model", str(tiny_model), "--out", str(out),
        "--queries", "1", "--distance", "ssim", "--no-check", "--threshold", "0.99", "--inversion-steps", "2",
        "--samples", "2", "--max-tokens", "1", "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(x) for x in (out / "scores" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["image"] for r in lines) == [f"queries/{g}-00.png" for g in ("common", "rare", "unseen")]
    assert sorted(r["process"] for r in lines) == [0, 0, 1]  # both processes scored their share
    assert not list((out / "scores").glob("results.rank*.jsonl"))
    assert (out / "summary.json").is_file() and run.stdout.count("summary.json") == 1  # the first process reports


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(OriginalityError, match="queries"):
        MinTokensConfig(queries=0).validate()
    with pytest.raises(OriginalityError, match="unknown group"):
        MinTokensConfig(groups=("common", "odd")).validate()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file.txt").write_text("mine")
    with pytest.raises(OriginalityError, match="is not a min-tokens run to resume"):
        run_min_tokens(None, tmp_path / "x", MinTokensConfig(queries=1))
    assert (tmp_path / "x" / "file.txt").read_text() == "mine"


def test_group_fractions_come_from_the_models_training_spec(tiny_model, tmp_path):
    assert training_fractions(tiny_model) == {"common": 0.3, "rare": 0.001, "unseen": 0.0}
    rarer = tmp_path / "rarer" / "training"
    rarer.mkdir(parents=True)
    (rarer / "summary.json").write_text(json.dumps({"dataset": {"spec": "originality-mix-rarer"}}))
    assert training_fractions(rarer.parent)["rare"] == 0.0001
    assert training_fractions(tmp_path / "not-ours")["rare"] == 0.001  # no summary: App. E.1's numbers
    # A run on a user's spec file (no preset of that name) records the fractions themselves.
    mine = tmp_path / "mine" / "training"
    mine.mkdir(parents=True)
    (mine / "summary.json").write_text(
        json.dumps({"dataset": {"spec": "my-mix", "fractions": {"common": 0.5, "rare": 0.02}}})
    )
    assert training_fractions(mine.parent) == {"common": 0.5, "rare": 0.02, "unseen": 0.0}
    (mine / "summary.json").write_text(json.dumps({"dataset": {"spec": "my-mix", "fractions": {"rare": "lots"}}}))
    assert training_fractions(mine.parent)["rare"] == 0.001  # damaged: App. E.1's numbers, not a crash


def test_a_run_saved_before_a_score_setting_existed_resumes_at_its_default(tmp_path):
    """A folder written before the skeleton (no ``experiment`` entry) or before a score setting
    existed resumes; another value of that setting is refused."""

    def settings(config):
        config = config.validate()
        return {"experiment": "min-tokens", "config": {**config.to_dict(), "queries": None}, **identity(config)}

    def opens(wanted):
        return runs.open_run(tmp_path, wanted, marker="experiment.json", compare=comparable, write=False)

    wanted = settings(MinTokensConfig(queries=1, score=score_preset("quick")))
    old = json.loads(json.dumps({k: v for k, v in wanted.items() if k != "experiment"}))
    del old["config"]["score"]["shift_views"]  # as written before the setting was added
    (tmp_path / "experiment.json").write_text(json.dumps(old))
    assert opens(wanted) is True
    with pytest.raises(OriginalityError, match="other settings"):
        opens(settings(MinTokensConfig(queries=1, score=score_preset("quick", shift_views=8))))


def test_the_experiment_reads_its_models_training_fractions(tiny_model, tmp_path):
    """Not App. E.1's numbers by default: a model trained on another mix says so in its summary."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    summary_path = model / "training" / "summary.json"
    saved = json.loads(summary_path.read_text())
    saved["dataset"]["fractions"] = {"common": 0.5, "rare": 0.02}
    summary_path.write_text(json.dumps(saved))
    score = score_preset(
        "quick",
        inversion_steps=2,
        batch_size=2,
        samples=2,
        inference_steps=2,
        max_tokens=1,
        distance="ssim",
        check=None,
    )
    summary = run_min_tokens(model, tmp_path / "exp", MinTokensConfig(queries=1, size=32, score=score))
    assert summary["groups"]["common"]["training_fraction"] == 0.5
    assert summary["groups"]["rare"]["training_fraction"] == 0.02
