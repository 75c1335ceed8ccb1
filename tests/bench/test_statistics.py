"""The paired t-test, the pairwise penalty matrix and the bootstrap ranking against hand-computed answers."""

import math
import warnings

import numpy as np
import pytest

from alseg.bench.statistics import (
    MIN_SEEDS_FOR_TEST,
    bootstrap_ranking,
    compare,
    paired_t_test,
    penalty_matrix,
)


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_paired_t_test_matches_the_closed_forms_of_few_degrees_of_freedom():
    # Differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / √3), t² = 12; with 2 degrees of freedom p = 1 − √(t² / (2 + t²)).
    assert paired_t_test([1, 2, 3], [0, 0, 0]) == pytest.approx(1 - math.sqrt(12 / 14))
    # Differences 1, 3: mean 2, sd √2, t = 2; with 1 degree of freedom (Cauchy) p = 1 − 2/π · atan(t).
    assert paired_t_test([1.5, 3.5], [0.5, 0.5]) == pytest.approx(1 - 2 / math.pi * math.atan(2))
    assert paired_t_test([0, 0, 0], [1, 2, 3]) == pytest.approx(1 - math.sqrt(12 / 14))  # two-sided


def test_constant_differences_need_no_variance():
    assert paired_t_test([0.3, 0.3, 0.3], [0.3, 0.3, 0.3]) == 1.0  # no difference: not significant
    assert paired_t_test([0.5, 0.7, 0.9], [0.5, 0.7, 0.9]) == 1.0
    assert paired_t_test([0.3, 0.3], [0.2, 0.2]) == 0.0  # one nonzero difference on every seed: significant
    # 0.1 apart up to float rounding (0.09999999999999998, 0.10000000000000003, ...): constant, no scipy warning
    assert paired_t_test([0.3, 0.4, 0.5], [0.2, 0.3, 0.4]) == 0.0
    np.testing.assert_array_equal(compare([[0.2, 0.3], [0.2, 0.3]], [[0.3, 0.3], [0.3, 0.3]]), [-1, 0])


def test_paired_t_test_is_vectorised_over_trailing_axes():
    values = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    p_values = paired_t_test(values, np.zeros((3, 2)))
    assert p_values.shape == (2,)
    assert p_values[0] == pytest.approx(1 - math.sqrt(12 / 14)) and p_values[1] == 0.0


@pytest.mark.parametrize(("values", "reference"), [([1.0], [0.0]), ([1, 2], [1, 2, 3]), (1.0, 0.0)], ids=str)
def test_paired_t_test_rejects_too_few_seeds_or_unpaired_arrays(values, reference):
    assert MIN_SEEDS_FOR_TEST == 2
    with pytest.raises(ValueError, match="paired_t_test"):
        paired_t_test(values, reference)


def test_compare_needs_significance_and_takes_the_direction_of_the_mean():
    assert compare([1, 2, 3], [0, 0, 0]) == 0  # p 0.074
    assert compare([1, 2, 3], [0, 0, 0], alpha=0.1) == 1
    assert compare([0, 0, 0], [1, 2, 3], alpha=0.1) == -1


def curves(seeds=6, rounds=4):
    """Per-seed curves ``[S, R]`` of a base strategy: Dice rising 0.1 per round, seeds apart by a few hundredths."""
    noise = np.random.default_rng(0).normal(0, 0.01, size=(seeds, rounds))
    return 0.2 + 0.1 * np.arange(rounds) + noise


def test_a_strategy_better_at_every_budget_point_wins_all_of_them():
    base = curves()
    noise = np.random.default_rng(1).normal(0, 0.005, size=base.shape)
    better = base + 0.1 + noise
    better[:, 0] = base[:, 0]  # round 0: the same initial training
    matrix = penalty_matrix([base, better, base.copy()])
    np.testing.assert_array_equal(matrix.wins, [[0, 0, 0], [1, 0, 1], [0, 0, 0]])  # identical strategies: 0
    np.testing.assert_array_equal(matrix.beaten, [1, 0, 1])
    assert matrix.budget_points == 3 and matrix.tested.sum() == 6
    np.testing.assert_array_equal(matrix.common_seeds, np.full((3, 3), 6))


def test_round_zero_is_no_budget_point_and_the_fraction_counts_query_rounds():
    base = curves()
    other = base.copy()
    other[:, 0] += 0.3  # a difference in round 0 does not count
    other[:, 2] -= 0.2 + np.random.default_rng(2).normal(0, 0.01, size=6)  # worse at 1 of 3 budget points
    matrix = penalty_matrix([base, other])
    assert matrix.wins[0, 1] == pytest.approx(1 / 3) and matrix.wins[1, 0] == 0


def test_pairs_with_one_common_seed_are_not_tested():
    base = curves(seeds=3)
    partial = np.full_like(base, np.nan)
    partial[0] = base[0] + 0.5  # ran seed 0 only
    matrix = penalty_matrix([base, base + 0.2, partial])
    np.testing.assert_array_equal(matrix.common_seeds, [[3, 3, 1], [3, 3, 1], [1, 1, 1]])
    np.testing.assert_array_equal(matrix.tested, [[False, True, False], [True, False, False], [False, False, False]])
    assert matrix.wins[1, 0] == 1 and matrix.wins[2].sum() == 0 and matrix.wins[:, 2].sum() == 0
    assert not np.isnan(matrix.wins).any()


def test_without_query_rounds_nothing_is_won():
    matrix = penalty_matrix(curves(rounds=1)[None].repeat(2, axis=0))
    assert matrix.budget_points == 0 and not matrix.wins.any()


def test_bootstrap_ranking_of_a_clear_order_and_of_ties():
    aubc = np.array([[0.5, 0.6, 0.55], [0.7, 0.8, 0.75], [0.5, 0.6, 0.55]])  # the second best on every seed
    ranking = bootstrap_ranking(aubc, resamples=200)
    np.testing.assert_array_equal(ranking.mean, [2.5, 1, 2.5])  # ties share ranks 2 and 3
    np.testing.assert_array_equal(ranking.low, [2.5, 1, 2.5])
    np.testing.assert_array_equal(ranking.high, [2.5, 1, 2.5])
    assert (ranking.resamples, ranking.confidence) == (200, 0.95)


def test_bootstrap_ranking_averages_over_resamples_and_is_deterministic_under_its_seed():
    # Two seeds: A wins on seed 0 (1 vs 0), B on seed 1 (0.9 vs 0). Resamples (0,0), (0,1), (1,0) rank A first
    # (means 1 | 0.5 vs 0.45), only (1,1) ranks B first: A's expected mean rank is 1.25 and its interval [1, 2].
    aubc = np.array([[1.0, 0.0], [0.0, 0.9]])
    ranking = bootstrap_ranking(aubc, resamples=1000, seed=7)
    assert ranking.mean[0] == pytest.approx(1.25, abs=0.06)
    np.testing.assert_allclose(ranking.mean.sum(), 3.0)  # ranks of each resample sum to 1 + 2
    assert (ranking.low[0], ranking.high[0]) == (1, 2)
    again = bootstrap_ranking(aubc, resamples=1000, seed=7)
    np.testing.assert_array_equal(again.mean, ranking.mean)
    assert len({bootstrap_ranking(aubc, resamples=1000, seed=seed).mean[0] for seed in range(5)}) > 1


def test_bootstrap_ranking_rejects_empty_input():
    with pytest.raises(ValueError, match="bootstrap_ranking"):
        bootstrap_ranking(np.zeros((2, 0)))
