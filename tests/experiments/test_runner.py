"""The experiment skeleton: a toy experiment in one file runs, resumes, refuses, and reaches the CLI."""

import dataclasses
from dataclasses import asdict, dataclass, field

import pytest

from originality import runs
from originality.cli import build_parser
from originality.errors import OriginalityError
from originality.experiments.runner import Experiment, option_fields, registered, run_experiment


@dataclass
class ToyConfig:
    n: int = field(default=3, metadata={"help": "how many squares"})
    label: str = "toy"
    scale: float = 1.0
    loud: bool = False
    pairs: tuple[int, ...] = (1, 2)  # given comma-separated
    extra: dict = field(default_factory=dict)  # not a plain type: no option of its own

    def validate(self):
        if self.n < 1:
            raise OriginalityError("--n must be >= 1")
        return self

    def to_dict(self):
        return asdict(self)


def toy_run(out, config, progress):
    done = {r["i"] for r in runs.read_jsonl(out / "rows.jsonl")}
    for i in range(config.n):
        if i not in done:
            runs.append_jsonl(out / "rows.jsonl", {"i": i, "square": config.scale * i * i})


def toy_summary(out, config):
    return {"total": sum(r["square"] for r in runs.read_jsonl(out / "rows.jsonl"))}


TOY = Experiment(
    name="toy",
    title="Toy: the sum of squares",
    presets={"default": ToyConfig, "big": lambda: ToyConfig(n=5)},
    run=toy_run,
    summarise=toy_summary,
    table=lambda s: f"total {s['total']:g}",
)


def test_a_toy_experiment_runs_resumes_and_refuses_other_settings(tmp_path):
    summary = run_experiment(TOY, tmp_path / "run", TOY.config("big", scale=2.0), progress=False)
    assert summary["total"] == 2.0 * (0 + 1 + 4 + 9 + 16)
    assert runs.read_json(tmp_path / "run" / "summary.json")["settings"]["config"]["n"] == 5
    assert "total 60" in (tmp_path / "run" / "report.html").read_text()
    # A resumed run adds nothing; another setting is refused in one line naming it.
    again = run_experiment(TOY, tmp_path / "run", TOY.config("big", scale=2.0), progress=False)
    assert again["total"] == summary["total"] and len(runs.read_jsonl(tmp_path / "run" / "rows.jsonl")) == 5
    with pytest.raises(OriginalityError, match="config.scale"):
        run_experiment(TOY, tmp_path / "run", TOY.config("big"), progress=False)
    with pytest.raises(OriginalityError, match="--n must be >= 1"):
        TOY.config(n=0)
    with pytest.raises(OriginalityError, match="unknown toy experiment preset 'huge'"):
        TOY.config("huge")


def test_plain_fields_become_options():
    fields = option_fields(ToyConfig)
    assert [(name, kind) for name, kind, _, _ in fields[:4]] == [
        ("n", int),
        ("label", str),
        ("scale", float),
        ("loud", bool),
    ]
    assert fields[0][3] == "how many squares"
    name, parse, default, _ = fields[4]
    assert (name, default, parse("3, 4")) == ("pairs", "1,2", (3, 4)) and len(fields) == 5


def test_registered_experiments_reach_the_command_line(capsys):
    assert "positive-control" in registered()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["experiment", "positive-control", "--help"])
    text = capsys.readouterr().out
    assert "--read" in text and "--detector-threshold" in text and "--preset {default,quick}" in text


def test_a_fresh_folder_the_run_failed_in_is_not_left_behind(tmp_path):
    """A bad model or input fails before anything is made: the folder (settings alone) goes, so that
    the corrected command is not refused as "other settings"."""

    def failing(out, config, progress):
        if config.label == "bad":
            raise OriginalityError("model folder not found: nowhere")
        toy_run(out, config, progress)

    toy = dataclasses.replace(TOY, run=failing)
    with pytest.raises(OriginalityError, match="not found"):
        run_experiment(toy, tmp_path / "run", toy.config(label="bad"), progress=False)
    assert not (tmp_path / "run").exists()
    assert run_experiment(toy, tmp_path / "run", toy.config(), progress=False)["total"] == 5
    # A folder with work in it is kept whatever fails later.
    with pytest.raises(OriginalityError, match="other settings"):
        run_experiment(toy, tmp_path / "run", toy.config(label="bad"), progress=False)
    assert (tmp_path / "run" / "rows.jsonl").is_file()
