import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

import originality.batch as batch_module
import originality.scorer as scorer_module
from originality.batch import RESULTS, finished, score_all
from originality.errors import OriginalityError
from originality.method.search import score_preset
from originality.models import load_pipeline
from originality.runs import LOCK, SETTINGS


def write_image(path, colour):
    image = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(image).ellipse((6, 6, 20, 20), fill=colour)
    image.save(path)


class Counting:
    def __init__(self):
        self.calls = 0

    def __call__(self, query, samples):
        self.calls += 1
        return np.zeros(len(samples))


CONFIG = dict(inversion_steps=2, batch_size=2, samples=2, inference_steps=2, check=None, max_tokens=1, signals="none")


def test_batch_resumes_without_redoing_finished_images(tiny_model, tmp_path, monkeypatch):
    pipeline = load_pipeline(tiny_model)
    images = tmp_path / "in"
    images.mkdir()
    for name, colour in [("a.png", "red"), ("b.png", "blue"), ("c.png", "green")]:
        write_image(images / name, colour)
    out = tmp_path / "out"
    real = scorer_module.score
    calls = []

    def dies_on_b(image, *args, name="", **kw):
        calls.append(name)
        if name == "b.png":
            raise KeyboardInterrupt  # killed while scoring b
        return real(image, *args, name=name, **kw)

    monkeypatch.setattr(scorer_module, "score", dies_on_b)
    with pytest.raises(KeyboardInterrupt):
        score_all(images, pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting())
    assert set(finished(out)) == {"a.png"}
    assert sorted(p.name for p in out.iterdir()) == ["a.png", RESULTS, SETTINGS]  # nothing half-written
    monkeypatch.setattr(scorer_module, "score", real)
    distance = Counting()
    records = score_all(images, pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=distance)
    assert [r["image"] for r in records] == ["a.png", "b.png", "c.png"]
    assert distance.calls == 2  # a.png was not scored again
    lines = (out / RESULTS).read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["label"] == "1" for line in lines)


def test_a_rerun_with_other_settings_is_refused_not_mixed_in(tiny_model, tmp_path):
    pipeline = load_pipeline(tiny_model)
    write_image(tmp_path / "a.png", "red")
    write_image(tmp_path / "b.png", "blue")
    out = tmp_path / "out"
    score_all(tmp_path / "a.png", pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting())
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    other = score_preset("quick", **{**CONFIG, "inversion_steps": 3})
    with pytest.raises(OriginalityError, match=r"other settings \(inversion_steps\)"):
        score_all(tmp_path / "b.png", pipeline, other, out, progress=False, distance=Counting())
    same = score_preset("quick", **CONFIG)
    with pytest.raises(OriginalityError, match=r"other settings \(model\)"):
        score_all(tmp_path / "b.png", pipeline, same, out, progress=False, distance=Counting(), model="another")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing written
    # Settings saved before a setting existed (here phrase_length) resume at its default; so
    # does a folder scored before settings were kept at all.
    saved = json.loads((out / SETTINGS).read_text())
    del saved["config"]["phrase_length"]
    (out / SETTINGS).write_text(json.dumps(saved))
    score_all(tmp_path / "b.png", pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting())
    (out / SETTINGS).unlink()
    records = score_all(tmp_path, pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting())
    assert sorted(r["image"] for r in records) == ["a.png", "b.png"] and (out / SETTINGS).is_file()


def test_a_run_read_by_another_detector_is_refused_not_mixed_in(tiny_model, tmp_path, monkeypatch):
    import originality.batch as batch

    pipeline = load_pipeline(tiny_model)
    write_image(tmp_path / "a.png", "red")
    out, config = tmp_path / "out", score_preset("quick", **CONFIG)
    score_all(tmp_path / "a.png", pipeline, config, out, progress=False, distance=Counting())
    assert json.loads((out / SETTINGS).read_text())["detector"] == batch.detector_identity()
    monkeypatch.setattr(batch, "detector_identity", lambda *a: "retrained")
    with pytest.raises(OriginalityError, match=r"other settings \(detector\)"):
        score_all(tmp_path / "a.png", pipeline, config, out, progress=False, distance=Counting())


def test_report_escapes_a_hostile_file_name(tiny_model, tmp_path):
    hostile = "<img src=x onerror=alert(1)>.png"
    images = tmp_path / "in"
    images.mkdir()
    write_image(images / hostile, "red")
    score_all(
        images,
        load_pipeline(tiny_model),
        score_preset("quick", **CONFIG),
        tmp_path / "out",
        progress=False,
        distance=Counting(),
    )
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    page = (folder / "report.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.png" in page
    assert "data:image/png;base64," in page  # self-contained


def test_bad_inputs(tmp_path, tiny_model):
    pipeline = load_pipeline(tiny_model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OriginalityError, match="no images in"):
        score_all(tmp_path / "empty", pipeline, score_preset("quick", **CONFIG), tmp_path / "o1", progress=False)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(OriginalityError, match="cannot read image"):
        score_all(
            tmp_path / "broken.png",
            pipeline,
            score_preset("quick", **CONFIG),
            tmp_path / "o2",
            progress=False,
            distance=Counting(),
        )


def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(tiny_model, tmp_path):
    import os
    import subprocess
    import sys

    pipeline = load_pipeline(tiny_model)
    write_image(tmp_path / "a.png", "red")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text(str(os.getpid()))  # a live process holds the folder
    with pytest.raises(OriginalityError, match="another run"):
        score_all(
            tmp_path / "a.png", pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting()
        )
    assert not (out / RESULTS).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK).write_text(dead.stdout.strip())  # left by a killed run
    records = score_all(
        tmp_path / "a.png", pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting()
    )
    assert [r["image"] for r in records] == ["a.png"] and not (out / LOCK).exists()


def test_a_run_stopped_in_its_first_image_resumes(tiny_model, tmp_path, monkeypatch):
    pipeline = load_pipeline(tiny_model)
    write_image(tmp_path / "a.png", "red")
    out = tmp_path / "out"
    real = scorer_module.score

    def killed(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(scorer_module, "score", killed)
    with pytest.raises(KeyboardInterrupt):
        score_all(
            tmp_path / "a.png", pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting()
        )
    assert sorted(p.name for p in out.iterdir()) == [SETTINGS]  # no temp folder, no results yet
    monkeypatch.setattr(scorer_module, "score", real)
    records = score_all(
        tmp_path / "a.png", pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting()
    )
    assert [r["image"] for r in records] == ["a.png"]


def test_a_torn_last_record_does_not_swallow_the_next(tiny_model, tmp_path):
    pipeline = load_pipeline(tiny_model)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", "red")
    out = tmp_path / "out"
    score_all(tmp_path / "in", pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting())
    with (out / RESULTS).open("a") as f:
        f.write('{"image": "b.png", "fol')  # a kill tore this record
    write_image(tmp_path / "in" / "b.png", "blue")
    score_all(tmp_path / "in", pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=Counting())
    assert sorted(finished(out)) == ["a.png", "b.png"]
    distance = Counting()
    score_all(tmp_path / "in", pipeline, score_preset("quick", **CONFIG), out, progress=False, distance=distance)
    assert distance.calls == 0  # b.png's record survived: nothing scored again


def test_fast_signals_never_invert_and_report_percentiles(tiny_model, tmp_path, monkeypatch):
    pipeline = load_pipeline(tiny_model)
    (tmp_path / "in").mkdir()
    for name, colour in [("a.png", "red"), ("b.png", "blue")]:
        write_image(tmp_path / "in" / name, colour)
    monkeypatch.setattr(scorer_module, "score", lambda *a, **k: pytest.fail("--signals fast ran an inversion"))
    config = score_preset("quick", **{**CONFIG, "signals": "fast"}, reference_samples=3)
    records = score_all(
        tmp_path / "in", pipeline, config, tmp_path / "out", progress=False, prompt="big red full circle"
    )
    assert [r["label"] for r in records] == ["signals only"] * 2
    for r in records:
        assert set(r["signals"]) == {"unconditional_loss", "conditional_loss", "guidance_gap"}
        assert all(0 <= p <= 100 for p in r["percentiles"].values()) and r["prompt_source"] == "user"
        result = json.loads((tmp_path / "out" / r["folder"] / "result.json").read_text())
        assert result["familiarity"]["signals"] == r["signals"] and result["per_m"] == []
    assert (tmp_path / "out" / "reference-shapes.json").is_file()
    assert "guidance gap" in batch_module.summary_table(records)
    assert "more familiar than" in batch_module.write_batch_report(tmp_path / "out", records).read_text()


def test_all_signals_add_the_learned_tokens_gap_to_the_count(tiny_model, tmp_path):
    pipeline = load_pipeline(tiny_model)
    write_image(tmp_path / "a.png", "red")
    config = score_preset("quick", **{**CONFIG, "signals": "all"}, reference_samples=2)
    out = tmp_path / "out"
    (record,) = score_all(tmp_path / "a.png", pipeline, config, out, progress=False, distance=Counting(), prompt="red")
    assert record["label"] == "1" and set(record["learned_token_gap"]) == {"m1"}
    result = json.loads((out / record["folder"] / "result.json").read_text())
    assert result["familiarity"]["learned_token_gap"] == record["learned_token_gap"]
    assert "Familiarity" in (out / record["folder"] / "report.html").read_text()
