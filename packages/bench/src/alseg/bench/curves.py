"""Statistics of learning curves: area under the budget curve, mean ± std over seeds, paired comparisons.

Pure functions of arrays; ledgers are read by :mod:`alseg.bench.ledgers`, reports written by :mod:`alseg.bench.report`.
The paired test is the one of :mod:`alseg.bench.statistics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import trapezoid

from alseg.bench.statistics import ALPHA, MIN_SEEDS_FOR_TEST, compare, paired_t_test


@dataclass(frozen=True)
class Curve:
    """A learning curve averaged over seeds, all arrays ``[R]`` (one value per round).

    Attributes:
        num_labeled: Mean number of labelled items after each round.
        mean: Mean metric over seeds.
        std: Sample standard deviation over seeds (NaN with one seed).
    """

    num_labeled: np.ndarray
    mean: np.ndarray
    std: np.ndarray


@dataclass(frozen=True)
class PairedComparison:
    """Per-seed differences ``value − reference`` of one quantity.

    Attributes:
        n: Number of paired seeds.
        mean: Mean difference.
        std: Sample standard deviation of the differences (NaN with one pair).
        wins: Pairs where the value is better (a positive difference, or a negative one for a lower-is-better
            metric).
        ties: Pairs with a zero difference.
        losses: Pairs where the value is worse.
        p_value: Two-sided paired t-test p-value (:func:`~alseg.bench.statistics.paired_t_test`), or None with
            fewer than :data:`~alseg.bench.statistics.MIN_SEEDS_FOR_TEST` pairs.
        direction: +1 if the values are significantly better than the reference's, -1 if worse, 0 if neither or
            untested (:func:`~alseg.bench.statistics.compare`).
    """

    n: int
    mean: float
    std: float
    wins: int
    ties: int
    losses: int
    p_value: float | None
    direction: int


def aubc(num_labeled: ArrayLike, metric: ArrayLike) -> float:
    """Returns the normalised area under the budget curve of one run.

    ``AUBC = 1 / (n_R − n_0) · ∫ m dn`` from the first to the last round, the integral by the trapezoid rule over the
    points ``(n_r, m_r)`` (labelled items and metric after round ``r``): the metric's average over the labelling
    budget, in the metric's own units (a Dice of 1 from the first round to the last gives 1). Without a budget span
    (one round, or no item labelled after round 0) it is the mean of the metric.

    Args:
        num_labeled: Labelled items after each round, ``[R]``, non-decreasing.
        metric: The metric after each round, ``[R]``.

    Raises:
        ValueError: The arrays are empty, differ in length, or the labelled counts decrease.
    """
    x, y = np.asarray(num_labeled, dtype=float), np.asarray(metric, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"aubc needs two 1-D arrays of one length >= 1. Got shapes {x.shape} and {y.shape}.")
    if np.any(np.diff(x) < 0):
        raise ValueError(f"aubc needs non-decreasing labelled counts. Got {x.tolist()}.")
    span = x[-1] - x[0]
    return float(trapezoid(y, x) / span) if span > 0 else float(y.mean())


def mean_std(values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Returns the mean and the sample standard deviation (``ddof=1``) over the first axis (seeds).

    Args:
        values: ``[S, ...]``; the standard deviation is NaN where ``S == 1``.
    """
    array = np.asarray(values, dtype=float)
    std = array.std(axis=0, ddof=1) if array.shape[0] > 1 else np.full(array.shape[1:], np.nan)
    return array.mean(axis=0), std


def mean_curve(num_labeled: ArrayLike, metric: ArrayLike) -> Curve:
    """Averages the curves of several seeds.

    Args:
        num_labeled: ``[S, R]`` labelled items after each round of each seed.
        metric: ``[S, R]`` the metric after each round of each seed.
    """
    mean, std = mean_std(metric)
    return Curve(np.asarray(num_labeled, dtype=float).mean(axis=0), mean, std)


def paired_comparison(
    values: ArrayLike, reference: ArrayLike, alpha: float = ALPHA, higher_is_better: bool = True
) -> PairedComparison:
    """Compares per-seed values with a reference's values for the same seeds.

    The test is the two-sided paired t-test of :mod:`alseg.bench.statistics` (p 1 when every difference is zero, 0
    when every difference is the same nonzero amount), run from :data:`~alseg.bench.statistics.MIN_SEEDS_FOR_TEST`
    pairs on.

    Args:
        values: ``[S]`` one value per seed.
        reference: ``[S]`` the reference's values for the same seeds, in the same order.
        alpha: The significance level of ``direction``.
        higher_is_better: Whether higher values are better (Dice) or lower ones (``loss``, ``hd95``).
    """
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    differences = a - b
    if differences.ndim != 1 or differences.size == 0:
        raise ValueError(f"paired_comparison needs two 1-D arrays of one length >= 1. Got {differences.shape}.")
    better = differences if higher_is_better else -differences
    wins, losses = int((better > 0).sum()), int((better < 0).sum())
    p_value, direction = None, 0
    if differences.size >= MIN_SEEDS_FOR_TEST:
        p_value, direction = float(paired_t_test(a, b)), int(compare(a, b, alpha, higher_is_better))
    mean, std = mean_std(differences)
    return PairedComparison(
        differences.size, float(mean), float(std), wins, differences.size - wins - losses, losses, p_value, direction
    )
