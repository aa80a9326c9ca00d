import json
import subprocess
import sys

import pytest

from originality.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    """The real entry point in a process of its own: for what only a process shows (exit status, stderr)."""
    return subprocess.run([sys.executable, "-m", "originality", *args], capture_output=True, text=True)


def one_line_error(capsys, args: list[str], message: str) -> None:
    """``main(args)`` fails with exit status 2 and ``message`` on one line of stderr (in this process:
    importing torch again per case cost the suite about a minute)."""
    capsys.readouterr()
    assert main(args) == 2, args
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, (args, err)


def test_make_stats_sheet(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["data", "make", "--spec", "originality-mix", "--n", "600", "--out", str(out), "--quiet"]) == 0
    assert main(["data", "stats", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert report["ok"] and report["statistics"]["images"] == 600
    assert main(["data", "sheet", str(out), "--out", str(tmp_path / "sheet.png")]) == 0
    assert (tmp_path / "sheet.png").stat().st_size > 1000


def test_make_with_colours_and_sizes_inside_their_classes(tmp_path):
    from originality.shapes.dataset import read_info

    out = tmp_path / "data"
    argv = ["data", "make", "--spec", "all-elements", "--n", "8", "--out", str(out), "--quiet", "--workers", "1"]
    assert main([*argv, "--colour-jitter", "--size-jitter"]) == 0
    info = read_info(out)
    assert info["colour_jitter"] and info["size_jitter"]
    assert "colour and size drawn inside each class" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "make", "--spec", "nope", "--n", "5", "--out", "{tmp}/x"], "unknown spec preset 'nope'"),
        (["data", "make", "--spec", "all-elements", "--n", "0", "--out", "{tmp}/x"], "--n must be >= 1"),
        (["data", "make", "--spec", "all-elements", "--n", "5", "--out", "{tmp}"], "exists and is not empty"),
        (["data", "stats", "{tmp}"], "is not a shapes dataset"),
        (["data", "stats", "{tmp}/missing"], "dataset folder not found"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path, capsys, args, message):
    (tmp_path / "something").write_text("x")
    one_line_error(capsys, [a.format(tmp=tmp_path) for a in args], message)


def test_the_entry_point_exits_two_with_one_line(tmp_path):
    result = run("data", "stats", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "dataset folder not found" in result.stderr, result.stderr


def test_train_then_sample_and_resume_refusal(tmp_path, capsys):
    data, model = tmp_path / "data", tmp_path / "model"
    assert (
        main(["data", "make", "--spec", "originality-mix", "--n", "64", "--size", "32", "--out", str(data), "--quiet"])
        == 0
    )
    args = [
        "train",
        "--data",
        str(data),
        "--out",
        str(model),
        "--preset",
        "tiny",
        "--quiet",
        "--set",
        "unet_epochs=0.5",
    ]
    assert main(args) == 0
    assert "originality train" in (model / "README.md").read_text()
    assert (
        main(
            [
                "sample",
                "--model",
                str(model),
                "--prompt",
                "big red full circle",
                "--seeds",
                "2",
                "--inference-steps",
                "2",
                "--out",
                str(tmp_path / "grid.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "grid.png").is_file()
    one_line_error(capsys, [*args[:-1], "unet_lr=0.01"], "holds a run with other settings")  # fixed midway
    one_line_error(
        capsys,
        ["train", "--data", str(data), "--out", str(tmp_path / "m2"), "--preset", "tiny", "--set", "nope=1"],
        "unknown training setting 'nope'",
    )


def test_score_bad_inputs_are_one_line_errors(tmp_path, capsys):
    # a readable image: since the image is checked before the model, a broken one would fail first
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(tmp_path / "q.png")
    cases = [
        (
            ["score", str(tmp_path / "q.png"), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
            "model folder not found",
        ),
        (
            ["score", str(tmp_path / "q.png"), "--model", str(tmp_path), "--out", str(tmp_path / "o")],
            "not a diffusers pipeline folder",
        ),
        (["score", str(tmp_path / "q.png"), "--domain", "planets", "--out", str(tmp_path / "o")], "unknown domain"),
        (
            ["score", str(tmp_path / "q.png"), "--preset", "slow", "--out", str(tmp_path / "o")],
            "unknown scoring preset",
        ),
        (
            ["score", str(tmp_path / "q.png"), "--max-tokens", "0", "--out", str(tmp_path / "o")],
            "M (max tokens) must be >= 1",
        ),
        (
            ["score", str(tmp_path / "q.png"), "--phrase-length", "-1", "--out", str(tmp_path / "o")],
            "shift views and phrase length must be >= 0",
        ),
        (["score", str(tmp_path / "q.png"), "--signals", "some", "--out", str(tmp_path / "o")], "unknown --signals"),
        (
            ["score", str(tmp_path / "q.png"), "--reference-samples", "1", "--out", str(tmp_path / "o")],
            "reference samples must be >= 2",
        ),
        (
            [
                "detector",
                "evaluate",
                "--data",
                str(tmp_path),
                "--detector",
                str(tmp_path),
                "--out",
                str(tmp_path / "e"),
            ],
            "no detector weights",
        ),
    ]
    for args, message in cases:
        one_line_error(capsys, args, message)


def test_inversion_options_reach_the_score_config():
    from originality.cli import _score_config, build_parser

    args = build_parser().parse_args(["score", "q.png", "--out", "o", "--shift-views", "8", "--phrase-length", "9"])
    config = _score_config(args)
    assert (config.shift_views, config.phrase_length, config.preset) == (8, 9, "quick")
    assert _score_config(build_parser().parse_args(["score", "q.png", "--out", "o"])).phrase_length == 0


def test_pickled_only_model_folder_is_refused(tmp_path, capsys):
    (tmp_path / "m" / "unet").mkdir(parents=True)
    (tmp_path / "m" / "model_index.json").write_text("{}")
    (tmp_path / "m" / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    one_line_error(
        capsys, ["sample", "--model", str(tmp_path / "m"), "--prompt", "x", "--out", str(tmp_path / "g.png")],
        "safetensors only",
    )  # fmt: skip


def test_experiment_bad_inputs_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    exp = ["experiment", "min-tokens"]
    cases = [
        (exp + ["--queries", "0", "--out", str(tmp_path / "o")], "--queries must be >= 1"),
        (exp + ["--model", str(tmp_path / "taken"), "--out", str(tmp_path / "o")], "not a diffusers pipeline folder"),
        (exp + ["--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], "model folder not found"),
        (exp + ["--out", str(tmp_path / "taken")], "not a min-tokens run to resume"),
        (exp + ["--detector-threshold", "2", "--out", str(tmp_path / "o")], "detector threshold"),
    ]
    for args, message in cases:
        one_line_error(capsys, args, message)
    assert not (tmp_path / "o").exists()  # nothing half-written
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
