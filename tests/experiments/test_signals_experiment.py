import json

import pytest

from originality.errors import OriginalityError
from originality.experiments import signals as experiment
from originality.experiments.signals import MAIN, SignalsConfig, run_signals
from originality.method.signals import SignalConfig

KEYS = {"rho", "p", "rho_ci", "auroc", "auroc_ci", "dose_response_rho", "dose_response_ci", "controls",
        "passes_controls", "group_means", "seeds", "by_colours", "seconds_per_image"}  # fmt: skip


def tiny_config(queries: int) -> SignalsConfig:
    return SignalsConfig(
        queries=queries,
        size=32,
        groups=(*MAIN, "triangle+hexagon"),
        grid_seeds=(0, 1),
        grid=SignalConfig(timesteps=4, t_min=50, t_max=950, batch_size=4),
        reference_samples=2,
        reference_steps=2,
        bootstrap=20,
    )


def test_the_experiment_summarises_every_signal_and_resumes(tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "signals"
    summary = run_signals(tiny_model, out, tiny_config(1), progress=False)
    for name in ("guidance_gap", "unconditional_loss", "conditional_loss", "guidance_gap_vs_elements"):
        assert KEYS <= set(summary["signals"][name]), name
        assert set(summary["signals"][name]["auroc"]) == {"common<rare", "rare<unseen", "common<unseen"}
        assert set(summary["signals"][name]["group_means"]) == {*MAIN, "triangle+hexagon"}
        assert len(summary["signals"][name]["seeds"]) == 2
    assert summary["frequencies"]["common"] == pytest.approx(0.30) and summary["frequencies"]["unseen"] == 0.0
    assert 0.05 < summary["frequencies"]["triangle+hexagon"] < 0.15
    assert set(summary["signals"]["guidance_gap"]["controls"]) == {"triangle"}  # the only triple all present
    # the baselines beside every signal: the lookup is the ceiling, the elements alone are read
    lookup = summary["signals"]["baseline_caption_lookup"]
    assert lookup["rho"] == pytest.approx(1.0) and lookup["dose_response_rho_exact"] == pytest.approx(1.0)
    for name in ("baseline_elements_only_guidance_gap", "baseline_elements_only_unconditional_loss"):
        assert KEYS <= set(summary["signals"][name]) and summary["signals"][name]["group_means"]["common"] > 0
    saved = json.loads((out / "summary.json").read_text())
    assert saved["signals"].keys() == summary["signals"].keys()
    assert (out / "signals.png").is_file() and (out / "report.html").is_file()
    assert len((out / "readings.jsonl").read_text().splitlines()) == 4

    read = []
    real = experiment.query_readings
    monkeypatch.setattr(experiment, "query_readings", lambda *a, **k: read.append(a[2]) or real(*a, **k))
    run_signals(tiny_model, out, tiny_config(2), progress=False)  # more queries extend the run
    assert len(read) == 4  # only the second query of each group was read
    assert len((out / "readings.jsonl").read_text().splitlines()) == 8


def test_another_grid_into_the_same_folder_is_refused(tiny_model, tmp_path):
    run_signals(tiny_model, tmp_path / "s", tiny_config(1), progress=False)
    other = tiny_config(1)
    other.grid_seeds = (5,)
    with pytest.raises(OriginalityError, match="other settings"):
        run_signals(tiny_model, tmp_path / "s", other, progress=False)


def test_token_counts_come_only_from_a_run_of_the_same_queries(tmp_path):
    run = tmp_path / "mt"
    (run / "scores").mkdir(parents=True)
    (run / "experiment.json").write_text(
        json.dumps({"config": {"query_seed": 7_000_003, "size": 64, "score": {"max_tokens": 5}}})
    )
    lines = [{"image": "queries/common-00.png", "count": None, "soft_tokens": 6.0},
             {"image": "queries/rare-00.png", "count": 2, "soft_tokens": 1.5}]  # fmt: skip
    (run / "scores" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    rows = [{"image": "queries/common-00.png"}, {"image": "queries/rare-00.png"}]
    tokens = experiment.tokens_of(run, rows, SignalsConfig())
    assert tokens["queries/common-00.png"]["token_count"] == 6.0 and tokens["queries/rare-00.png"]["soft_count"] == 1.5
    with pytest.raises(OriginalityError, match="other queries"):
        experiment.tokens_of(run, rows, SignalsConfig(query_seed=1))
    with pytest.raises(OriginalityError, match="no min-tokens run"):
        experiment.tokens_of(tmp_path, rows, SignalsConfig())
