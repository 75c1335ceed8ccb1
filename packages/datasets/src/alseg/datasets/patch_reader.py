"""Items of patch ids (boxes of cached volumes) and the partially labelled volumes that training samples from.

A pool item is the box's image, ``float32 [C, sx, sy, sz]``, with ``id``, ``case_id`` and ``spacing`` and no label.
A labelled box's item adds its ``label`` (the ground truth inside the box, or its pseudo label) and
``pseudo_labeled``. Training does not use those crops: it samples from the whole volume whose voxels outside every
labelled box of the case are :data:`~alseg.core.partial_labels.UNKNOWN` (:meth:`PatchReader.partial_case`), reading
only the patch (:meth:`PatchReader.patch_item`). Ids that are not patch ids (the whole validation and test volumes)
are served by the volume reader.
"""

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from alseg.core.partial_labels import UNKNOWN
from alseg.core.patch_pool import Box
from alseg.datasets.item_datasets import ItemReader, as_tensor
from alseg.datasets.item_source import Role, check_label_array
from alseg.datasets.patch_items import parse_patch_id
from alseg.datasets.patches import PatchSampler, Window, crop, foreground_indices, pad_to_window


class PatchReader:
    """Builds patch items; holds their pseudo labels; assembles the partial labels of training volumes.

    Args:
        volumes: The reader of whole volumes (cache, metadata, normaliser, label format).
        train: The labelled ids (shared with the item sets, which extend it), oracle and pseudo labels.

    Attributes:
        pseudo_labels: Patch id → pseudo label in the cache's target format, ``uint8 [R, *size]`` or ``[*size]``.
        oracle_labels: Patch id → the label an oracle supplied for the box (a person's), in the same format; the
            box's ground truth otherwise.
    """

    def __init__(self, volumes: ItemReader, train: list[str]) -> None:
        self.volumes, self.train = volumes, train
        self.pseudo_labels: dict[str, np.ndarray] = {}
        self.oracle_labels: dict[str, np.ndarray] = {}

    def _box(self, item_id: str) -> Box | None:
        return parse_patch_id(item_id)

    def _crop(self, array: np.ndarray, box: Box) -> np.ndarray:
        """A copy of the box of ``array`` ``[..., X, Y, Z]`` (only the box is read from a memory map)."""
        return np.ascontiguousarray(array[(..., *box.slices)])

    def _truth(self, box: Box) -> np.ndarray:
        return self._crop(self.volumes.cache.label(box.case_id), box)

    def _oracle_label(self, item_id: str, box: Box) -> np.ndarray:
        """The label the oracle gave the box: a person's if supplied, else the ground truth inside it."""
        supplied = self.oracle_labels.get(item_id)
        return self._truth(box) if supplied is None else supplied

    def item(self, item_id: str, role: Role) -> dict[str, Any]:
        """The item of a patch id (see the module doc), or the volume reader's item of any other id."""
        box = self._box(item_id)
        if box is None:
            return self.volumes.item(item_id, role)
        meta = self.volumes.metas[box.case_id]
        image = self._crop(self.volumes.cache.image(box.case_id), box)
        self.volumes.normalizer(image, meta.nonzero, out=image)
        item: dict[str, Any] = {
            "image": as_tensor(image),
            "id": item_id,
            "case_id": box.case_id,
            "spacing": torch.tensor(meta.spacing, dtype=torch.float32),
        }
        if role == "pool":
            return item
        pseudo = self.pseudo_labels.get(item_id) if role == "train" else None
        label = self._oracle_label(item_id, box) if role == "train" else self._truth(box)
        item["label"] = self.volumes.as_target(label if pseudo is None else pseudo)
        if role == "train":
            item["pseudo_labeled"] = pseudo is not None
        return item

    def partial_case(self, case_id: str, window: Window | None = None) -> np.ndarray:
        """The case's target with every voxel outside its labelled boxes set to ``UNKNOWN``, or its part in a window.

        Pseudo-labelled boxes hold their pseudo labels; where an oracle box overlaps one, the oracle's label wins.
        Only the parts of the boxes inside ``window`` are read.

        Args:
            case_id: The case.
            window: Only this box of the case (its part inside the volume); the whole volume without it.

        Returns:
            ``uint8 [R, *spatial]`` (multi-label) or ``uint8 [*spatial]`` (single-label), ``spatial`` the volume's
            shape or that of the window's part inside it.
        """
        truth = self.volumes.cache.label(case_id)
        shape = truth.shape[-3:]
        inside = window.inside(shape) if window is not None else tuple(slice(0, n) for n in shape)
        partial = np.full((*truth.shape[:-3], *(s.stop - s.start for s in inside)), UNKNOWN, dtype=np.uint8)
        boxes = [(i, b) for i in self.train if (b := self._box(i)) is not None and b.case_id == case_id]
        for item_id, box in sorted(boxes, key=lambda pair: pair[0] not in self.pseudo_labels):  # pseudo first
            overlap = [
                slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(inside, box.slices, strict=True)
            ]
            if any(s.stop <= s.start for s in overlap):
                continue
            in_box = tuple(slice(s.start - b, s.stop - b) for s, b in zip(overlap, box.start, strict=True))
            in_window = tuple(slice(s.start - i.start, s.stop - i.start) for s, i in zip(overlap, inside, strict=True))
            pseudo = self.pseudo_labels.get(item_id)
            supplied = self.oracle_labels.get(item_id) if pseudo is None else pseudo
            values = truth[(..., *overlap)] if supplied is None else supplied[(..., *in_box)]
            partial[(..., *in_window)] = values
        return partial

    def patch_item(self, item_id: str, patches: PatchSampler) -> dict[str, Any]:
        """A training patch of a labelled box: a random crop of the partially labelled volume, centred in the box.

        Only the box and the patch are read from the cache.

        Args:
            item_id: A labelled box.
            patches: Chooses the patch (centred on the box's known foreground with its probability, else anywhere
                in the box; see :class:`~alseg.datasets.patches.PatchSampler`).

        Returns:
            The box's ``id``, ``case_id``, ``spacing``, ``pseudo_labeled``, and the patch's ``image`` and
            ``label`` (voxels outside every labelled box ``UNKNOWN``, padding 0).
        """
        box = self._box(item_id)
        assert box is not None, item_id
        volumes, meta = self.volumes, self.volumes.metas[box.case_id]
        region = Window(box.start, box.size)
        labelled = self.partial_case(box.case_id, region)
        channels = labelled if volumes.multilabel else labelled[None]
        foreground = (channels != UNKNOWN).all(0) & (channels > 0).any(0)
        window = patches.window(meta.shape, foreground_indices(foreground), region)
        image = crop(
            volumes.cache.image(box.case_id), window, lambda part: volumes.normalizer(part, meta.nonzero, out=part)
        )
        label = pad_to_window(self.partial_case(box.case_id, window), window, meta.shape)
        return {
            "image": as_tensor(image),
            "id": item_id,
            "case_id": box.case_id,
            "spacing": torch.tensor(meta.spacing, dtype=torch.float32),
            "label": volumes.as_target(label),
            "pseudo_labeled": item_id in self.pseudo_labels,
        }

    def label_shape(self, item_id: str) -> tuple[int, ...]:
        """Shape of the item's ``label``: ``(R, *size)`` or ``(1, *size)`` for a box."""
        box = self._box(item_id)
        if box is None:
            return self.volumes.label_shape(item_id)
        return (self.volumes.num_classes if self.volumes.multilabel else 1, *box.size)

    def has_ground_truth(self, item_id: str) -> bool:
        """Whether the box's (or volume's) case has a ground-truth label."""
        box = self._box(item_id)
        return self.volumes.has_ground_truth(item_id if box is None else box.case_id)

    def has_foreground(self, item_id: str) -> bool:
        """Whether the ground truth inside the box holds foreground (analysis and oracle-informed baselines)."""
        box = self._box(item_id)
        return self.volumes.has_foreground(item_id) if box is None else bool(self._truth(box).any())

    def ground_truth(self, item_id: str) -> torch.Tensor:
        """The ground truth of the box (or volume), as its labelled item carries it."""
        box = self._box(item_id)
        return self.volumes.ground_truth(item_id) if box is None else self.volumes.as_target(self._truth(box))

    def metadata(self, item_id: str) -> dict[str, Any]:
        """The ``case_id`` of a box; reads nothing."""
        box = self._box(item_id)
        return self.volumes.metadata(item_id) if box is None else {"case_id": box.case_id}

    def annotation_cost(self, item_id: str) -> dict[str, int]:
        """1 item, the box's slices along the slicing axis, its voxels and the foreground voxels of its oracle label.

        The oracle label is a person's where one was supplied, else the ground truth (as for volume items).
        """
        box = self._box(item_id)
        if box is None:
            return self.volumes.annotation_cost(item_id)
        label = self._oracle_label(item_id, box)
        foreground = label.any(0) if self.volumes.multilabel else label > 0
        slices = box.size[self.volumes.axis]
        return {"items": 1, "slices": slices, "voxels": box.voxels, "foreground_voxels": int(foreground.sum())}

    def check_pseudo_label(self, item_id: str, label: Any) -> np.ndarray:
        """A pseudo label shaped like the box's ``label``, in the cache's format.

        Raises:
            PluginError: Wrong shape, or values other than 0/1 (multi-label) or class indices.
        """
        volumes = self.volumes
        shape = self.label_shape(item_id)
        stored = check_label_array(item_id, label, shape, volumes.multilabel, volumes.num_classes)
        return stored if volumes.multilabel else stored[0]


class PatchTrainingDataset(Dataset):
    """Training patches of labelled boxes: one random crop of the partially labelled volume per box and epoch.

    The crop centre lies in the box (:meth:`PatchReader.patch_item`), so every
    training patch holds the box's labelled voxels, and others of the same case where the crop reaches them.

    Args:
        reader: The patch reader.
        ids: The labelled ids (shared with the item sets, not copied).
        patches: The training-patch sampler (``patch_size``, foreground probability).
    """

    def __init__(self, reader: PatchReader, ids: list[str], patches: PatchSampler) -> None:
        self.reader, self.ids, self.patches = reader, ids, patches

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.reader.patch_item(self.ids[index], self.patches)
