import json

import pytest

from originality.detection.detector import detector_identity
from originality.errors import OriginalityError
from originality.experiments.calibration import CalibrationConfig, calibrate, format_calibration


def test_calibration_measures_the_caption_ceiling_and_each_budget(tiny_model, tmp_path):
    config = CalibrationConfig(
        queries=1, samples=2, inference_steps=2, budgets=(2, 4), tokens=(1,), budget_queries=1, batch_size=2, size=32
    )
    report = calibrate(tiny_model, tmp_path / "cal", config, progress=False)
    assert json.loads((tmp_path / "cal" / "calibration.json").read_text()) == json.loads(json.dumps(report))
    assert report["detector"] == detector_identity()  # the rates are this detector's readings
    for group in ("common", "rare", "unseen"):
        rates = report["caption_ceiling"][group]["mean_match_rate"]
        assert set(rates) == {"0.5", "0.7", "0.9"} and all(0 <= v <= 1 for v in rates.values())
        assert len(report["caption_ceiling"][group]["queries"]) == 1
        swapped = report["caption_ceiling"][group]["mean_swapped_rate"]
        assert all(0 <= rates[th] + swapped[th] <= 1 for th in rates)  # exact and swapped exclude each other
        parts = report["caption_ceiling"][group]["by_colours"]
        assert set(parts) <= {"1", "2"} and sum(p["queries"] for p in parts.values()) == 1
    assert [(r["m"], r["steps"]) for r in report["inversion_budget"]] == [(1, 2), (1, 4)]
    assert "caption ceiling" in format_calibration(report)
    assert "caption ceiling" in (tmp_path / "cal" / "report.html").read_text()
    # A rerun of the same settings measures nothing again; other settings are refused in one line.
    before = (tmp_path / "cal" / "calibration.json").stat().st_mtime_ns
    assert calibrate(tiny_model, tmp_path / "cal", config, progress=False) == report
    assert (tmp_path / "cal" / "calibration.json").stat().st_mtime_ns == before
    with pytest.raises(OriginalityError, match="other settings"):
        calibrate(tiny_model, tmp_path / "cal", CalibrationConfig(queries=2, size=32), progress=False)
    with pytest.raises(OriginalityError, match="at least one query"):
        CalibrationConfig(queries=0).validate()
