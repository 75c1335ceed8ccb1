"""Case records: which files make up one case of a dataset on disk.

A :class:`Case` only names files; nothing is read until :func:`alseg.datasets.volumes.read_case`.
"""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageSource:
    """One modality of a case: a NIfTI file and, for 4D files, the volume index.

    Attributes:
        path: The NIfTI file (``.nii`` or ``.nii.gz``).
        channel: Index along the 4th axis of a 4D file (Decathlon multi-modal images), or ``None``
            for a 3D file.
    """

    path: Path
    channel: int | None = None


@dataclass(frozen=True)
class Case:
    """The files of one case (one patient scan).

    Attributes:
        case_id: Unique id of the case within its dataset, e.g. ``"BraTS2021_00042"``. Never
            contains ``":"`` (reserved for slice item ids).
        images: Modality name → image source, in channel order. Names are canonical for the
            layout (see :mod:`alseg.datasets.brats_layout` and :mod:`alseg.datasets.msd_layout`).
        label: The label map file, or ``None`` for an unlabelled (e.g. test) case.
        patient_id: The patient the case belongs to; the cases of one patient (e.g. the timepoints
            of BraTS 2023) always share a split. Defaults to ``case_id`` (one case per patient).
    """

    case_id: str
    images: dict[str, ImageSource]
    label: Path | None
    patient_id: str = ""

    def __post_init__(self) -> None:
        if not self.patient_id:
            object.__setattr__(self, "patient_id", self.case_id)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names in channel order."""
        return tuple(self.images)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every distinct file of the case (images, then the label if any), in a stable order."""
        paths = [source.path for source in self.images.values()]
        if self.label is not None:
            paths.append(self.label)
        return tuple(dict.fromkeys(paths))
