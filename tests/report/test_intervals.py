import pytest

from originality.report.intervals import bootstrap_mean, mean_interval, wilson


def test_wilson_stays_inside_zero_one_and_holds_the_share():
    for k, n in [(0, 16), (16, 16), (8, 16), (1, 3)]:
        low, high = wilson(k, n)
        assert 0.0 <= low <= k / n <= high <= 1.0
    assert wilson(0, 16)[1] == pytest.approx(0.194, abs=1e-3)  # not a zero-width interval at 0 of n
    assert wilson(8, 16) == pytest.approx((0.280, 0.720), abs=1e-3)


def test_a_share_of_matches_gets_wilson_and_other_distances_a_bootstrap():
    assert mean_interval([0, 1, 1, 0]) == wilson(2, 4)
    low, high = mean_interval([0.1, 0.2, 0.3, 0.25])
    assert 0.1 <= low < 0.2125 < high <= 0.3
    assert bootstrap_mean([0.0, 0.0, 0.01])[0] >= 0.0  # never below 0, where mean - sd would be
