"""Seeded choices of a data module (pure, no I/O): the case split and the initial labelled set.

Splits are by patient, never by slice: the slices of one volume, and the cases of one patient (the
timepoints ``YYY`` of BraTS 2023's ``BraTS-GLI-XXXXX-YYY``), never end up in two splits.
"""

from collections.abc import Mapping, Sequence
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


def check_fraction(name: str, value: float) -> None:
    """Raises a ``ConfigError`` unless the split fraction option ``name`` is in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"The '{name}' option of the data module must be in [0, 1). Got {value!r}.")


def _check_listed(name: str, listed: Sequence[str], known: set[str]) -> None:
    unknown = sorted(set(listed) - known)
    if unknown:
        examples = ", ".join(sorted(known)[:3])
        raise ConfigError(f"The '{name}' option names unknown cases {unknown[:10]}. Case ids look like: {examples}.")
    if len(set(listed)) != len(listed):
        raise ConfigError(f"The '{name}' option names a case twice. Got {list(listed)!r}.")


def fraction_count(fraction: float, n_patients: int) -> int:
    """Patients for a fraction: rounded, but at least one for a positive fraction."""
    return max(1, round(fraction * n_patients)) if fraction > 0 else 0


def _check_whole_patients(name: str, listed: Sequence[str], cases_of: Mapping[str, list[str]]) -> None:
    """A listed split must hold every case of each patient it names (``cases_of``: patient → its cases)."""
    chosen = set(listed)
    for patient, cases in cases_of.items():
        named = [case for case in cases if case in chosen]
        missing = [case for case in cases if case not in chosen]
        if named and missing:
            raise ConfigError(
                f"The '{name}' option names {', '.join(named)} but not {', '.join(missing)} of the same patient "
                f"{patient}. List every case of a patient, or none."
            )


def split_cases(
    case_ids: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    val_cases: Sequence[str] | None = None,
    test_cases: Sequence[str] | None = None,
    seed: int = 0,
    patients: Mapping[str, str] | None = None,
) -> CaseSplit:
    """Split cases into training, validation and test cases, keeping the cases of a patient together.

    A split given as a list of case ids is used as is (it must hold every case of the patients it
    names); the others get ``round(fraction * P)`` patients (at least one for a positive fraction,
    P = all patients) drawn by a seeded permutation of the sorted remaining patient ids, test
    patients first, with all their cases. With one case per patient (the default) this is a split
    of cases, the same as without ``patients``.

    Args:
        case_ids: Ids of all labelled cases.
        val_fraction: Fraction of patients for validation, in [0, 1) (ignored if ``val_cases``).
        test_fraction: Fraction of patients for testing, in [0, 1) (ignored if ``test_cases``).
        val_cases: Explicit validation cases.
        test_cases: Explicit test cases.
        seed: Seed of the permutation.
        patients: Case id → patient id; ``None``: every case is its own patient.

    Returns:
        The split.

    Raises:
        ConfigError: Bad fractions, unknown or overlapping listed cases, a listed split holding
            only some cases of a patient, or no training case left.
    """
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    known = set(case_ids)
    patients = {case: case for case in known} if patients is None else patients
    cases_of: dict[str, list[str]] = {}
    for case in sorted(known):
        cases_of.setdefault(patients[case], []).append(case)
    for name, listed in (("val_cases", val_cases), ("test_cases", test_cases)):
        if listed is not None:
            _check_listed(name, listed, known)
            _check_whole_patients(name, listed, cases_of)
    if val_cases is not None and test_cases is not None and set(val_cases) & set(test_cases):
        raise ConfigError(f"Cases {sorted(set(val_cases) & set(test_cases))} are in both val_cases and test_cases.")
    listed = set(val_cases or ()) | set(test_cases or ())
    remaining = sorted({patients[case] for case in known - listed})
    order = [remaining[i] for i in np.random.default_rng(seed).permutation(len(remaining))]
    n_test = 0 if test_cases is not None else fraction_count(test_fraction, len(cases_of))
    n_val = 0 if val_cases is not None else fraction_count(val_fraction, len(cases_of))

    def cases(chosen: list[str]) -> list[str]:
        return [case for patient in chosen for case in cases_of[patient]]

    test = list(test_cases) if test_cases is not None else cases(order[:n_test])
    val = list(val_cases) if val_cases is not None else cases(order[n_test : n_test + n_val])
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
