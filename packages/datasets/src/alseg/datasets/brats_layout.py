"""Case discovery for BraTS folders (2020, 2021 and 2023 GLI naming).

Expected layout: one folder per case directly inside ``data_dir``, holding one NIfTI file
(``.nii.gz`` or ``.nii``) per modality plus the segmentation::

    BraTS20_Training_001/BraTS20_Training_001_{flair,t1,t1ce,t2,seg}.nii.gz   (2020)
    BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz             (2021)
    BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz      (2023)

Modalities are named canonically with the 2021 names ``flair, t1, t1ce, t2``; the 2023 names
``t2f, t1n, t1c, t2w`` (and ``t1gd``) are accepted as aliases. The canonical channel order is
``flair, t1, t1ce, t2`` — the order of the Decathlon's BrainTumour task.

In 2023, ``YYY`` of ``BraTS-GLI-XXXXX-YYY`` is a timepoint of patient ``BraTS-GLI-XXXXX``
(:attr:`~alseg.datasets.cases.Case.patient_id`), so that splits keep a patient's timepoints together.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.cases import Case, ImageSource

CANONICAL_MODALITIES = ("flair", "t1", "t1ce", "t2")
MODALITY_ALIASES = {
    "flair": "flair",
    "t2f": "flair",
    "t1": "t1",
    "t1n": "t1",
    "t1ce": "t1ce",
    "t1c": "t1ce",
    "t1gd": "t1ce",
    "t2": "t2",
    "t2w": "t2",
}
EXTENSIONS = (".nii.gz", ".nii")


@dataclass(frozen=True)
class _Release:
    case_pattern: re.Pattern[str]  # its "patient" group is the patient id
    separator: str
    file_keys: dict[str, str]  # canonical modality or "seg" -> file name suffix
    example: str


_RELEASES = {
    "2020": _Release(
        re.compile(r"(?P<patient>BraTS20_(Training|Validation)_\d{3})"),
        "_",
        {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", "seg": "seg"},
        "BraTS20_Training_001",
    ),
    "2021": _Release(
        re.compile(r"(?P<patient>BraTS2021_\d{5})"),
        "_",
        {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", "seg": "seg"},
        "BraTS2021_00000",
    ),
    "2023": _Release(
        re.compile(r"(?P<patient>BraTS-[A-Z]+-\d{5})-\d{3}"),
        "-",
        {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"},
        "BraTS-GLI-00000-000",
    ),
}
RELEASES = tuple(_RELEASES)


def resolve_modalities(names: Sequence[str] | None = None) -> tuple[str, ...]:
    """Canonical modality names for user-given names (any release's spelling), order kept.

    Args:
        names: Modality names such as ``["t1c", "flair"]``; ``None`` selects all four in the
            canonical order ``flair, t1, t1ce, t2``.

    Returns:
        Canonical names, e.g. ``("t1ce", "flair")``.
    """
    if names is None:
        return CANONICAL_MODALITIES
    if isinstance(names, str) or not names:
        raise ConfigError(f"'modalities' must be a non-empty list of names. Got {names!r}.")
    canonical = []
    for name in names:
        if name.lower() not in MODALITY_ALIASES:
            valid = ", ".join(sorted(MODALITY_ALIASES))
            raise ConfigError(f"Unknown BraTS modality {name!r}. Available: {valid}.")
        canonical.append(MODALITY_ALIASES[name.lower()])
    if len(set(canonical)) != len(canonical):
        raise ConfigError(f"'modalities' names a modality twice. Got {list(names)!r}.")
    return tuple(canonical)


def _check_release(release: str) -> _Release:
    if release not in _RELEASES:
        raise ConfigError(f"Unknown BraTS release {release!r}. Available: {', '.join(RELEASES)}.")
    return _RELEASES[release]


def brats_case_id(release: str, index: int) -> str:
    """The case id of the ``index``-th case (0-based) in a release's naming scheme."""
    _check_release(release)
    return {
        "2020": f"BraTS20_Training_{index + 1:03d}",
        "2021": f"BraTS2021_{index:05d}",
        "2023": f"BraTS-GLI-{index:05d}-000",
    }[release]


def brats_file_name(case_id: str, release: str, key: str, extension: str = ".nii.gz") -> str:
    """File name of one modality (canonical name) or of the label (``"seg"``) of a case."""
    spec = _check_release(release)
    return f"{case_id}{spec.separator}{spec.file_keys[key]}{extension}"


def detect_release(data_dir: Path) -> str:
    """The BraTS release whose naming the case folders of ``data_dir`` follow.

    Raises:
        DataError: ``data_dir`` is missing, holds no case folders, holds folders that follow no
            known naming, or mixes releases.
    """
    if not data_dir.is_dir():
        raise DataError(f"BraTS data_dir {data_dir} does not exist or is not a directory.")
    folders = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and p.name[0] != ".")
    expected = ", ".join(f"{spec.example} ({name})" for name, spec in _RELEASES.items())
    if not folders:
        raise DataError(
            f"BraTS data_dir {data_dir} holds no case folders. Expected one folder per case "
            f"directly inside it, named like {expected}."
        )
    found: dict[str, str] = {}
    for folder in folders:
        matches = [n for n, spec in _RELEASES.items() if spec.case_pattern.fullmatch(folder)]
        if not matches:
            raise DataError(
                f"BraTS data_dir {data_dir}: folder {folder!r} is not a case folder. Expected "
                f"case folders named like {expected}."
            )
        found.setdefault(matches[0], folder)
    if len(found) > 1:
        mixed = ", ".join(f"{name} (e.g. {folder})" for name, folder in sorted(found.items()))
        raise DataError(f"BraTS data_dir {data_dir} mixes releases: {mixed}. Use one release.")
    return next(iter(found))


def _find_file(case_dir: Path, case_id: str, release: str, key: str) -> Path | None:
    candidates = [case_dir / brats_file_name(case_id, release, key, ext) for ext in EXTENSIONS]
    existing = [path for path in candidates if path.is_file()]
    if len(existing) > 1:
        names = " and ".join(path.name for path in existing)
        raise DataError(f"Case {case_id}: both {names} exist in {case_dir}; keep one.")
    return existing[0] if existing else None


def discover_brats(
    data_dir: str | Path,
    release: str | None = None,
    modalities: Sequence[str] | None = None,
    require_labels: bool = True,
) -> list[Case]:
    """Find the cases of a BraTS folder.

    Args:
        data_dir: Folder holding one sub-folder per case.
        release: ``"2020"``, ``"2021"`` or ``"2023"``; ``None`` detects it from folder names.
        modalities: Modalities to load, in channel order (any release's names); ``None`` for
            all four in the canonical order ``flair, t1, t1ce, t2``.
        require_labels: Whether a missing ``seg`` file is an error; if ``False`` such cases
            get ``label=None``.

    Returns:
        Cases sorted by case id, with ``images`` keyed by canonical modality name. A 2023 case
        ``BraTS-GLI-XXXXX-YYY`` is timepoint ``YYY`` of patient ``BraTS-GLI-XXXXX`` (its
        ``patient_id``); earlier releases have one case per patient.

    Raises:
        DataError: A folder or file is missing or misnamed; the message names case and file.
        ConfigError: Unknown release or modality name.
    """
    data_dir = Path(data_dir)
    selected = resolve_modalities(modalities)
    detected = detect_release(data_dir)
    if release is not None and _check_release(release) and release != detected:
        raise DataError(
            f"BraTS data_dir {data_dir} holds release {detected} case folders, but release {release!r} was requested."
        )
    cases = []
    for case_dir in sorted(p for p in data_dir.iterdir() if p.is_dir() and p.name[0] != "."):
        case_id = case_dir.name
        images = {}
        for modality in selected:
            path = _find_file(case_dir, case_id, detected, modality)
            if path is None:
                missing = brats_file_name(case_id, detected, modality)
                raise DataError(f"Case {case_id}: missing modality file {missing} in {case_dir}.")
            images[modality] = ImageSource(path)
        label = _find_file(case_dir, case_id, detected, "seg")
        if label is None and require_labels:
            missing = brats_file_name(case_id, detected, "seg")
            raise DataError(f"Case {case_id}: missing label file {missing} in {case_dir}.")
        patient_id = _RELEASES[detected].case_pattern.fullmatch(case_id)["patient"]
        cases.append(Case(case_id, images, label, patient_id))
    return cases
