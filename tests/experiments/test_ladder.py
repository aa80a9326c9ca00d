import dataclasses
import io
import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image

from originality import runs
from originality.errors import OriginalityError
from originality.experiments import ladder
from originality.experiments.runner import run_experiment
from originality.shapes.captions import parse_caption
from originality.shapes.dataset import make_dataset, read_table
from originality.shapes.specs import frequency_ladder

SMALL_COPIES = (1, 2, 3, 4, 6)


@pytest.fixture(scope="module")
def ladder_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder-data")
    return make_dataset(frequency_ladder(SMALL_COPIES), 12_000, root / "data", size=32, seed=1, progress=False)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def record(key: str, level: str, frequency: float, value: float, kind: str = "pair") -> dict:
    return {"kind": kind, "key": key, "level": level, "frequency": frequency, "measures": {"m": value}}


def test_the_estimands_read_a_perfect_measure_as_rho_one_and_its_reverse_as_minus_one():
    levels = [("ladder 1%", 0.01), ("ladder 0.1%", 0.001), ("ladder 0.01%", 0.0001), ("ladder 0%", 0.0)]
    config = ladder.LadderConfig(bootstrap=50)
    good, bad = [], []
    for level, frequency in levels:
        for p in range(3):
            familiar = -math.log10(frequency) if frequency else 6.0  # lower when seen more often
            good.append(record(f"{level}-{p}", level, frequency, familiar + 0.01 * p))
            bad.append(record(f"{level}-{p}", level, frequency, -familiar + 0.01 * p))
    result = ladder.estimands(good, "m", config)
    assert result["rho"] == pytest.approx(0.9, abs=0.1) and result["rho"] > 0.85
    assert result["slope"] == pytest.approx(1.0, abs=0.02)  # -measure against log10 frequency
    assert result["auroc"] == {"1%<0.1%": 1.0, "0.1%<0%": 1.0}
    assert result["rho_ci"][0] > 0.5
    flipped = ladder.estimands(bad, "m", config)
    assert flipped["rho"] < -0.85 and flipped["auroc"]["1%<0.1%"] == 0.0  # a sign flip shows


def test_the_experiment_reads_every_pair_on_two_seeds_and_writes_a_calibration(
    tiny_model, ladder_data, tmp_path, monkeypatch
):
    model = tmp_path / "model"  # a copy: the calibration is written into the model's folder
    shutil.copytree(tiny_model, model)
    config = ladder.EXPERIMENT.config(
        "quick", model=str(model), background_model=str(model), data=str(ladder_data), bootstrap=20, timesteps=4
    )
    # The positive control, run alone first into the run's subfolder, does not stop the run resuming it
    # (refused before: "exists and is not a ladder run to resume"); anything else beside it does.
    (tmp_path / "run" / "positive-control").mkdir(parents=True)
    (tmp_path / "run" / "positive-control" / "registered.json").write_text("{}")
    (tmp_path / "stray" / "positive-control").mkdir(parents=True)
    (tmp_path / "stray" / "notes.txt").write_text("mine")
    with pytest.raises(OriginalityError, match="not a ladder run to resume"):
        run_experiment(ladder.EXPERIMENT, tmp_path / "stray", config, progress=False)
    summary = run_experiment(ladder.EXPERIMENT, tmp_path / "run", config, progress=False)
    records = runs.read_jsonl(tmp_path / "run" / ladder.READINGS)
    seeds = {r["seed"] for r in records}
    assert seeds == {config.fit_seed, config.held_out_seed}
    held = [r for r in records if r["seed"] == config.held_out_seed]
    assert sum(r["kind"] == "pair" for r in held) == 45 and sum(r["kind"] == "element" for r in held) == 15
    assert sum(r["kind"] == "copy" for r in held) == 40 == sum(r["kind"] == "fresh" for r in held)
    m = summary["measures"]
    assert m["likelihood_ratio"]["needs"] == "a second model"
    assert (
        m["guidance_gap"]["needs"] == "the query's reading" and m["guidance_gap@prompt"]["needs"] == "a user's prompt"
    )
    assert m["unconditional_loss"]["needs"] == "nothing"
    # the schema: every measure says what it costs per image; a second model costs more
    assert all(v["seconds_per_image"] > 0 for v in m.values())
    assert m["likelihood_ratio"]["seconds_per_image"] > m["unconditional_loss"]["seconds_per_image"]
    # One model as its own background: the ratio is 0 everywhere, so it grades nothing.
    assert m["likelihood_ratio"]["rho"] is None
    assert set(summary["duplication"]["copies"]["unconditional_loss"]) == {f"copies x{k}" for k in SMALL_COPIES}
    calibration = json.loads((model / ladder.CALIBRATION).read_text())
    assert calibration["needs"] in ("nothing", "the query's reading", "a second model")
    assert calibration["interval"]["low"] <= 0 <= calibration["interval"]["high"]
    assert (tmp_path / "run" / "ladder.png").is_file() and (tmp_path / "run" / "report.html").is_file()
    # The duplication ladder's copy is the exact training image; its fresh render is not.
    rows = read_table(ladder_data, ["image", "component", "caption"]).to_pylist()
    trained = {
        " + ".join(sorted(e.phrase for e in parse_caption(r["caption"]))): np.asarray(
            Image.open(io.BytesIO(r["image"]["bytes"]))
        )
        for r in rows
        if r["component"].startswith("copies")
    }
    queries = ladder.queries_for(config, config.held_out_seed)
    for q in (q for q in queries if q.kind == "copy"):
        assert np.array_equal(np.asarray(q.image), trained[q.key])
    fresh = next(q for q in queries if q.kind == "fresh")
    assert not np.array_equal(np.asarray(fresh.image), trained[fresh.key])
    again = run_experiment(ladder.EXPERIMENT, tmp_path / "run", config, progress=False)  # resumes: nothing re-read
    assert len(runs.read_jsonl(tmp_path / "run" / ladder.READINGS)) == len(records)
    assert again["measures"].keys() == summary["measures"].keys()
    assert "token_count" not in again["measures"]

    # The token counts join a finished run later (they take the longest): one level, one query per pair,
    # the quick preset shrunk to seconds.
    shrunk = ladder.score_preset
    tiny = dict(max_tokens=1, inversion_steps=2, batch_size=2, samples=2, inference_steps=2, check=None)
    monkeypatch.setattr(ladder, "score_preset", lambda name, **kw: shrunk(name, **kw, **tiny))
    counted = dataclasses.replace(config, tokens=True, token_levels="0%", token_queries=1)
    grown = run_experiment(ladder.EXPERIMENT, tmp_path / "run", counted, progress=False)
    tokens = runs.read_jsonl(tmp_path / "run" / ladder.TOKENS)
    assert len(tokens) == 5 and {t["level"] for t in tokens} == {"ladder 0%"}
    assert all(t["token_count"] in (1, 2) and t["seconds"] > 0 for t in tokens)  # 2: none passed up to m = 1
    assert grown["measures"]["token_count"]["descriptive"] and grown["measures"]["token_count"]["seconds_per_image"]
    assert len(runs.read_jsonl(tmp_path / "run" / ladder.READINGS)) == len(records)  # the readings kept


def test_bad_settings(tmp_path, ladder_data, tiny_model):
    with pytest.raises(OriginalityError, match="needs --model"):
        ladder.EXPERIMENT.config()
    with pytest.raises(OriginalityError, match="must differ"):
        ladder.EXPERIMENT.config(model=str(tiny_model), data=str(ladder_data), fit_seed=1, held_out_seed=1)
    with pytest.raises(OriginalityError, match="not a pipeline folder"):
        ladder.EXPERIMENT.config(model=str(tmp_path), data=str(ladder_data))
