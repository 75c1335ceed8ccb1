"""Statistics that compare strategies across seeds: the paired t-test, the pairwise penalty matrix, a bootstrap ranking.

Pure functions of arrays (numpy and scipy, no I/O). Higher metric values count as better. One test is used
everywhere in the reports: the two-sided paired t-test over seeds (:func:`paired_t_test`), the test of the pairwise
penalty matrix of Ash et al. (2020), which nnActive (Lüth et al., 2025) also uses. It needs only two paired seeds,
where a Wilcoxon signed-rank test cannot give p < 0.05 below six. It assumes roughly normal per-seed differences,
which a handful of seeds cannot check, and its power with few seeds is low: "no significant difference" is not
evidence of equality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata, ttest_rel

#: Significance level of every test.
ALPHA = 0.05
#: Fewest paired seeds for a t-test (one degree of freedom).
MIN_SEEDS_FOR_TEST = 2
#: Resamples and generator seed of :func:`bootstrap_ranking` by default.
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 1000, 0
#: Differences whose spread is below this fraction of their largest magnitude count as constant (float rounding).
_CONSTANT = 1e-12


@dataclass(frozen=True)
class PenaltyMatrix:
    """How often each strategy beats each other one over the budget points of a group (``K`` strategies).

    Attributes:
        wins: ``[K, K]``; ``wins[i, j]`` is the fraction of budget points at which strategy ``i`` is significantly
            better than strategy ``j``. 0 on the diagonal and for untested pairs.
        common_seeds: ``[K, K]`` seeds both strategies ran; pairs with fewer than :data:`MIN_SEEDS_FOR_TEST` are not
            tested.
        budget_points: Number of budget points (query rounds) compared.
    """

    wins: np.ndarray
    common_seeds: np.ndarray
    budget_points: int

    @property
    def tested(self) -> np.ndarray:
        """Returns ``[K, K]``: whether the pair was tested (off the diagonal, enough common seeds)."""
        return (self.common_seeds >= MIN_SEEDS_FOR_TEST) & ~np.eye(len(self.wins), dtype=bool)

    @property
    def beaten(self) -> np.ndarray:
        """Returns ``[K]`` column sums of :attr:`wins`: how often each strategy is beaten (0 to ``K - 1``)."""
        return self.wins.sum(axis=0)


@dataclass(frozen=True)
class Ranking:
    """Ranks of ``K`` strategies by mean AUBC over bootstrap resamples of the seeds (1 = best).

    Attributes:
        mean: ``[K]`` mean rank over resamples.
        low: ``[K]`` lower end of the percentile interval of the rank.
        high: ``[K]`` upper end of the percentile interval.
        resamples: Number of resamples.
        confidence: Coverage of the interval (0.95: from the 2.5th to the 97.5th percentile).
    """

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    resamples: int
    confidence: float


def paired_t_test(values: ArrayLike, reference: ArrayLike) -> np.ndarray:
    """Returns the two-sided p-values of paired t-tests of ``values − reference`` over seeds (the first axis).

    ``scipy.stats.ttest_rel`` where the differences vary. Where they are constant (spread below ``1e-12`` of their
    largest magnitude: no variance to test against), the p-value is the t-test's limit: 0 for a nonzero constant (every
    seed differs by the same amount, so the difference counts as significant in its direction), 1 for zero.

    Args:
        values: ``[S, ...]`` one strategy's values per seed, ``S >= 2``.
        reference: ``[S, ...]`` the other strategy's values for the same seeds, in the same order.

    Returns:
        ``[...]`` p-values (a 0-d array for 1-D inputs).

    Raises:
        ValueError: The shapes differ or there are fewer than :data:`MIN_SEEDS_FOR_TEST` seeds.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    if a.shape != b.shape or a.ndim == 0 or a.shape[0] < MIN_SEEDS_FOR_TEST:
        raise ValueError(
            f"paired_t_test needs two arrays of one shape with >= {MIN_SEEDS_FOR_TEST} seeds on the first axis. "
            f"Got shapes {a.shape} and {b.shape}."
        )
    shape = a.shape[1:]
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    differences = a - b
    varies = np.ptp(differences, axis=0) > _CONSTANT * np.abs(differences).max(axis=0)
    p_values = np.where(differences[0] == 0, 1.0, 0.0)
    if varies.any():
        p_values[varies] = ttest_rel(a[:, varies], b[:, varies]).pvalue
    return p_values.reshape(shape)


def compare(values: ArrayLike, reference: ArrayLike, alpha: float = ALPHA, higher_is_better: bool = True) -> np.ndarray:
    """Returns +1 where ``values`` are significantly better than ``reference``, -1 where worse, else 0.

    Significant: :func:`paired_t_test` gives ``p < alpha``; the direction is the sign of the mean difference, turned
    round for a metric of which lower values are better (a loss, a distance).

    Args:
        values: ``[S, ...]`` per-seed values, ``S >= 2``.
        reference: ``[S, ...]`` the other strategy's values for the same seeds.
        alpha: The significance level.
        higher_is_better: Whether higher values are better (Dice) or lower ones (``loss``, ``hd95``).

    Returns:
        ``[...]`` integers in {-1, 0, 1}.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    signs = np.sign((a - b).mean(axis=0)) * (1 if higher_is_better else -1)
    return np.where(paired_t_test(a, b) < alpha, signs, 0).astype(int)


def penalty_matrix(values: ArrayLike, alpha: float = ALPHA, higher_is_better: bool = True) -> PenaltyMatrix:
    """Returns the pairwise penalty matrix of ``K`` strategies (Ash et al., 2020; Lüth et al., 2025).

    At every budget point (query rounds ``1 … R−1``; round 0 is the same initial training for every strategy of a
    seed, so it is left out), every ordered pair ``(i, j)`` is compared by a two-sided paired t-test over the seeds
    both ran (:func:`compare`): ``i`` beats ``j`` there when ``p < alpha`` and the mean difference is in the better
    direction (positive, or negative for a lower-is-better metric). Each
    win adds ``1 / (R − 1)``, so an entry is the fraction of budget points won, from 0 to 1, and a column sum says how
    often a strategy is beaten. Like BADGE's ``scripts/agg_results.py`` and nnActive's ``PairwisePenaltyMatrix``, but
    seeds are paired by seed (not by position), all of them are used, and every query round is a budget point (BADGE
    stops where random reaches 99 % of its final accuracy).

    References:
        J. T. Ash, C. Zhang, A. Krishnamurthy, J. Langford, A. Agarwal. Deep Batch Active Learning by Diverse,
        Uncertain Gradient Lower Bounds. ICLR 2020, section 4 ("pairwise comparisons").
        C. T. Lüth et al. nnActive: A Framework for Evaluation of Active Learning in 3D Biomedical Segmentation.
        arXiv:2511.19183, 2025.

    Args:
        values: ``[K, S, R]`` the metric of strategy ``k`` on seed ``s`` after round ``r``; NaN where the strategy
            did not run the seed.
        alpha: The significance level.
        higher_is_better: Whether higher metric values are better.

    Returns:
        The matrix; pairs with fewer than :data:`MIN_SEEDS_FOR_TEST` common seeds are not tested (0, see
        :attr:`PenaltyMatrix.tested`), and without query rounds every entry is 0.
    """
    array = np.asarray(values, dtype=float)
    if array.ndim != 3:
        raise ValueError(f"penalty_matrix needs values of shape [K, S, R]. Got shape {array.shape}.")
    ran = np.isfinite(array).all(axis=2)
    common = (ran[:, None, :] & ran[None, :, :]).sum(axis=2)
    budget = array.shape[2] - 1
    wins = np.zeros(common.shape)
    for i in range(len(array)):
        for j in range(i + 1, len(array)):
            seeds = ran[i] & ran[j]
            if budget and seeds.sum() >= MIN_SEEDS_FOR_TEST:
                directions = compare(array[i][seeds, 1:], array[j][seeds, 1:], alpha, higher_is_better)
                wins[i, j], wins[j, i] = (directions > 0).mean(), (directions < 0).mean()
    return PenaltyMatrix(wins, common, budget)


def bootstrap_ranking(
    aubc: ArrayLike,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = 0.95,
    higher_is_better: bool = True,
) -> Ranking:
    """Ranks strategies by mean AUBC in bootstrap resamples of the seeds.

    Each resample draws ``S`` seeds with replacement, the same for every strategy (paired), and ranks the strategies
    by their mean AUBC over the drawn seeds (1 = best: highest, or lowest for a lower-is-better metric; ties get the
    average of their ranks). nnActive ranks on
    leave-one-seed-out subsets instead; the bootstrap also gives an interval.

    Args:
        aubc: ``[K, S]`` AUBC of strategy ``k`` on seed ``s`` (seeds every strategy ran).
        resamples: Number of resamples.
        seed: Seed of the ``numpy.random.Generator`` that draws them: same seed, same ranking.
        confidence: Coverage of the percentile interval of each strategy's rank.
        higher_is_better: Whether higher metric values (and AUBC) are better.

    Raises:
        ValueError: ``aubc`` is not ``[K, S]`` with ``K, S >= 1``, or ``resamples < 1``.
    """
    array = np.asarray(aubc, dtype=float)
    if array.ndim != 2 or 0 in array.shape or resamples < 1:
        raise ValueError(f"bootstrap_ranking needs aubc [K, S] and resamples >= 1. Got {array.shape}, {resamples}.")
    draws = np.random.default_rng(seed).integers(0, array.shape[1], size=(resamples, array.shape[1]))
    best_first = -1 if higher_is_better else 1
    ranks = rankdata(best_first * array[:, draws].mean(axis=2), method="average", axis=0)  # [K, resamples]
    tail = 50 * (1 - confidence)
    low, high = np.percentile(ranks, [tail, 100 - tail], axis=1)
    return Ranking(ranks.mean(axis=1), low, high, resamples, confidence)
