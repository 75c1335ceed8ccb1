"""Learning-curve statistics against hand-computed values."""

import math

import numpy as np
import pytest

from alseg.bench.curves import MIN_SEEDS_FOR_TEST, aubc, mean_curve, mean_std, paired_comparison


def test_aubc_is_the_trapezoid_area_over_the_budget_span():
    # Trapezoids: (10→20) (0.2+0.4)/2*10 = 3; (20→40) (0.4+0.8)/2*20 = 12; area 15 over a span of 30.
    assert aubc([10, 20, 40], [0.2, 0.4, 0.8]) == pytest.approx(0.5)
    assert aubc([5, 9], [0.3, 0.3]) == pytest.approx(0.3)  # a flat curve's AUBC is its value
    assert aubc([7], [0.42]) == pytest.approx(0.42)
    assert aubc([7, 7], [0.4, 0.6]) == pytest.approx(0.5)  # no budget span: the mean
    # a round that labelled nothing adds a zero-width trapezoid: (4→6) 0.5*2 = 1, (6→6) 0, (6→8) 0.7*2 = 1.4
    assert aubc([4, 6, 6, 8], [0.4, 0.6, 0.6, 0.8]) == pytest.approx(2.4 / 4)


@pytest.mark.parametrize(
    ("x", "y"), [([], []), ([1, 2], [0.1]), ([[1, 2]], [[0.1, 0.2]]), ([3, 1], [0.1, 0.2])], ids=str
)
def test_aubc_rejects_malformed_curves(x, y):
    with pytest.raises(ValueError, match="aubc"):
        aubc(x, y)


def test_mean_std_is_the_sample_std_over_seeds():
    mean, std = mean_std([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(std, [math.sqrt(2), math.sqrt(8)])  # ddof=1
    mean, std = mean_std([[1.0, 2.0]])
    np.testing.assert_allclose(mean, [1.0, 2.0])
    assert np.isnan(std).all()


def test_mean_curve_averages_counts_and_metric():
    curve = mean_curve([[4, 6], [4, 8]], [[0.1, 0.3], [0.3, 0.5]])
    np.testing.assert_allclose(curve.num_labeled, [4, 7])
    np.testing.assert_allclose(curve.mean, [0.2, 0.4])
    np.testing.assert_allclose(curve.std, [math.sqrt(0.02)] * 2)


def test_paired_comparison_counts_and_the_paired_t_test():
    assert MIN_SEEDS_FOR_TEST == 2
    # Differences 1, 2, -3, 4, 5, 6 counted; 1, 2, 3 tested: t² = 12 on 2 degrees of freedom, p = 1 − √(12 / 14).
    result = paired_comparison([1, 2, -3, 4, 5, 6], [0] * 6)
    assert (result.n, result.wins, result.ties, result.losses) == (6, 5, 0, 1)
    assert result.mean == pytest.approx(2.5)
    assert result.std == pytest.approx(np.std([1, 2, -3, 4, 5, 6], ddof=1))
    three = paired_comparison([2, 3, 4], [1, 1, 1])
    assert three.p_value == pytest.approx(1 - math.sqrt(12 / 14)) and three.direction == 0  # p 0.074
    assert paired_comparison([2, 3, 4], [1, 1, 1], alpha=0.1).direction == 1
    assert paired_comparison([0.2, 0.25, 0.3], [0.5, 0.6, 0.55]).direction == -1


def test_paired_comparison_has_no_test_with_one_seed_and_handles_constant_differences():
    one = paired_comparison([0.3], [0.1])
    assert (one.p_value, one.direction, one.wins) == (None, 0, 1) and np.isnan(one.std)
    none = paired_comparison([0.3] * 6, [0.3] * 6)
    assert (none.p_value, none.direction, none.ties) == (1.0, 0, 6)
    constant = paired_comparison([0.5, 0.6], [0.4, 0.5])  # 0.1 on both seeds (up to float rounding)
    assert (constant.p_value, constant.direction) == (0.0, 1)
    mixed = paired_comparison([0.5, 0.7, 0.2], [0.4, 0.7, 0.3])
    assert (mixed.wins, mixed.ties, mixed.losses, mixed.direction) == (1, 1, 1, 0)
    assert mixed.mean == pytest.approx(0.0)
