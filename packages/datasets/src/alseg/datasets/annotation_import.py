"""Reading a round's masks back: every problem found, then all labels or none.

A mask is ``masks/<name>`` (``.nii.gz`` or ``.nii``) of an item of the manifest. It must have the item image's shape
and affine (within ``AFFINE_TOLERANCE`` mm), and hold only the dataset's label values (the manifest's
``accepted_values``), which the data module's :class:`~alseg.datasets.labels.LabelScheme` turns into training
labels, as it turns label files. Every item needs exactly one mask and ``masks/`` holds nothing else (names starting
with a dot, as viewers and file managers leave them, are ignored).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from nibabel.filebasedimages import ImageFileError

from alseg.core.errors import DataError
from alseg.datasets.annotation_items import AnnotationItem
from alseg.datasets.annotation_round import IMAGES, MASKS
from alseg.datasets.brats_layout import EXTENSIONS
from alseg.datasets.labels import LabelScheme

AFFINE_TOLERANCE = 1e-3
_READ_ERRORS = (ImageFileError, OSError, EOFError, ValueError, zlib.error)


def read_masks(round_dir: Path, items: list[AnnotationItem], scheme: LabelScheme) -> dict[str, torch.Tensor]:
    """The training label of every item, from its mask in ``round_dir/masks``.

    Returns:
        ``{id: label}``: ``int64 [1, *spatial]`` class indices or ``uint8 [R, *spatial]`` regions, as training items.

    Raises:
        DataError: One line per problem (naming the file): a missing, extra or unreadable mask, a wrong shape or
            affine, values outside the dataset's labels. Nothing is returned then.
    """
    masks_dir = round_dir / MASKS
    files = sorted(p for p in masks_dir.iterdir() if not p.name.startswith(".")) if masks_dir.is_dir() else []
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(_stem(path), []).append(path)
    expected = {_stem(Path(item.name)): item for item in items}
    problems = [
        f"{path}: not a mask of an item of the manifest; remove it." for path in files if _stem(path) not in expected
    ]
    missing = [item.item_id for stem, item in expected.items() if stem not in by_stem]
    if missing:
        names = ", ".join(
            f"{MASKS}/{expected_item.name}" for expected_item in items if expected_item.item_id in missing
        )
        problems.append(f"{masks_dir}: no mask yet for {len(missing)} of {len(items)} items: {missing} ({names}).")
    labels = {}
    for stem, item in expected.items():
        found = by_stem.get(stem, [])
        if len(found) > 1:
            problems.append(
                f"{found[0]}: {len(found)} masks for item {item.item_id!r} ({[p.name for p in found]}); keep one."
            )
        elif found:
            try:
                labels[item.item_id] = _label(found[0], item, scheme)
            except DataError as error:
                problems.append(str(error))
    if problems:
        listed = "\n  ".join(problems)
        raise DataError(f"The masks of {round_dir} cannot be imported (nothing was imported):\n  {listed}")
    return labels


def _stem(path: Path) -> str:
    for extension in EXTENSIONS:
        if path.name.endswith(extension):
            return path.name.removesuffix(extension)
    return path.name


def _label(path: Path, item: AnnotationItem, scheme: LabelScheme) -> torch.Tensor:
    """The training label of one mask file, after checking it against its item."""
    if not path.is_file():
        raise DataError(f"{path}: not a file.")
    try:
        image = nib.load(path)
        data = np.asanyarray(image.dataobj)
    except _READ_ERRORS as error:
        raise DataError(f"{path}: cannot read it as NIfTI ({error}).") from None
    while data.ndim > 3 and data.shape[-1] == 1:  # some viewers save a 4th (time) axis of size 1
        data = data[..., 0]
    reference = f"{IMAGES}/{item.name}"
    if data.shape != item.shape:
        raise DataError(f"{path}: shape {data.shape}, expected {item.shape} (the shape of {reference}).")
    deviation = float(np.abs(image.affine - item.affine).max())
    if deviation > AFFINE_TOLERANCE:
        raise DataError(
            f"{path}: its affine differs from that of {reference} by up to {deviation:.4g} mm (tolerance "
            f"{AFFINE_TOLERANCE:g}): save the mask in the image's geometry (e.g. edit a copy of the prediction)."
        )
    if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
        raise DataError(f"{path}: holds values that are not whole numbers; a mask holds label values only.")
    unknown = sorted(set(np.unique(data).tolist()) - set(scheme.values))
    if unknown:
        raise DataError(
            f"{path}: holds the label values {[int(v) for v in unknown[:10]]}, which are not labels of the "
            f"dataset. Accepted: {list(scheme.values)}."
        )
    target = scheme.convert(item.to_reader(data), item.case_id, str(path))  # [R, X, Y, Z] or [X, Y, Z]
    if item.slice_index is not None:
        target = np.take(target, 0, axis=target.ndim - 3 + item.axis)
    return (
        torch.from_numpy(np.ascontiguousarray(target))
        if scheme.multilabel
        else torch.from_numpy(target[None].astype(np.int64))
    )
