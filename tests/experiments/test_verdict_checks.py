import json
import shutil

import pytest
from PIL import Image

from originality.experiments import verdict_checks
from originality.experiments.min_tokens import MinTokensConfig, summarise
from originality.experiments.verdict_checks import (
    CAPTIONS,
    caption_ceiling,
    read_samples,
    sample_captions,
    shape_pair_verdict,
    threshold_sweep,
)
from originality.method.search import score_preset
from originality.shapes.queries import render_query


def test_threshold_sweep_counts_a_pass_only_where_the_check_passes(scored, tmp_path):
    config = MinTokensConfig(queries=2, score=score_preset("quick", max_tokens=3))
    rows = [{"image": f"{g}-0", "group": g, "caption": ""} for g in ("common", "rare", "unseen")]
    rows.append({"image": "unseen-1", "group": "unseen", "caption": ""})
    ok = {"1": True, "2": True, "3": True}
    records = [
        dict(scored("common-0", 1), in_distribution=ok),
        # distance 0.1 from m = 2, but the layout check fails at m = 2: the first pass is m = 3
        dict(scored("rare-0", 2), in_distribution={"1": True, "2": False, "3": True}),
        scored("unseen-0", None),  # no verdicts in the record: read from its result.json
        scored("unseen-1", None),  # neither: left out
    ]
    folder = tmp_path / "scores" / "unseen-0"
    folder.mkdir(parents=True)
    per_m = [{"m": m, "in_distribution": {"passed": True}} for m in (1, 2, 3)]
    (folder / "result.json").write_text(json.dumps({"per_m": per_m}))
    summary = summarise(records, rows, config)
    sweep = threshold_sweep(summary, tmp_path, records, rows, config.score)
    assert summary["threshold_sweep"] is sweep
    assert sweep["queries"] == 3 and sweep["preset_threshold"] == config.score.threshold
    assert [p["threshold"] for p in sweep["points"]] == [0.1, 0.9]
    strict, loose = sweep["points"]
    assert strict["tokens"] == {"common": [1], "rare": [3], "unseen": [4]}
    assert strict["spearman"]["rho"] == pytest.approx(1.0)
    assert loose["tokens"] == {"common": [1], "rare": [1], "unseen": [1]} and loose["spearman"] is None


def test_caption_ceiling_samples_each_query_once(scored, tiny_model, tmp_path, monkeypatch):
    from originality.models.pipeline import load_pipeline

    score = score_preset("quick", max_tokens=2, samples=2, inference_steps=2, distance="elements", check="positions")
    config = MinTokensConfig(queries=2, size=32, score=score)
    rows = [{"image": f"{g}-{i}", "group": g, "caption": render_query(g, i, 3, 32)[1]}
            for g in ("common", "rare", "unseen") for i in range(2)]  # fmt: skip
    counts = {"common": [1, 1], "rare": [2, 1], "unseen": [None, 2]}
    records = [scored(r["image"], counts[r["group"]][int(r["image"][-1])], m_max=2) for r in rows]
    pipeline = load_pipeline(tiny_model)
    summary = summarise(records, rows, config)
    sample_captions(tmp_path, records[:4], rows, config.score, pipeline=pipeline, progress=False)
    caption_ceiling(summary, tmp_path, records[:4], rows, config.score)
    lines = (tmp_path / CAPTIONS).read_text().splitlines()
    assert [json.loads(line)["image"] for line in lines] == [r["image"] for r in records[:4]]
    assert all(sum(json.loads(line)["kinds"].values()) == pytest.approx(1.0) for line in lines)
    prompts = []
    real = verdict_checks.generate

    def counting(p, texts, *args, **kwargs):
        prompts.append(texts)
        return real(p, texts, *args, **kwargs)

    monkeypatch.setattr(verdict_checks, "generate", counting)
    summary = summarise(records, rows, config)
    caption_ceiling(summary, tmp_path, records, rows, config.score)  # reads: samples nothing
    assert not prompts and summary["groups"]["unseen"]["caption_kinds"] == {}  # not sampled yet: left out
    sample_captions(tmp_path, records, rows, config.score, pipeline=pipeline, progress=False)
    caption_ceiling(summary, tmp_path, records, rows, config.score)
    assert [t[0] for t in prompts] == [rows[4]["caption"], rows[5]["caption"]]  # only the new queries
    assert len((tmp_path / CAPTIONS).read_text().splitlines()) == 6
    assert set(summary["groups"]["unseen"]["caption_kinds"]) == {"exact", "swapped", "shapes", "miss"}
    assert set(summary["caption_spearman"]) == {"min_tokens", "m1_distance"}


def test_shape_pair_verdict_counts_samples_with_the_right_shapes(scored, tmp_path):
    config = MinTokensConfig(queries=1, score=score_preset("quick", max_tokens=3))
    rows = [{"image": f"{g}-0", "group": g, "caption": ""} for g in ("common", "rare", "unseen")]
    records = [dict(scored(r["image"], 1), in_distribution={"1": True, "2": False, "3": True}) for r in rows]
    summary = summarise(records, rows, config)
    assert shape_pair_verdict(summary, tmp_path, records, rows, config.score) is None  # samples not read
    summary["sample_kinds"] = {  # share of samples without the query's shapes, m = 1..3
        "common-0": {"miss": [0.25, 0.5, 0.5]},  # passes at m = 1 (<= 0.25)
        "rare-0": {"miss": [0.5, 0.0, 0.0]},  # m = 2 fails the positions check: m = 3
        "unseen-0": {"miss": [1.0, 0.5, 0.3]},  # never: "+"
    }
    verdict = shape_pair_verdict(summary, tmp_path, records, rows, config.score)
    assert verdict["threshold"] == 0.25
    assert verdict["tokens"] == {"common-0": 1, "rare-0": 3, "unseen-0": 4}
    assert verdict["groups"]["unseen"]["histogram"]["+"] == 1 and verdict["groups"]["rare"]["mean_tokens"] == 3
    assert verdict["spearman"]["rho"] == pytest.approx(1.0)


def test_element_counts_leave_out_queries_without_sample_grids(scored, tmp_path):
    from originality.report.grids import image_grid

    config = MinTokensConfig(
        queries=1, size=32, score=score_preset("quick", max_tokens=2, samples=2, distance="elements", check="positions")
    )
    text = "big red full circle and big blue full square"
    rows = [{"image": f"{g}-0", "group": g, "caption": text} for g in ("common", "rare", "unseen")]
    records = [scored(r["image"], 1, m_max=2) for r in rows]
    blank = Image.new("RGB", (32, 32), "white")
    for m in (1, 2):  # only the common query kept its grids
        (tmp_path / "scores" / "common-0" / "samples").mkdir(parents=True, exist_ok=True)
        image_grid([blank, blank], columns=10, cell=96).save(tmp_path / "scores" / "common-0" / "samples" / f"m{m}.png")
    summary = summarise(records, rows, config)
    read_samples(summary, tmp_path, records, rows, config.score)
    common, rare = summary["groups"]["common"], summary["groups"]["rare"]
    assert common["detected_elements_queries"] == 1 and common["detected_elements_by_m"] == [0.0, 0.0]
    assert rare["detected_elements_queries"] == 0 and rare["detected_elements_by_m"] == []
    assert common["kinds_by_m"]["miss"] == [1.0, 1.0] and rare["kinds_by_m"] == {}  # blank samples miss
    assert summary["sample_spearman"] == {"not_exact": None, "wrong_shapes": None}  # one group read
    # The grids are read once: without them, the next call takes what was read from samples.jsonl.
    shutil.rmtree(tmp_path / "scores" / "common-0" / "samples")
    again = summarise(records, rows, config)
    read_samples(again, tmp_path, records, rows, config.score)
    assert again["groups"]["common"]["kinds_by_m"] == common["kinds_by_m"]
    assert again["sample_kinds"] == summary["sample_kinds"] and list(again["sample_kinds"]) == ["common-0"]
