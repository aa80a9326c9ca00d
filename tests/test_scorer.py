"""One scorer per command, and a batch that survives its worst image (issue 35)."""

import dataclasses
import json
import os

import pytest
from PIL import Image, ImageDraw

import originality.batch as batch_module
import originality.images as images_module
from originality import __version__
from originality.batch import FAILED_EXIT, RESULTS, finished, score_all
from originality.cli import main
from originality.detection.detector import ElementDetector
from originality.errors import OriginalityError
from originality.method.familiarity import load_reference
from originality.method.search import ScoreConfig, saved_config, score_preset
from originality.models import load_pipeline
from originality.runs import SETTINGS

SMALL = dict(inversion_steps=2, batch_size=2, samples=2, inference_steps=2, max_tokens=1, reference_samples=2)


def drawn(path, colour="red", size=(32, 32)):
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).ellipse((6, 6, 20, 20), fill=colour)
    image.save(path)
    return path


def folder_of_three(root):
    root.mkdir()
    for name, colour in [("a.png", "red"), ("b.png", "blue"), ("c.png", "green")]:
        drawn(root / name, colour)
    return root


@pytest.fixture
def counted(monkeypatch):
    """How many detectors were built (the Ultralytics model class), configs resolved, files opened."""
    counts = {"detectors": 0, "resolutions": 0, "opens": 0}
    build, resolve, open_header = ElementDetector.build, ScoreConfig.resolve, images_module.open_header

    def counting_build(*args, **kwargs):
        counts["detectors"] += 1
        return build(*args, **kwargs)

    def counting_resolve(self, domain):
        counts["resolutions"] += 1
        return resolve(self, domain)

    def counting_open(path):
        counts["opens"] += 1
        return open_header(path)

    monkeypatch.setattr(ElementDetector, "build", staticmethod(counting_build))
    monkeypatch.setattr(ScoreConfig, "resolve", counting_resolve)
    monkeypatch.setattr(images_module, "open_header", counting_open)
    monkeypatch.setattr(batch_module, "open_header", counting_open)
    return counts


@pytest.mark.parametrize("signals", ["fast", "all"])
def test_a_batch_builds_one_detector_resolves_once_and_opens_each_input_twice(
    tiny_model, tmp_path, counted, signals, capsys
):
    images = folder_of_three(tmp_path / "in")
    argv = ["score", str(images), "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet"]
    argv += [
        "--signals",
        signals,
        "--inversion-steps",
        "2",
        "--samples",
        "2",
        "--inference-steps",
        "2",
        "--max-tokens",
        "1",
    ]
    argv += ["--reference-samples", "2", "--force", "--no-check"]
    assert main(argv) == 0, capsys.readouterr().err
    assert counted["detectors"] == 1  # reading, distance, signals' prompt and reference share one
    assert counted["resolutions"] == 2  # the preparation and the scorer, once per domain: not per image
    assert counted["opens"] == 2 * 3  # each input's header once at the check, its pixels once to score
    records = [json.loads(x) for x in (tmp_path / "out" / RESULTS).read_text().splitlines()]
    assert {r["status"] for r in records} == {"ok"} and {r["schema"] for r in records} == {2}
    assert all(r["prompt_source"] == "reading" or r["prompt_source"] == "domain" for r in records)


def test_a_batch_survives_its_worst_inputs_and_retries_them(tiny_model, tmp_path, capsys):
    images = folder_of_three(tmp_path / "in")
    (images / "zz.png").write_bytes((images / "a.png").read_bytes()[:80])  # a header that reads, then nothing
    (images / "not-an-image.png").write_text("hello")
    odd = images / os.fsdecode(b"r\xe9sum\xe9.png")  # a name that is not UTF-8
    drawn(odd, "black")
    argv = ["score", str(images), "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--quiet"]
    argv += [
        "--signals",
        "none",
        "--inversion-steps",
        "2",
        "--samples",
        "2",
        "--inference-steps",
        "2",
        "--max-tokens",
        "1",
    ]
    argv += ["--force", "--no-check"]
    assert main(argv) == FAILED_EXIT
    err = capsys.readouterr().err
    assert "2 of 6 inputs failed" in err
    done = finished(tmp_path / "out")
    assert done["zz.png"]["status"] == "error" and "cannot read image" in done["zz.png"]["reason"]
    assert done["not-an-image.png"]["status"] == "error"  # both bad files named, in one run
    assert done["r\\xe9sum\\xe9.png"]["status"] == "ok"  # scored, and written as text
    assert all(done[k]["status"] == "ok" for k in ("a.png", "b.png", "c.png"))
    page = (tmp_path / "out" / "report.html").read_text()
    assert "r\\xe9sum\\xe9.png" in page and "cannot read image" in page
    # A rerun retries the two errors alone (they fail again); the good ones are not scored again.
    lines_before = len((tmp_path / "out" / RESULTS).read_text().splitlines())
    assert main(argv) == FAILED_EXIT
    lines_after = len((tmp_path / "out" / RESULTS).read_text().splitlines())
    assert lines_after == lines_before + 2


def test_a_csv_is_keyed_by_row_and_the_prompt_is_part_of_the_run(tiny_model, tmp_path):
    drawn(tmp_path / "a.png")
    (tmp_path / "list.csv").write_text("image,prompt\na.png,big red full circle\na.png,big blue full square\n")
    pipeline = load_pipeline(tiny_model)
    config = score_preset("quick", **SMALL, signals="fast")
    records = score_all(tmp_path / "list.csv", pipeline, config, tmp_path / "out", progress=False)
    assert [r["key"] for r in records] == ["row 2: a.png", "row 3: a.png"]
    assert len({r["folder"] for r in records}) == 2
    assert [r["prompt"] for r in records] == ["big red full circle", "big blue full square"]
    assert json.loads((tmp_path / "out" / SETTINGS).read_text())["prompt"] is None
    drawn(tmp_path / "b.png")
    score_all(tmp_path / "b.png", pipeline, config, tmp_path / "o2", progress=False, prompt="red")
    with pytest.raises(OriginalityError, match=r"other settings \(prompt\)"):
        score_all(tmp_path / "b.png", pipeline, config, tmp_path / "o2", progress=False, prompt="blue")
    # A folder written before the prompt was recorded is refused, naming what differs.
    saved = json.loads((tmp_path / "o2" / SETTINGS).read_text())
    del saved["prompt"], saved["schema"]
    (tmp_path / "o2" / SETTINGS).write_text(json.dumps(saved))
    with pytest.raises(OriginalityError, match=r"other settings \((prompt, schema|schema, prompt)\)"):
        score_all(tmp_path / "b.png", pipeline, config, tmp_path / "o2", progress=False, prompt="red")


@pytest.mark.parametrize("bad", ["NaN", "Infinity", '"high"'])
def test_a_cached_reference_with_bad_numbers_is_refused(tmp_path, bad):
    (tmp_path / "ref.json").write_text(
        f'{{"model": "m", "settings": {{}}, "values": {{"guidance_gap": [1.0, {bad}]}}, "prompts": []}}'
    )
    with pytest.raises(OriginalityError, match="not finite numbers"):
        load_reference(tmp_path / "ref.json", "m", {})


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--device", "tpu9"], "unknown device 'tpu9'"),
        (["--device", "cuda"], "no CUDA GPU"),
        (["--reference-samples", "100000"], "--reference-samples is at most 4096"),
        (["--prompt", "r\udce9sum\udce9"], "--prompt is not valid UTF-8"),
    ],
)
def test_bad_score_options_are_one_line_errors_before_the_model_loads(tmp_path, capsys, extra, message):
    if "cuda" in extra and __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    drawn(tmp_path / "q.png", size=(64, 64))
    argv = ["score", str(tmp_path / "q.png"), "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_detector_confidence_out_of_range_is_one_line(tmp_path, capsys):
    drawn(tmp_path / "q.png", size=(64, 64))
    for value in ("nan", "5"):
        argv = ["detector", "detect", str(tmp_path / "q.png"), "--out", str(tmp_path / "d")]
        assert main([*argv, "--detector-threshold", value]) == 2
        assert "--detector-threshold must be a number in (0, 1]" in capsys.readouterr().err
    # The old spelling works for a release, with a one-line warning; the check is the same.
    assert main([*argv, "--threshold", "5"]) == 2
    err = capsys.readouterr().err
    assert "warning: --threshold is deprecated and will be removed; use --detector-threshold" in err
    assert "--detector-threshold must be a number in (0, 1]" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"originality {__version__}"


def test_a_strip_of_an_image_says_it_was_cropped(tiny_model, tmp_path):
    Image.new("RGB", (4000, 10), "white").save(tmp_path / "strip.png")
    config = score_preset("quick", **SMALL, signals="none")
    (record,) = score_all(tmp_path / "strip.png", load_pipeline(tiny_model), config, tmp_path / "o", progress=False)
    assert record["label"] == "unreadable"
    assert "the 4000x10 image was cropped to its middle 10x10" in record["reason"]


def test_the_presets_are_the_only_source_of_defaults():
    assert ScoreConfig().preset == "paper" and ScoreConfig().inversion_steps == 2000  # the paper's numbers, named so
    assert score_preset("quick").signals == ScoreConfig().signals == "all"


def test_the_old_spelling_of_inversion_steps_still_works_with_a_warning():
    with pytest.warns(FutureWarning, match="use inversion_steps"):
        config = score_preset("quick", steps=7)
    assert config.inversion_steps == 7 and config.steps is None
    # Settings saved when it was called steps read as the same config.
    old = {**dataclasses.asdict(score_preset("quick", inversion_steps=9)), "steps": 9}
    del old["inversion_steps"]
    assert saved_config(old) == saved_config(dataclasses.asdict(score_preset("quick", inversion_steps=9)))
