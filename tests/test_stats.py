"""Known answers for the statistics every experiment reports; a sign flip or an off-by-one fails here."""

import pytest

from originality.stats import auroc, bootstrap_interval, bootstrap_mean, rho, slope, spearman, wilson


def test_spearman_known_answers_and_sign():
    # scipy's documented example
    result = spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
    assert result["rho"] == pytest.approx(0.8207826816681233) and result["p"] == pytest.approx(0.0885870053135438)
    assert result["n"] == 5
    assert rho([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert rho([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)  # a flipped sign fails here
    assert spearman([1, 1, 1], [1, 2, 3]) is None and rho([1, 2, 3], [4, 4, 4]) is None
    with pytest.raises(ValueError, match="paired"):
        spearman([1, 2], [1, 2, 3])


def test_auroc_known_answers_and_direction():
    assert auroc([1, 2], [3, 4]) == 1.0
    assert auroc([3, 4], [1, 2]) == 0.0  # the direction is "first group below the second"
    assert auroc([1, 3], [2, 4]) == 0.75
    assert auroc([1], [1]) == 0.5 and auroc([1, 2], [2]) == 0.75
    assert auroc([], [1]) is None


def test_slope_and_wilson_known_answers():
    assert slope([0, 1, 2], [1, 3, 5]) == pytest.approx(2.0)
    assert slope([0, 1, 2], [5, 3, 1]) == pytest.approx(-2.0)
    assert slope([1, 1], [0, 1]) is None
    assert wilson(0, 10) == pytest.approx((0.0, 0.27754), abs=1e-5)
    assert wilson(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson(0, 0) == (0.0, 1.0)


def test_bootstrap_resamples_units_within_strata():
    values = {"a1": 1.0, "a2": 1.0, "b1": 3.0, "b2": 5.0}
    level = {"a1": "a", "a2": "a", "b1": "b", "b2": "b"}
    seen = []

    def mean_of(sample):
        seen.append(sorted(sample))
        return sum(values[u] for u in sample) / len(sample)

    low, high = bootstrap_interval(level, mean_of, draws=400, seed=1)
    # Every draw keeps two units of each stratum: the mean lies in [(1+1+3+3)/4, (1+1+5+5)/4].
    assert all(sum(u.startswith("a") for u in s) == 2 for s in seen)
    assert 2.0 <= low < 2.5 < high <= 3.0
    assert bootstrap_interval(level, lambda s: None) is None
    assert bootstrap_mean([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2))
