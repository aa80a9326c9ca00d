import json
import shutil

import numpy as np
import pytest
from PIL import Image

from originality.errors import OriginalityError
from originality.experiments.min_tokens import (
    CAPTIONS,
    MinTokensConfig,
    caption_ceiling,
    check_not_in_training,
    make_queries,
    read_samples,
    render_query,
    run_min_tokens,
    shape_pair_verdict,
    summarise,
    threshold_sweep,
)
from originality.method.search import score_preset
from originality.shapes.captions import parse_caption


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
    import io

    from originality.shapes.dataset import read_table

    config = MinTokensConfig(queries=2, size=32)
    rows = make_queries(tmp_path, config)
    assert [r["group"] for r in rows] == ["common", "rare", "unseen"] * 2  # a stopped run scored groups evenly
    assert check_not_in_training(tmp_path, rows, tiny_data) > 0  # common captions were compared
    record = next(r for r in read_table(tiny_data).to_pylist() if r["component"] == "common")
    Image.open(io.BytesIO(record["image"]["bytes"])).save(tmp_path / rows[0]["image"])
    rows[0]["caption"] = record["caption"]
    with pytest.raises(OriginalityError, match="is a training image"):
        check_not_in_training(tmp_path, rows, tiny_data)


def _record(image, count, m_max=3):
    distances = {str(m): (0.1 if count is not None and m >= count else 0.9) for m in range(1, m_max + 1)}
    return {"image": image, "count": count, "label": "+" if count is None else str(count), "soft_tokens": 1.0,
            "distances": distances, "folder": image}  # fmt: skip


def test_summary_histogram_and_spearman_follow_the_counts():
    config = MinTokensConfig(queries=4, score=score_preset("quick", max_tokens=3))
    rows, records = [], []
    for group, counts in [("common", [1, 1, 1, 2]), ("rare", [2, 3, 2, 3]), ("unseen", [None, None, 3, None])]:
        for i, c in enumerate(counts):
            second = "red" if i % 2 == 0 else "blue"  # one colour, then two
            text = f"big red full circle and big {second} full square"
            rows.append({"image": f"{group}-{i}", "group": group, "caption": text})
            records.append(_record(f"{group}-{i}", c))
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
        "quick", steps=2, batch_size=2, samples=2, inference_steps=2, max_tokens=2, distance="ssim", check=None,
        threshold=0.99,
    )  # fmt: skip
    config = MinTokensConfig(queries=1, size=32, score=score)
    out = tmp_path / "exp"
    summary = run_min_tokens(tiny_model, out, config, training=tiny_data, progress=False)
    for name in ("fig6.png", "curves.png", "threshold-sweep.png", "summary.json", "report.html", "queries.csv"):
        assert (out / name).is_file(), name
    assert sum(summary["groups"]["rare"]["histogram"].values()) == 1
    assert all(len(g["distance_mean_by_m"]) == 2 for g in summary["groups"].values())  # full curve
    assert summary["training_images_compared"] > 0
    lines = (out / "scores" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3
    again = run_min_tokens(tiny_model, out, config, training=tiny_data, progress=False)  # resumes: nothing rescored
    assert (out / "scores" / "results.jsonl").read_text().splitlines() == lines
    assert again["groups"] == json.loads((out / "summary.json").read_text())["groups"]
    # The state worth committing is experiment.json and results.jsonl: a copy of those two resumes.
    light = tmp_path / "light"
    (light / "scores").mkdir(parents=True)
    shutil.copy(out / "experiment.json", light)
    shutil.copy(out / "scores" / "results.jsonl", light / "scores")
    restored = run_min_tokens(tiny_model, light, config, progress=False)
    assert (light / "scores" / "results.jsonl").read_text().splitlines() == lines  # nothing rescored
    assert restored["groups"] == again["groups"] and (light / "report.html").is_file()
    # the check verdicts travel in results.jsonl, so the sweep needs no result.json
    assert restored["threshold_sweep"]["queries"] == 3
    more = MinTokensConfig(queries=2, size=32, score=score)  # more queries extend the run
    extended = run_min_tokens(tiny_model, out, more, training=tiny_data, progress=False)
    assert (out / "scores" / "results.jsonl").read_text().splitlines()[:3] == lines
    assert sum(g["queries"] for g in extended["groups"].values()) == 6
    other = MinTokensConfig(queries=2, size=32, query_seed=5, score=score)
    with pytest.raises(OriginalityError, match="other settings"):
        run_min_tokens(tiny_model, out, other, progress=False)


def test_threshold_sweep_counts_a_pass_only_where_the_check_passes(tmp_path):
    config = MinTokensConfig(queries=2, score=score_preset("quick", max_tokens=3))
    rows = [{"image": f"{g}-0", "group": g, "caption": ""} for g in ("common", "rare", "unseen")]
    rows.append({"image": "unseen-1", "group": "unseen", "caption": ""})
    ok = {"1": True, "2": True, "3": True}
    records = [
        dict(_record("common-0", 1), in_distribution=ok),
        # distance 0.1 from m = 2, but the layout check fails at m = 2: the first pass is m = 3
        dict(_record("rare-0", 2), in_distribution={"1": True, "2": False, "3": True}),
        _record("unseen-0", None),  # no verdicts in the record: read from its result.json
        _record("unseen-1", None),  # neither: left out
    ]
    folder = tmp_path / "scores" / "unseen-0"
    folder.mkdir(parents=True)
    per_m = [{"m": m, "in_distribution": {"passed": True}} for m in (1, 2, 3)]
    (folder / "result.json").write_text(json.dumps({"per_m": per_m}))
    sweep = threshold_sweep(tmp_path, records, rows, config)
    assert sweep["queries"] == 3 and sweep["preset_threshold"] == config.score.threshold
    assert [p["threshold"] for p in sweep["points"]] == [0.1, 0.9]
    strict, loose = sweep["points"]
    assert strict["tokens"] == {"common": [1], "rare": [3], "unseen": [4]}
    assert strict["spearman"]["rho"] == pytest.approx(1.0)
    assert loose["tokens"] == {"common": [1], "rare": [1], "unseen": [1]} and loose["spearman"] is None


def test_caption_ceiling_samples_each_query_once(tiny_model, tmp_path, monkeypatch):
    from originality.models import pipeline as pipeline_module
    from originality.models.pipeline import load_pipeline

    score = score_preset("quick", max_tokens=2, samples=2, inference_steps=2, distance="elements", check="positions")
    config = MinTokensConfig(queries=2, size=32, score=score)
    rows = [{"image": f"{g}-{i}", "group": g, "caption": render_query(g, i, 3, 32)[1]}
            for g in ("common", "rare", "unseen") for i in range(2)]  # fmt: skip
    counts = {"common": [1, 1], "rare": [2, 1], "unseen": [None, 2]}
    records = [_record(r["image"], counts[r["group"]][int(r["image"][-1])], m_max=2) for r in rows]
    pipeline = load_pipeline(tiny_model)
    summary = summarise(records, rows, config)
    caption_ceiling(summary, tmp_path, pipeline, records[:4], rows, config, progress=False)
    lines = (tmp_path / CAPTIONS).read_text().splitlines()
    assert [json.loads(line)["image"] for line in lines] == [r["image"] for r in records[:4]]
    assert all(sum(json.loads(line)["kinds"].values()) == pytest.approx(1.0) for line in lines)
    prompts = []
    real = pipeline_module.generate

    def counting(p, texts, *args, **kwargs):
        prompts.append(texts)
        return real(p, texts, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "generate", counting)
    summary = summarise(records, rows, config)
    caption_ceiling(summary, tmp_path, pipeline, records, rows, config, progress=False)
    assert [t[0] for t in prompts] == [rows[4]["caption"], rows[5]["caption"]]  # only the new queries
    assert len((tmp_path / CAPTIONS).read_text().splitlines()) == 6
    assert set(summary["groups"]["unseen"]["caption_kinds"]) == {"exact", "swapped", "shapes", "miss"}
    assert set(summary["caption_spearman"]) == {"min_tokens", "m1_distance"}


def test_shape_pair_verdict_counts_samples_with_the_right_shapes(tmp_path):
    config = MinTokensConfig(queries=1, score=score_preset("quick", max_tokens=3))
    rows = [{"image": f"{g}-0", "group": g, "caption": ""} for g in ("common", "rare", "unseen")]
    records = [dict(_record(r["image"], 1), in_distribution={"1": True, "2": False, "3": True}) for r in rows]
    summary = summarise(records, rows, config)
    assert shape_pair_verdict(summary, tmp_path, records, rows, config) is None  # samples not read
    summary["sample_kinds"] = {  # share of samples without the query's shapes, m = 1..3
        "common-0": {"miss": [0.25, 0.5, 0.5]},  # passes at m = 1 (<= 0.25)
        "rare-0": {"miss": [0.5, 0.0, 0.0]},  # m = 2 fails the positions check: m = 3
        "unseen-0": {"miss": [1.0, 0.5, 0.3]},  # never: "+"
    }
    verdict = shape_pair_verdict(summary, tmp_path, records, rows, config)
    assert verdict["threshold"] == 0.25
    assert verdict["tokens"] == {"common-0": 1, "rare-0": 3, "unseen-0": 4}
    assert verdict["groups"]["unseen"]["histogram"]["+"] == 1 and verdict["groups"]["rare"]["mean_tokens"] == 3
    assert verdict["spearman"]["rho"] == pytest.approx(1.0)


def test_two_processes_share_the_queries(tiny_model, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "exp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
        "-m", "originality.cli", "experiment", "min-tokens", "--model", str(tiny_model), "--out", str(out),
        "--queries", "1", "--distance", "ssim", "--no-check", "--threshold", "0.99", "--steps", "2",
        "--samples", "2", "--max-tokens", "1", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
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
    with pytest.raises(OriginalityError, match="not an experiment"):
        run_min_tokens(None, tmp_path / "x", MinTokensConfig(queries=1), progress=False)
    assert (tmp_path / "x" / "file.txt").read_text() == "mine"


def test_element_counts_leave_out_queries_without_sample_grids(tmp_path):
    from originality.report.grids import image_grid

    config = MinTokensConfig(
        queries=1, size=32, score=score_preset("quick", max_tokens=2, samples=2, distance="elements", check="positions")
    )
    text = "big red full circle and big blue full square"
    rows = [{"image": f"{g}-0", "group": g, "caption": text} for g in ("common", "rare", "unseen")]
    records = [_record(r["image"], 1, m_max=2) for r in rows]
    blank = Image.new("RGB", (32, 32), "white")
    for m in (1, 2):  # only the common query kept its grids
        (tmp_path / "scores" / "common-0" / "samples").mkdir(parents=True, exist_ok=True)
        image_grid([blank, blank], columns=10, cell=96).save(tmp_path / "scores" / "common-0" / "samples" / f"m{m}.png")
    summary = summarise(records, rows, config)
    read_samples(summary, tmp_path, records, rows, config)
    common, rare = summary["groups"]["common"], summary["groups"]["rare"]
    assert common["detected_elements_queries"] == 1 and common["detected_elements_by_m"] == [0.0, 0.0]
    assert rare["detected_elements_queries"] == 0 and rare["detected_elements_by_m"] == []
    assert common["kinds_by_m"]["miss"] == [1.0, 1.0] and rare["kinds_by_m"] == {}  # blank samples miss
    assert summary["sample_spearman"] == {"not_exact": None, "wrong_shapes": None}  # one group read
    # The grids are read once: without them, the next call takes what was read from samples.jsonl.
    shutil.rmtree(tmp_path / "scores" / "common-0" / "samples")
    again = summarise(records, rows, config)
    read_samples(again, tmp_path, records, rows, config)
    assert again["groups"]["common"]["kinds_by_m"] == common["kinds_by_m"]
    assert again["sample_kinds"] == summary["sample_kinds"] and list(again["sample_kinds"]) == ["common-0"]
