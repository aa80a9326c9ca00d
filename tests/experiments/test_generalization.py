import dataclasses
import json

import pytest
import torch

from originality.cli import main
from originality.detection.detector import detector_identity
from originality.errors import OriginalityError
from originality.experiments.generalization import plan, run_generalization
from originality.experiments.generalization_config import generalization_preset
from originality.models.card import training_summary
from originality.models.pipeline import load_pipeline, model_identity, save_pipeline


def test_tiny_ladder_runs_end_to_end_and_a_rerun_reuses_every_step(tmp_path, monkeypatch):
    config = generalization_preset("tiny")
    out = tmp_path / "gen"
    summary = run_generalization(out, config, progress=False)
    assert set(summary["levels"]) == {"4", "60"}
    for record in summary["records"]:
        for kind, prompt in (("empty", ""), ("element", "big blue full circle")):
            r = record[kind]
            assert r["prompt"] == prompt and r["images"] == config.samples
            assert r["held_out_detections"] <= r["detections"] == sum(r["element_counts"].values())
            assert 0 <= r["frequency"] <= 1 and 0 <= r["image_rate"] <= 1
        assert record["detector"] == detector_identity()  # the digest its key was made with
    for name in ("fig3.png", "fig12-quality.png", "fig13-samples.png", "summary.json", "report.html"):
        assert (out / name).stat().st_size > 100, name
    # Measurements are cached by their settings: a rerun trains and generates nothing.
    import originality.experiments.generalization as gen

    monkeypatch.setattr(gen, "_run_job", lambda *a, **k: pytest.fail("re-ran a cached job"))
    again = run_generalization(out, config, progress=False)
    assert again["levels"] == summary["levels"]
    # --measured-only: a level not measured yet (6) is left out, nothing is trained.
    wider = dataclasses.replace(config, levels=(4, 6, 60))
    partial = run_generalization(out, wider, measured_only=True)
    assert partial["levels"] == summary["levels"] and partial["measured_only"] == ["4-big-full", "60-big-full"]
    with pytest.raises(OriginalityError, match="no level of this experiment's settings is measured"):
        run_generalization(tmp_path / "none", wider, measured_only=True)
    # The run pools into a per-length figure (read back, nothing trained).
    assert main(["experiment", "generalization-compare", str(out), "--out", str(tmp_path / "lengths.png")]) == 0
    (ladder,) = json.loads((tmp_path / "lengths.json").read_text())
    assert ladder["unet_steps"] == summary["records"][0]["model"]["unet"] > 0
    assert {k: v["element"] for k, v in ladder["levels"].items()} == {
        k: v["element"]["frequency"] for k, v in summary["levels"].items()
    }
    assert (tmp_path / "lengths.png").stat().st_size > 100


def test_a_model_copied_from_a_shorter_run_is_trained_on_not_reused(tmp_path):
    import shutil

    from originality.experiments.cached import cached_model, data_key, model_key
    from originality.shapes.specs import ladder

    config = generalization_preset("tiny")
    short = config.training_config()
    longer = dataclasses.replace(short, unet_epochs=2 * short.unet_epochs)
    args = (ladder(4, "big-full"), config.images, config.size, config.data_seed)
    cache = tmp_path / "cache"
    first = cached_model(*args, short, cache, False, "test")
    steps = training_summary(first)["steps"]["unet"]
    # How a run is continued by hand: the finished folder copied to the longer run's key.
    copied = shutil.copytree(first, cache / f"model-{model_key(data_key(*args), longer)}")
    assert cached_model(*args, longer, cache, False, "test") == copied
    assert training_summary(copied)["steps"]["unet"] == 2 * steps and training_summary(copied)["finished"]
    calls = training_summary(first)["calls"]
    cached_model(*args, short, cache, False, "test")
    assert training_summary(first)["calls"] == calls  # the same settings: reused as is, not trained again


def test_more_epochs_continue_the_shorter_model_in_the_cache(tmp_path, capsys):
    from originality.experiments.cached import shorter_run

    config = generalization_preset("tiny", levels=(4,))
    out = tmp_path / "gen"
    run_generalization(out, config, progress=False)
    longer = dataclasses.replace(config, train_overrides={**config.train_overrides, "unet_epochs": 2})
    other = dataclasses.replace(config, train_overrides={**config.train_overrides, "unet_lr": 5e-4, "unet_epochs": 2})
    (short,), (long,) = plan(config), plan(longer)
    cache = out / "cache"
    assert shorter_run(cache, short.data_key, other.training_config()) is None  # other settings: from scratch
    assert shorter_run(cache, short.data_key, config.training_config()) is None  # nothing shorter than itself
    run_generalization(out, longer, progress=True)
    assert f"continuing model-{short.model_key} into model-{long.model_key}" in capsys.readouterr().out
    was, now = training_summary(cache / f"model-{short.model_key}"), training_summary(cache / f"model-{long.model_key}")
    assert now["steps"]["unet"] == 2 * was["steps"]["unet"] and now["finished"]
    assert now["calls"] == was["calls"] + 1  # one more call of the same run, not a new one from step 0
    assert now["samples_seen"]["vae"] == was["samples_seen"]["vae"]  # the VAE was not trained again
    assert (cache / f"measure-{long.measure_key}.json").is_file()


def test_keys_change_only_for_the_changed_level_settings():
    a = plan(generalization_preset("tiny"))
    b = plan(generalization_preset("tiny", samples=8))
    assert [j.model_key for j in a] == [j.model_key for j in b]  # same models
    assert all(x.measure_key != y.measure_key for x, y in zip(a, b, strict=True))  # new measurements
    c = plan(generalization_preset("tiny", levels=(4, 6)))
    assert a[0].measure_key == c[0].measure_key and a[1].model_key != c[1].model_key


def test_a_retrained_detector_remeasures_but_keeps_the_models():
    config = generalization_preset("tiny")
    a, b = plan(config, detector="aaaa"), plan(config, detector="bbbb")
    assert [j.model_key for j in a] == [j.model_key for j in b]
    assert all(x.measure_key != y.measure_key for x, y in zip(a, b, strict=True))
    assert plan(config) == plan(config, detector=detector_identity())  # by default, the shipped detector's


def test_set_overrides_training_on_top_of_the_preset(tmp_path, monkeypatch):
    import originality.experiments.generalization as gen

    seen = []
    monkeypatch.setattr(gen, "run_generalization", lambda out, config, **_: seen.append(config))
    assert main(["experiment", "generalization", "--preset", "quick", "--out", str(tmp_path / "g"),
                 "--set", "unet_epochs=12.8", "--set", "unet_lr=2e-4", "--seed", "1"]) == 0  # fmt: skip
    assert seen[0].train_overrides == {"vae_from": "shipped", "unet_epochs": 12.8, "unet_lr": 2e-4}
    # another sampling seed: new measurements of the same models
    seed0 = plan(dataclasses.replace(seen[0], seed=0))
    assert seen[0].seed == 1 and [j.model_key for j in plan(seen[0])] == [j.model_key for j in seed0]
    assert all(a.measure_key != b.measure_key for a, b in zip(plan(seen[0]), seed0, strict=True))
    # the same keys as the same settings given through the API: cached models and measurements are reused
    probe = generalization_preset(
        "quick", train_overrides={"vae_from": "shipped", "unet_epochs": 12.8, "unet_lr": 2e-4}, seed=1
    )
    assert [j.measure_key for j in plan(seen[0])] == [j.measure_key for j in plan(probe)]


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(OriginalityError, match="unknown ladder level 5"):
        generalization_preset("tiny", levels=(5,))
    with pytest.raises(OriginalityError, match="unknown variant 'huge-full'"):
        generalization_preset("tiny", variants=("huge-full",))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("mine")
    for argv, message in (
        (["--levels", "4,7"], "unknown ladder level 7"),
        (["--levels", "four"], "--levels takes comma-separated integers"),
        (["--preset", "huge"], "unknown generalization preset"),
        (["--out", str(tmp_path / "other")], "is not a generalization run"),
        (["--set", "unet_epoch=3"], "unknown training setting 'unet_epoch'"),
    ):
        out = ["--out", str(tmp_path / "new")] if "--out" not in argv else []
        assert main(["experiment", "generalization", "--preset", "tiny", *out, *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "new").exists()


def test_fixed_location_ablation_on_tiny_models(tiny_model, tmp_path):
    from originality.experiments.fixed_location import FixedLocationConfig, fixed_queries, run_fixed_location

    config = FixedLocationConfig(
        queries=2, seeds=2, size=32, score_overrides=dict(inversion_steps=2, batch_size=2, inference_steps=2)
    )
    queries = fixed_queries(config)
    assert len(queries) == 2 and all(q.size == (32, 32) for q, _ in queries)
    # Only the colours vary at fixed centres: nine distinct queries, none repeated, no tenth.
    nine = fixed_queries(dataclasses.replace(config, queries=9))
    assert len({q.tobytes() for q, _ in nine}) == 9 and len({text for _, text in nine}) == 9
    with pytest.raises(OriginalityError, match="only 9 distinct"):
        fixed_queries(dataclasses.replace(config, queries=10))
    # Two different models, so that a mix-up of the fixed and the reference model shows.
    other = load_pipeline(tiny_model)
    with torch.no_grad():
        for p in other.unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_pipeline(other, tmp_path / "other")
    summary = run_fixed_location(
        tmp_path / "fix", config, reference=tmp_path / "other", fixed_model=tiny_model, progress=False
    )
    assert set(summary["models"]) == {"fixed location", "random placement"}
    assert summary["models"]["fixed location"]["model"] == model_identity(tiny_model)
    assert summary["models"]["random placement"]["model"] == model_identity(tmp_path / "other")
    # A given model was not trained with the config's training settings: the summary must not say so.
    assert summary["fixed_model"] == "given" and "train_overrides" not in summary["config"]
    for m in summary["models"].values():
        assert len(m["queries"]) == 2 and all(len(q["displacement"]) == 2 for q in m["queries"])
    assert (tmp_path / "fix" / "fig11.png").stat().st_size > 500
    with pytest.raises(OriginalityError, match="at least one query"):
        run_fixed_location(tmp_path / "fix2", FixedLocationConfig(queries=0), fixed_model=tiny_model)


def test_checks_tell_a_rise_at_every_level_from_a_rise_on_average():
    from originality.experiments.generalization_summary import summarise

    def record(level, element):
        def kind(frequency):
            return {"frequency": frequency, "image_rate": frequency, "elements_per_image": 1.0, "element_counts": {}}

        return {"level": level, "variant": "big-full", "empty": kind(0.0), "element": kind(element)}

    config = generalization_preset("quick", levels=(4, 15, 60))
    peaked = summarise([record(4, 0.31), record(15, 0.70), record(60, 0.34)], config)["checks"]
    assert peaked["element_rises_with_diversity"] and not peaked["element_rises_at_every_level"]
    rising = summarise([record(4, 0.1), record(15, 0.2), record(60, 0.3)], config)
    assert rising["checks"]["element_rises_at_every_level"]
    assert rising["checks"]["element_prompt_above_empty_at_every_level"]
    # A share falling as 1/L is a flat rate against an average spanning-set element.
    flat = summarise([record(4, 1 / 4), record(15, 1 / 15), record(60, 1 / 60)], config)["levels"]
    assert [round(flat[lv]["element"]["vs_average_element"], 6) for lv in ("4", "15", "60")] == [1.0, 1.0, 1.0]
    assert round(rising["levels"]["60"]["element"]["vs_average_element"], 6) == 18.0


def test_a_measurement_without_held_out_hits_leaves_no_stale_crops(tmp_path):
    from PIL import Image

    from originality.experiments.generalization import _record

    job = plan(generalization_preset("tiny"))[0]
    stale = tmp_path / f"{job.name}-empty-held-out.png"
    Image.new("RGB", (8, 8)).save(stale)  # from an earlier measurement that found the element
    result = {"empty": {"frequency": 0.0, "_images": [Image.new("RGB", (32, 32), "white")], "_hits": []}}
    record = _record(job, result, tmp_path)
    assert record["empty"] == {"frequency": 0.0} and not stale.exists()
    assert (tmp_path / f"{job.name}-empty-samples.png").is_file()


def test_data_parallel_trains_one_level_on_both_processes(tmp_path, torchrun):
    out = tmp_path / "gen"
    args = ["experiment", "generalization", "--preset", "tiny", "--levels", "4", "--out", str(out), "--quiet"]
    done = torchrun(*args, "--data-parallel", timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("element prompt") == 1  # one table: the first process measures and reports
    (job,) = plan(generalization_preset("tiny", levels=(4,)))
    model = training_summary(out / "cache" / f"model-{job.model_key}")
    assert model["processes"] == 2 and model["finished"]  # one process group, one model
    assert (out / "cache" / f"measure-{job.measure_key}.json").is_file()
    assert list((out / "cache").glob("model-*")) == [out / "cache" / f"model-{job.model_key}"]
    # Twice the epochs: the first process seeds the longer run from this one, the other waits for it.
    longer = torchrun(*args, "--data-parallel", "--set", "unet_epochs=2", timeout=180)
    assert longer.returncode == 0, longer.stderr[-2000:]
    (long,) = plan(generalization_preset("tiny", levels=(4,), train_overrides={"unet_epochs": 2, "vae_epochs": 1}))
    continued = training_summary(out / "cache" / f"model-{long.model_key}")
    assert continued["steps"]["unet"] == 2 * model["steps"]["unet"] and continued["calls"] == model["calls"] + 1
    assert continued["processes"] == 2


def test_under_a_launcher_each_process_trains_its_own_levels(tmp_path, torchrun):
    out = tmp_path / "gen"
    done = torchrun("experiment", "generalization", "--preset", "tiny", "--out", str(out), "--quiet", timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("element prompt") == 1
    for job in plan(generalization_preset("tiny")):  # levels 4 and 60, one per process
        model = training_summary(out / "cache" / f"model-{job.model_key}")
        assert model["processes"] == 1 and model["finished"]
        assert (out / "cache" / f"measure-{job.measure_key}.json").is_file()


def test_ladders_are_pooled_by_training_length_not_by_run(tmp_path, capsys):
    from originality.experiments.generalization_summary import by_training_length

    def record(key, level, steps, element, detector="d1"):
        def kind(frequency):
            return {"frequency": frequency, "image_rate": frequency / 2}

        model = {"vae": 0, "unet": steps}
        return {
            "key": key,
            "level": level,
            "model": model,
            "detector": detector,
            "empty": kind(0.0),
            "element": kind(element),
        }

    def run(*records, **overrides):
        overrides = {"vae_from": "shipped", **overrides}
        return {"config": {"train": "cpu", "train_overrides": overrides}, "records": list(records)}

    ladders = by_training_length(
        [
            run(record("a", 4, 4000, 0.3), record("b", 60, 4000, 0.34)),
            run(record("b", 60, 4000, 0.34), record("c", 60, 8000, 0.78)),  # "b" again: counted once
            run(record("d", 30, 8000, 0.80), record("e", 60, 8000, 0.80)),  # e: another seed of c's model
            run(record("f", 4, 4000, 0.9, detector="d2")),  # another detector: its own ladder
            run(record("g", 4, 4000, 0.5), unet_epochs=12.8),  # the same recipe trained to another length
            run(record("h", 4, 4000, 0.1), unet_lr=1e-3),  # another recipe: its own ladder
        ]
    )
    base = next(x["recipe"] for x in ladders if "60" in x["levels"])
    got = [
        (
            x["unet_steps"],
            x["recipe"] == base,
            x["detector"],
            {k: (round(v["element"], 3), v["measurements"]) for k, v in x["levels"].items()},
        )
        for x in ladders
    ]
    assert sorted(got) == [
        (4000, False, "d1", {"4": (0.1, 1)}),
        (4000, True, "d1", {"4": (0.4, 2), "60": (0.34, 1)}),
        (4000, True, "d2", {"4": (0.9, 1)}),
        (8000, True, "d1", {"30": (0.8, 1), "60": (0.79, 2)}),
    ]
    assert [x["unet_steps"] for x in ladders] == [4000, 4000, 4000, 8000]
    pooled = next(x for x in ladders if x["recipe"] == base and x["detector"] == "d1")
    assert pooled["levels"]["4"]["image_rate"] == 0.2  # (0.3 + 0.5) / 2 / 2
    # Bad input: a folder that is no run, a figure name that is no PNG; nothing is written.
    no_run, made = tmp_path / "no-run", tmp_path / "made"
    no_run.mkdir()
    made.mkdir()
    (made / "summary.json").write_text(json.dumps(run(record("a", 4, 4000, 0.3))))
    other = tmp_path / "other"  # e.g. a min-tokens run's summary
    other.mkdir()
    (other / "summary.json").write_text(json.dumps({"groups": {}, "rho": 0.3}))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "summary.json").write_text(json.dumps(run()))
    for folder, figure, message in (
        (no_run, "x.png", "holds no summary.json"),
        (other, "x.png", "is not a generalization run's summary (no 'config')"),
        (empty, "x.png", "these runs hold no measurement yet"),
        (made, "x.jpg", "should name a .png file"),
    ):
        assert main(["experiment", "generalization-compare", str(folder), "--out", str(tmp_path / figure)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("x.*"))


# The detector that read the committed ladder's samples (shipped until the colour-jittered one).
LADDER_DETECTOR = "e6f9ab8b60d7"


def test_the_committed_cpu_ladder_resumes_under_its_preset(tmp_path, monkeypatch):
    """results/generalization/ladder-8000-steps is what ``--preset cpu`` makes with the detector
    that measured it: copied into a folder, the preset finds every measurement in it, trains
    nothing and gives the same numbers; with another detector it would measure again."""
    import shutil
    from pathlib import Path

    import originality.experiments.generalization as gen

    committed = Path(__file__).parents[2] / "results" / "generalization" / "ladder-8000-steps"
    out = tmp_path / "ladder"
    shutil.copytree(committed, out)
    monkeypatch.setattr(gen, "detector_identity", lambda *a: LADDER_DETECTOR)
    monkeypatch.setattr(gen, "_run_job", lambda *a, **k: pytest.fail("re-ran a committed measurement"))
    summary = run_generalization(out, generalization_preset("cpu"), progress=False)
    assert summary["levels"] == json.loads((committed / "summary.json").read_text())["levels"]
    assert [r["model"]["unet"] for r in summary["records"]] == [7988] * 4
