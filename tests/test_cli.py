import json
import subprocess
import sys

import pytest

from originality.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "originality", *args], capture_output=True, text=True)


def test_make_stats_sheet(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["data", "make", "--spec", "originality-mix", "--n", "600", "--out", str(out), "--quiet"]) == 0
    assert main(["data", "stats", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert report["ok"] and report["statistics"]["images"] == 600
    assert main(["data", "sheet", str(out), "--out", str(tmp_path / "sheet.png")]) == 0
    assert (tmp_path / "sheet.png").stat().st_size > 1000


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
def test_bad_input_is_one_line_and_non_zero(tmp_path, args, message):
    (tmp_path / "something").write_text("x")
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_train_then_sample_and_resume_refusal(tmp_path):
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
                "--steps",
                "2",
                "--out",
                str(tmp_path / "grid.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "grid.png").is_file()
    result = run(*args[:-1], "unet_epochs=1")
    assert result.returncode == 2 and "holds a run with other settings" in result.stderr
    result = run("train", "--data", str(data), "--out", str(tmp_path / "m2"), "--preset", "tiny", "--set", "nope=1")
    assert result.returncode == 2 and "unknown training setting 'nope'" in result.stderr
