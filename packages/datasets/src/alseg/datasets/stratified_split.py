"""A seeded split by case, stratified: every stratum's cases spread over the splits by the fractions (pure, no I/O).

Made for BCSS, whose cases (patients) come from institutes that stain and scan differently: a split that drew cases
at random could leave an institute out of the validation or test set, or out of training. Here each institute
(stratum) gives the validation and test sets its share of ``round(fraction x cases)`` in proportion to its number of
cases (largest remainders; equal remainders in a seeded order of the strata), and keeps at least one training case.
A case's items never straddle splits.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from alseg.core.errors import ConfigError
from alseg.datasets.splits import CaseSplit, check_fraction, fraction_count


def _apportion(
    sizes: Mapping[str, int], capacity: Mapping[str, int], total: int, order: Sequence[str]
) -> dict[str, int]:
    """``total`` cases over strata in proportion to ``sizes``, at most ``capacity`` each (largest remainders).

    Raises:
        ConfigError: The capacities hold fewer than ``total`` cases.
    """
    if sum(capacity.values()) < total:
        raise ConfigError(f"needs {total} cases but can take only {sum(capacity.values())}")
    weight = sum(sizes.values()) or 1
    # Integer arithmetic: quota = total * size / weight exactly, so equal remainders tie and keep the seeded order.
    counts = {stratum: min(total * sizes[stratum] // weight, capacity[stratum]) for stratum in order}
    ranked = sorted(order, key=lambda stratum: counts[stratum] * weight - total * sizes[stratum])
    while sum(counts.values()) < total:
        for stratum in (s for s in ranked if counts[s] < capacity[s]):
            if sum(counts.values()) == total:
                break
            counts[stratum] += 1
    return counts


def split_stratified(
    case_of: Mapping[str, str],
    stratum_of: Mapping[str, str],
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
    test_strata: Sequence[str] | None = None,
    stratum_name: str = "stratum",
) -> CaseSplit:
    """Split items by case, spreading the cases of every stratum over training, validation and test.

    Args:
        case_of: Item id → its case; a case's items share a split.
        stratum_of: Case → its stratum (an institute).
        val_fraction: Fraction of all cases for validation, in [0, 1).
        test_fraction: Fraction of all cases for testing, in [0, 1); ignored with ``test_strata``.
        seed: Seed of the order of each stratum's cases and of ties between strata.
        test_strata: Strata whose cases form the test set (validation cases then come from the other strata).
        stratum_name: What a stratum is, for messages (``"institute"``).

    Returns:
        The split of the item ids.

    Raises:
        ConfigError: Bad fractions, unknown or repeated ``test_strata``, too few cases to keep a training case in
            every stratum, or no training case left.
    """
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    cases = sorted(set(case_of.values()))
    strata = sorted({stratum_of[case] for case in cases})
    rng = np.random.default_rng(seed)
    members = {s: [c for c in cases if stratum_of[c] == s] for s in strata}
    members = {s: [found[i] for i in rng.permutation(len(found))] for s, found in members.items()}
    order = [strata[i] for i in rng.permutation(len(strata))]
    if test_strata is not None:
        unknown = sorted(set(test_strata) - set(strata))
        if unknown or len(set(test_strata)) != len(test_strata):
            raise ConfigError(
                f"The 'test_{stratum_name}s' option must name distinct {stratum_name}s of the data. Got "
                f"{list(test_strata)}; unknown: {unknown}. Available: {', '.join(strata)}."
            )
        taken = {s: len(members[s]) if s in test_strata else 0 for s in strata}
    else:
        sizes = {s: len(members[s]) for s in strata}
        capacity = {s: n - 1 for s, n in sizes.items()}
        taken = _split_counts("test", sizes, capacity, test_fraction, len(cases), order, stratum_name)
    test = {c for s in strata for c in members[s][: taken[s]]}
    left = {s: len(members[s]) - taken[s] for s in strata}
    capacity = {s: max(n - 1, 0) for s, n in left.items()}
    counts = _split_counts("validation", left, capacity, val_fraction, len(cases), order, stratum_name)
    val = {c for s in strata for c in members[s][taken[s] : taken[s] + counts[s]]}
    if not set(cases) - test - val:
        raise ConfigError(f"No training case is left: all {len(cases)} cases are in the test {stratum_name}s.")

    def items(chosen: set[str]) -> tuple[str, ...]:
        return tuple(sorted(item for item, case in case_of.items() if case in chosen))

    return CaseSplit(items(set(cases) - test - val), items(val), items(test))


def _split_counts(
    split: str,
    sizes: Mapping[str, int],
    capacity: Mapping[str, int],
    fraction: float,
    n_cases: int,
    order: list[str],
    stratum_name: str,
) -> dict[str, int]:
    """Cases per stratum of one split (``round(fraction x n_cases)`` in all), within ``capacity``."""
    total = fraction_count(fraction, n_cases)
    try:
        return _apportion(sizes, capacity, total, order)
    except ConfigError as error:
        raise ConfigError(
            f"The {split} split of {fraction:g} x {n_cases} cases {error}, keeping a training case in every "
            f"{stratum_name} (cases left per {stratum_name}: {dict(sorted(sizes.items()))}). Lower the fractions or "
            "add cases."
        ) from None
