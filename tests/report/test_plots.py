from matplotlib.axes import Axes
from PIL import Image

from originality.report.plots import ladder_plot, rates_plot, zero_floor


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


def test_the_ladder_plot_draws_a_measure_read_on_a_few_levels_beside_full_ones(tmp_path, monkeypatch):
    # The token count reads 3 of the 9 levels; the first measure drawn once set the levels every other
    # one was looked up on: KeyError 'ladder 1%' on the token count, after an hour of token counts.
    full = {f"ladder {v}%": float(i) for i, v in enumerate(("2.15", "1", "0.1", "0"))}
    summary = {
        "measures": {
            "token_count": {"rho": 0.3, "level_means": {"ladder 2.15%": 1.0, "ladder 0.1%": 3.0, "ladder 0%": 4.0}},
            "guidance_gap": {"rho": 0.4, "level_means": full},
        }
    }
    drawn = []
    real_plot = Axes.plot

    def plot(self, xs, ys, **kw):
        drawn.append(list(xs))
        return real_plot(self, xs, ys, **kw)

    monkeypatch.setattr(Axes, "plot", plot)
    out = ladder_plot(summary, tmp_path / "ladder.png")
    assert Image.open(out).size[0] > 400
    assert drawn == [[0, 1, 2, 3], [0, 2, 3]]  # each measure at its own levels' places
