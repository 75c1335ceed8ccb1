import pytest

from alseg.core.errors import ConfigError
from alseg.datasets.splits import split_cases

# Six BraTS 2023 patients with one to three timepoints each (14 cases).
TIMEPOINTS = {"00000": 3, "00001": 1, "00002": 2, "00003": 3, "00004": 2, "00005": 3}
PATIENTS = {f"BraTS-GLI-{p}-{t:03d}": f"BraTS-GLI-{p}" for p, n in TIMEPOINTS.items() for t in range(n)}


@pytest.mark.parametrize("seed", range(8))
def test_timepoints_of_a_patient_share_one_split(seed):
    split = split_cases(sorted(PATIENTS), 0.2, 0.2, seed=seed, patients=PATIENTS)
    by_split = {name: {PATIENTS[c] for c in getattr(split, name)} for name in ("train", "val", "test")}
    assert not by_split["train"] & by_split["val"] and not by_split["train"] & by_split["test"]
    assert not by_split["val"] & by_split["test"]
    assert len(by_split["val"]) == len(by_split["test"]) == 1  # round(0.2 x 6 patients)
    every_timepoint = {name: {c for c in PATIENTS if PATIENTS[c] in by_split[name]} for name in by_split}
    assert {name: set(getattr(split, name)) for name in by_split} == every_timepoint


def test_one_case_per_patient_splits_as_without_patients():
    cases = [f"BraTS2021_{i:05d}" for i in range(10)]
    for seed in range(4):
        plain = split_cases(cases, 0.2, 0.3, seed=seed)
        assert split_cases(cases, 0.2, 0.3, seed=seed, patients={c: c for c in cases}) == plain


def test_listed_cases_must_hold_every_timepoint_of_their_patients():
    listed = split_cases(
        sorted(PATIENTS), 0.2, 0.2, val_cases=["BraTS-GLI-00002-000", "BraTS-GLI-00002-001"], patients=PATIENTS
    )
    assert listed.val == ("BraTS-GLI-00002-000", "BraTS-GLI-00002-001")
    with pytest.raises(
        ConfigError,
        match=r"The 'test_cases' option names BraTS-GLI-00003-001 but not BraTS-GLI-00003-000, BraTS-GLI-00003-002 "
        r"of the same patient BraTS-GLI-00003",
    ):
        split_cases(sorted(PATIENTS), 0.2, 0.2, test_cases=["BraTS-GLI-00003-001"], patients=PATIENTS)
