"""Case discovery for a Medical Segmentation Decathlon task folder.

Expected layout (as distributed at medicaldecathlon.com)::

    Task01_BrainTumour/
        dataset.json    # "modality": {"0": "FLAIR", ...}, "labels": {"0": "background", ...},
                        # "training": [{"image": "./imagesTr/x.nii.gz",
                        #               "label": "./labelsTr/x.nii.gz"}, ...],
                        # "test": ["./imagesTs/y.nii.gz", ...]
        imagesTr/ labelsTr/ imagesTs/

Files are found through ``dataset.json`` only (stray files such as macOS ``._x.nii.gz`` copies are
ignored). Multi-modal tasks store one 4D image per case with the modality on the 4th axis; their
:class:`~alseg.datasets.cases.ImageSource` carries that index. Single-modality tasks store 3D
images.
Modality names are those of ``dataset.json``, matched case-insensitively.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.cases import Case, ImageSource

SPLITS = ("training", "test")


@dataclass(frozen=True)
class DecathlonTask:
    """The parsed ``dataset.json`` of a task.

    Attributes:
        root: The task folder.
        name: The task name (``"name"`` entry, or the folder name).
        modalities: Modality names in 4th-axis order.
        labels: Label value → class name, sorted by value (includes background).
        training: ``(image, label)`` paths relative to ``root``.
        test: Image paths relative to ``root``.
    """

    root: Path
    name: str
    modalities: tuple[str, ...]
    labels: dict[int, str]
    training: tuple[tuple[str, str], ...]
    test: tuple[str, ...]


def _int_keyed(raw: Any, key: str, source: Path) -> dict[int, str]:
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{source}: '{key}' must be a non-empty object. Got {raw!r}.")
    try:
        parsed = {int(index): str(name) for index, name in raw.items()}
    except ValueError:
        raise DataError(f"{source}: the keys of '{key}' must be integers. Got {sorted(raw)!r}.") from None
    return dict(sorted(parsed.items()))


def _entries(raw: Any, key: str, source: Path) -> list:
    if not isinstance(raw, list):
        raise DataError(f"{source}: '{key}' must be a list. Got {raw!r}.")
    return raw


def _training_paths(index: int, entry: Any, source: Path) -> tuple[str, str]:
    if not (isinstance(entry, dict) and isinstance(entry.get("image"), str) and isinstance(entry.get("label"), str)):
        raise DataError(
            f"{source}: 'training' entry {index} must be an object with string 'image' and 'label' paths. "
            f"Got {entry!r}."
        )
    return entry["image"], entry["label"]


def _test_path(index: int, entry: Any, source: Path) -> str:
    if not isinstance(entry, str):
        raise DataError(f"{source}: 'test' entry {index} must be a string path. Got {entry!r}.")
    return entry


def read_dataset_json(data_dir: str | Path) -> DecathlonTask:
    """Parse the ``dataset.json`` of a Decathlon task folder.

    Raises:
        DataError: The folder or file is missing, not a JSON object, or lacks or mistypes an entry (the message
            names the file and the entry).
    """
    root = Path(data_dir)
    source = root / "dataset.json"
    if not source.is_file():
        raise DataError(
            f"Decathlon data_dir {root} has no dataset.json. Expected a Medical Segmentation "
            f"Decathlon task folder holding dataset.json, imagesTr/, labelsTr/ and imagesTs/."
        )
    try:
        raw = json.loads(source.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{source} is not valid JSON: {error}.") from None
    if not isinstance(raw, dict):
        raise DataError(f"{source} must hold a JSON object (a mapping of entries). Got a {type(raw).__name__}.")
    modality = _int_keyed(raw.get("modality"), "modality", source)
    if list(modality) != list(range(len(modality))):
        raise DataError(f"{source}: 'modality' keys must be 0..N-1. Got {list(modality)}.")
    training = _entries(raw.get("training"), "training", source)
    test = _entries(raw.get("test", []), "test", source)
    return DecathlonTask(
        root=root,
        name=str(raw.get("name", root.name)),
        modalities=tuple(modality.values()),
        labels=_int_keyed(raw.get("labels"), "labels", source),
        training=tuple(_training_paths(index, entry, source) for index, entry in enumerate(training)),
        test=tuple(_test_path(index, entry, source) for index, entry in enumerate(test)),
    )


def _select(task: DecathlonTask, modalities: Sequence[str] | None) -> dict[str, int]:
    by_name = {name.lower(): index for index, name in enumerate(task.modalities)}
    if modalities is None:
        return {name: index for index, name in enumerate(task.modalities)}
    selected = {}
    for name in modalities:
        if name.lower() not in by_name:
            valid = ", ".join(task.modalities)
            raise ConfigError(f"Unknown modality {name!r} of task {task.name}. Available: {valid}.")
        index = by_name[name.lower()]
        selected[task.modalities[index]] = index
    if len(selected) != len(modalities):
        raise ConfigError(f"'modalities' names a modality twice. Got {list(modalities)!r}.")
    return selected


def _existing(task: DecathlonTask, relative: str, case_id: str, what: str) -> Path:
    path = task.root / relative
    if not path.is_file():
        raise DataError(
            f"Case {case_id}: {task.root / 'dataset.json'} lists {what} file {relative}, but {path} does not exist."
        )
    return path


def _case_id(relative: str) -> str:
    name = Path(relative).name
    for extension in (".nii.gz", ".nii"):
        if name.endswith(extension):
            return name.removesuffix(extension)
    return name


def discover_decathlon(
    data_dir: str | Path,
    split: Literal["training", "test"] = "training",
    modalities: Sequence[str] | None = None,
) -> list[Case]:
    """Find the cases of one split of a Decathlon task folder.

    Args:
        data_dir: The task folder (holding ``dataset.json``).
        split: ``"training"`` (labelled) or ``"test"`` (``label=None``).
        modalities: Modality names of ``dataset.json`` to load, in channel order; ``None`` for
            all, in file order.

    Returns:
        Cases sorted by case id (the image file name without extension).

    Raises:
        DataError: ``dataset.json`` is missing or malformed, lists a missing file, or repeats a
            case id.
        ConfigError: Unknown split or modality name.
    """
    if split not in SPLITS:
        raise ConfigError(f"Unknown Decathlon split {split!r}. Available: {', '.join(SPLITS)}.")
    task = read_dataset_json(data_dir)
    channels = _select(task, modalities)
    is_4d = len(task.modalities) > 1
    entries = task.training if split == "training" else [(image, None) for image in task.test]
    cases: dict[str, Case] = {}
    for image, label in entries:
        case_id = _case_id(image)
        if case_id in cases:
            raise DataError(f"Case {case_id}: listed twice in {task.root / 'dataset.json'}.")
        image_path = _existing(task, image, case_id, "image")
        images = {name: ImageSource(image_path, index if is_4d else None) for name, index in channels.items()}
        label_path = None if label is None else _existing(task, label, case_id, "label")
        cases[case_id] = Case(case_id, images, label_path)
    return [cases[case_id] for case_id in sorted(cases)]
