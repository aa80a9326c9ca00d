from PIL import Image

from originality.report.plots import rates_plot, zero_floor


def test_a_zero_rate_never_sits_on_a_small_real_one(tmp_path):
    # A 0.011% training pair among 3,018 read samples: under half a sample (1.7e-4). It was once drawn
    # at that floor, on top of the never-seen pairs.
    training = [0.0, 1.1e-4, 0.024]
    floor = zero_floor(training, 1.0)
    assert 0 < floor < 1.1e-4 / 2
    assert zero_floor([0.0, 0.0], 1 / 3018) < 1 / 3018
    rates = {"a + b": [0.0, 0.002], "a + c": [1.1e-4, 0.0], "b + c": [0.024, 0.004]}
    out = rates_plot(rates, {"b + c"}, 3018, tmp_path / "rates.png")
    assert Image.open(out).size[0] > 400
