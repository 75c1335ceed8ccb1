"""The cases ``alseg-predict`` runs a model over: a split of the run's own data, or a folder of NIfTI images.

An images folder holds cases in the layout of the run's dataset, with the run's modalities:

* a run of the ``brats`` data module: a BraTS folder, one sub-folder per case named in any release's scheme, with one
  file per modality (:mod:`alseg.datasets.brats_layout`); ``seg`` files may be there and are ignored;
* any other volume data module (e.g. ``decathlon``): NIfTI files directly in the folder, one per case, as in a
  Decathlon task's ``imagesTs``: 4D ``[X, Y, Z, M]`` with the modalities on the 4th axis in the task's
  ``dataset.json`` order for multi-modal tasks, 3D for single-modality tasks. The case id is the file name without
  ``.nii.gz``/``.nii``.

Every file is checked (readable header, 3D or 4D with the modality's volume, the same spatial shape throughout the
case) before anything is predicted, so that a bad input stops the command before it writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.brats_layout import EXTENSIONS, brats_file_name, discover_brats
from alseg.datasets.cases import Case, ImageSource
from alseg.datasets.nifti_output import SourceGeometry
from alseg.datasets.volume_data_module import VolumeDataModule

Split = Literal["train", "val", "test", "all"]
SPLITS = ("train", "val", "test", "all")


def split_cases(data_module: VolumeDataModule, split: Split) -> list[Case]:
    """The cases of one split of the run's data (``all``: every case), in case-id order.

    Raises:
        ConfigError: Unknown split, or the split holds no cases.
    """
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}. Available: {', '.join(SPLITS)}.")
    by_id = {case.case_id: case for case in data_module.source().cases}
    chosen = sorted(by_id) if split == "all" else sorted(getattr(data_module.split, split))
    if not chosen:
        raise ConfigError(
            f"The {split} split of the run's data ({data_module.source().data_dir}) holds no cases. "
            f"Choose another --split ({', '.join(SPLITS)}) or give --images."
        )
    return checked([by_id[case_id] for case_id in chosen])


def folder_cases(data_module: VolumeDataModule, images_dir: Path) -> list[Case]:
    """The cases of an images folder in the layout of the run's dataset (see the module doc), unlabelled.

    Raises:
        DataError: The folder is missing, holds no NIfTI images, or a case misses a modality file or has a bad file.
        ConfigError: The run's data module reads one file per modality but is not ``brats``.
    """
    if not images_dir.is_dir():
        raise DataError(f"The --images folder {images_dir} does not exist or is not a directory.")
    if isinstance(data_module, BraTSDataModule):
        return _brats_cases(data_module, images_dir)
    template = data_module.source().cases[0]
    if len(template.images) > 1 and any(source.channel is None for source in template.images.values()):
        raise ConfigError(
            f"--images reads one 4D (or 3D) file per case; the run's {type(data_module).__name__} reads a file per "
            "modality. Predict its own cases with --split."
        )
    files = sorted(path for path in images_dir.iterdir() if _is_nifti(path))
    if not files:
        raise DataError(
            f"The --images folder {images_dir} holds no NIfTI images (.nii.gz or .nii). Expected one file per case, "
            f"as in a Decathlon task's imagesTs: {_layout(template)}."
        )
    cases: dict[str, Case] = {}
    for path in files:
        case_id = _case_id(path)
        if case_id in cases:
            raise DataError(
                f"Case {case_id}: both {cases[case_id].images[template.modalities[0]].path.name} and "
                f"{path.name} exist in {images_dir}; keep one."
            )
        images = {name: ImageSource(path, source.channel) for name, source in template.images.items()}
        cases[case_id] = Case(case_id, images, None)
    return checked(list(cases.values()))


def _brats_cases(data_module: BraTSDataModule, images_dir: Path) -> list[Case]:
    folders = [path for path in images_dir.iterdir() if path.is_dir() and not path.name.startswith(".")]
    if not any(_is_nifti(path) for folder in folders for path in folder.iterdir()):
        example = "BraTS2021_00000"
        names = ", ".join(brats_file_name(example, "2021", modality) for modality in data_module.modalities)
        raise DataError(
            f"The --images folder {images_dir} holds no NIfTI images (.nii.gz or .nii). Expected a BraTS folder: "
            f"one folder per case, e.g. {example}/ holding {names}."
        )
    cases = discover_brats(images_dir, None, data_module.modalities, require_labels=False)
    return checked([Case(case.case_id, case.images, None, case.patient_id) for case in cases])


def checked(cases: list[Case]) -> list[Case]:
    """``cases``, after reading the header of every file (see the module doc).

    Raises:
        DataError: A file is unreadable, of the wrong dimensionality, or of another spatial shape (naming it).
    """
    for case in cases:
        shapes: dict[str, tuple[int, ...]] = {}
        for source in case.images.values():
            shape = SourceGeometry.of_file(source.path, case.case_id).image.shape
            if source.channel is None and len(shape) != 3:
                expected = "a 3D image"
            elif source.channel is not None and not (len(shape) == 4 and source.channel < shape[3]):
                expected = f"a 4D image with at least {source.channel + 1} volumes on the 4th axis"
            else:
                shapes[source.path.name] = tuple(shape[:3])
                continue
            raise DataError(f"Case {case.case_id}: file {source.path} should hold {expected}. Got shape {shape}.")
        if len(set(shapes.values())) > 1:
            found = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
            raise DataError(f"Case {case.case_id}: its image files differ in shape: {found}.")
    return cases


def _is_nifti(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name.endswith(EXTENSIONS)


def _case_id(path: Path) -> str:
    for extension in EXTENSIONS:
        if path.name.endswith(extension):
            return path.name.removesuffix(extension)
    return path.name


def _layout(template: Case) -> str:
    channels = [(name, source.channel) for name, source in template.images.items()]
    if channels[0][1] is None:
        return f"3D images of the modality {channels[0][0]}"
    return "4D images [X, Y, Z, M] with " + ", ".join(f"{name} at index {channel}" for name, channel in channels)
