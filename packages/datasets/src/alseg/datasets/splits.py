"""Seeded choices of a data module (pure, no I/O): the case split and the initial labelled set.

Splits are by case, never by slice, so the slices of one volume never end up in two splits.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alseg.core.errors import ConfigError


@dataclass(frozen=True)
class CaseSplit:
    """Case ids of the three splits, each sorted.

    Attributes:
        train: Cases whose items form the initial labelled set and the unlabelled pool.
        val: Validation cases.
        test: Test cases.
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"The '{name}' option of the data module must be in [0, 1). Got {value!r}.")


def _check_listed(name: str, listed: Sequence[str], known: set[str]) -> None:
    unknown = sorted(set(listed) - known)
    if unknown:
        examples = ", ".join(sorted(known)[:3])
        raise ConfigError(f"The '{name}' option names unknown cases {unknown[:10]}. Case ids look like: {examples}.")
    if len(set(listed)) != len(listed):
        raise ConfigError(f"The '{name}' option names a case twice. Got {list(listed)!r}.")


def _count(fraction: float, n_cases: int) -> int:
    """Cases for a fraction: rounded, but at least one for a positive fraction."""
    return max(1, round(fraction * n_cases)) if fraction > 0 else 0


def split_cases(
    case_ids: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    val_cases: Sequence[str] | None = None,
    test_cases: Sequence[str] | None = None,
    seed: int = 0,
) -> CaseSplit:
    """Split cases into training, validation and test cases.

    A split given as a list of case ids is used as is; the others get ``round(fraction * N)``
    cases (at least one for a positive fraction, N = all cases) drawn by a seeded permutation of
    the sorted remaining case ids, test cases first.

    Args:
        case_ids: Ids of all labelled cases.
        val_fraction: Fraction of cases for validation, in [0, 1) (ignored if ``val_cases``).
        test_fraction: Fraction of cases for testing, in [0, 1) (ignored if ``test_cases``).
        val_cases: Explicit validation cases.
        test_cases: Explicit test cases.
        seed: Seed of the permutation.

    Returns:
        The split.

    Raises:
        ConfigError: Bad fractions, unknown or overlapping listed cases, or no training case left.
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    known = set(case_ids)
    for name, listed in (("val_cases", val_cases), ("test_cases", test_cases)):
        if listed is not None:
            _check_listed(name, listed, known)
    if val_cases is not None and test_cases is not None and set(val_cases) & set(test_cases):
        raise ConfigError(f"Cases {sorted(set(val_cases) & set(test_cases))} are in both val_cases and test_cases.")
    listed = set(val_cases or ()) | set(test_cases or ())
    remaining = sorted(known - listed)
    order = [remaining[i] for i in np.random.default_rng(seed).permutation(len(remaining))]
    n_test = 0 if test_cases is not None else _count(test_fraction, len(known))
    n_val = 0 if val_cases is not None else _count(val_fraction, len(known))
    test = list(test_cases) if test_cases is not None else order[:n_test]
    val = list(val_cases) if val_cases is not None else order[n_test : n_test + n_val]
    train = sorted(known - set(test) - set(val))
    if not train:
        raise ConfigError(
            f"No training case is left: {len(known)} cases, {len(val)} for validation, {len(test)} for testing. "
            "Lower val_fraction/test_fraction or list fewer val_cases/test_cases."
        )
    return CaseSplit(tuple(train), tuple(sorted(val)), tuple(sorted(test)))


def choose_initial(candidates: Sequence[str], size: int, seed: int) -> list[str]:
    """A seeded random choice of ``size`` item ids, in the order of ``candidates``.

    Raises:
        ConfigError: ``size`` is negative or larger than the number of candidates.
    """
    if not 0 <= size <= len(candidates):
        raise ConfigError(
            f"The 'initial_training_set_size' option of the data module must be between 0 and the "
            f"{len(candidates)} candidate items of the training cases. Got {size}."
        )
    chosen = set(np.random.default_rng(seed).choice(len(candidates), size, replace=False).tolist())
    return [item_id for index, item_id in enumerate(candidates) if index in chosen]
