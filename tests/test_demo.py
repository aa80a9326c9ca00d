import csv
import json

import numpy as np
import pytest
from PIL import Image

from originality.demo import EXAMPLES, open_demo, write_examples
from originality.errors import OriginalityError
from originality.shapes.captions import parse_caption


def test_shipped_examples_are_what_write_examples_renders(tmp_path):
    write_examples(tmp_path)
    rows = list(csv.DictReader((EXAMPLES / "queries.csv").open()))
    assert [r["group"] for r in rows] == ["common", "rare", "unseen"]
    assert rows == list(csv.DictReader((tmp_path / "queries.csv").open()))
    for r in rows:
        shipped, fresh = Image.open(EXAMPLES / r["image"]), Image.open(tmp_path / r["image"])
        assert np.array_equal(np.asarray(shipped), np.asarray(fresh))
        assert len(parse_caption(r["caption"])) == 2


def test_demo_folder_resumes_restarts_or_refuses(tmp_path):
    out = tmp_path / "demo"
    open_demo(out, {"model": "a"})
    (out / "scores").mkdir()
    open_demo(out, {"model": "a"})  # same settings: resume
    assert (out / "scores").is_dir()
    open_demo(out, {"model": "b"})  # another model: our own folder starts again
    assert not (out / "scores").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(OriginalityError, match="not a demo folder"):
        open_demo(tmp_path / "mine", {"model": "a"})
    assert (tmp_path / "mine" / "notes.txt").is_file()


def tiny_config():
    """The quick preset at a tiny model's size: seconds, not minutes."""
    from originality.method.search import score_preset

    small = dict(inversion_steps=2, batch_size=2, samples=2, inference_steps=2, max_tokens=1, reference_samples=2)
    return score_preset("quick", **small, distance="ssim", check=None)


def test_demo_scores_the_examples_prints_a_table_and_writes_the_report(tiny_model, tmp_path, capsys):
    from originality.demo import run_demo

    config = tiny_config()
    records = run_demo(tmp_path / "demo", model=tiny_model, config=config, progress=False)
    assert [r["image"] for r in records] == ["common.png", "rare.png", "unseen.png"]
    printed = capsys.readouterr().out
    assert "big red full circle and big blue full square" in printed and "report:" in printed
    assert (tmp_path / "demo" / "scores" / "report.html").is_file()


def test_a_demo_folder_from_another_detector_starts_again(tiny_model, tmp_path, monkeypatch):
    import originality.batch as batch
    import originality.demo as demo

    config = tiny_config()
    demo.run_demo(tmp_path / "demo", model=tiny_model, config=config, progress=False)
    (tmp_path / "demo" / "scores" / "left-by-the-first-run").write_text("x")
    # a new detector shipped: its scores folder would be refused
    monkeypatch.setattr(batch, "detector_identity", lambda *a: "retrained")
    records = demo.run_demo(tmp_path / "demo", model=tiny_model, config=config, progress=False)
    assert len(records) == 3
    # It started again: the old folder is gone, the new one was scored under the new detector.
    assert not (tmp_path / "demo" / "scores" / "left-by-the-first-run").exists()
    settings = json.loads((tmp_path / "demo" / "scores" / "settings.json").read_text())
    assert settings["detector"] == "retrained"
    assert len((tmp_path / "demo" / "scores" / "results.jsonl").read_text().splitlines()) == 3
