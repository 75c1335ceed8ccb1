"""Item dictionaries read from the volume cache, and the datasets of a data module that list them.

Every item has ``image`` (normalised ``float32 [C, *spatial]``), ``id``, ``case_id`` and ``spacing``
(``float32 [3]``, mm). Slice items add ``slice_index`` (along the slicing axis); volume items have
no ``slice_index``, so that metrics never gather them as slices. The spacing is that of the
volume the item belongs to, as its items stack: ``(X, Y, Z)`` for a volume, the two in-plane
axes then the slicing axis for a slice (``(X, Y, Z)`` again for axial slices). Labelled items add
``label``: multi-label ``uint8 [R, *spatial]`` binary regions, single-label ``int64 [1,
*spatial]`` class indices. Training items add ``pseudo_labeled`` (bool). Pool items never carry
a label.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from alseg.core.errors import PluginError
from alseg.datasets.cache import CaseMeta, VolumeCache
from alseg.datasets.item_source import ItemSource, Role, check_label_array
from alseg.datasets.items import parse_item_id, read_item_image, read_item_label
from alseg.datasets.normalization import Normalizer
from alseg.datasets.patches import PatchSampler, crop, foreground_indices


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor of ``array`` (a copy if it is read-only, e.g. memory-mapped)."""
    # torch.from_numpy shares memory and warns on read-only (memory-mapped) arrays.
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class ItemReader:
    """Builds the items of one cached dataset; holds the pseudo labels given so far.

    Args:
        cache: The cache holding every case of ``metas``.
        metas: Case id → metadata of the cached case.
        axis: Slicing axis of slice items (0, 1 or 2 of ``X, Y, Z``).
        class_names: Channel (multi-label) or class (single-label) names.
        multilabel: Whether targets are binary channels.
        normalizer: Normalises the cached (decoded) intensities of every image read.

    Attributes:
        pseudo_labels: Item id → pseudo label in the cache's target format (``uint8 [R, *spatial]``
            or ``uint8 [*spatial]``).
        oracle_labels: Item id → a label an oracle supplied (a person's), in the same format. Training items carry
            it instead of the ground truth; the cost and foreground of the item are counted in it. Items of cases
            without ground truth (``has_label`` false) can only be labelled this way.
    """

    def __init__(
        self,
        cache: VolumeCache,
        metas: Mapping[str, CaseMeta],
        axis: int,
        class_names: Sequence[str],
        multilabel: bool,
        normalizer: Normalizer,
    ) -> None:
        self.cache, self.metas, self.axis, self.normalizer = cache, metas, axis, normalizer
        self.num_classes, self.multilabel = len(class_names), multilabel
        self.pseudo_labels: dict[str, np.ndarray] = {}
        self.oracle_labels: dict[str, np.ndarray] = {}

    def _in_plane(self, values: Sequence) -> tuple:
        """The per-axis values of the two in-plane axes of a slice."""
        return tuple(v for a, v in enumerate(values) if a != self.axis)

    def label_shape(self, item_id: str) -> tuple[int, ...]:
        """Shape of the item's ``label``: ``(R, *spatial)`` or ``(1, *spatial)``."""
        case_id, slice_index = parse_item_id(item_id)
        channels = self.num_classes if self.multilabel else 1
        shape = self.metas[case_id].shape
        return (channels, *(shape if slice_index is None else self._in_plane(shape)))

    def has_ground_truth(self, item_id: str) -> bool:
        """Whether the item's case has a ground-truth label (cases of ``unlabeled_images`` have none)."""
        return self.metas[parse_item_id(item_id)[0]].has_label

    def _label(self, item_id: str) -> np.ndarray:
        """The oracle's label of the item if it has one, else its ground truth, in the cache's format.

        The ground truth is the memory-mapped view (nothing read yet) of the case or slice.

        Raises:
            PluginError: Neither exists (a case without ground truth that no oracle labelled).
        """
        supplied = self.oracle_labels.get(item_id)
        if supplied is not None:
            return supplied
        if not self.has_ground_truth(item_id):
            raise PluginError(
                f"Item {item_id!r}: its case has no ground truth and no oracle labelled it (it needs a person: "
                "--oracle folder)."
            )
        return read_item_label(self.cache, item_id, self.axis, copy=False)

    def has_foreground(self, item_id: str) -> bool:
        """Whether the item's label (an oracle's, else the ground truth) has foreground (analysis only)."""
        case_id, slice_index = parse_item_id(item_id)
        if item_id in self.oracle_labels or not self.has_ground_truth(item_id):
            label = self._label(item_id)
            return bool((label.any(0) if self.multilabel else label > 0).any())
        slices = self.metas[case_id].foreground_slices[self.axis]
        return bool(slices) if slice_index is None else slice_index in slices

    def annotation_cost(self, item_id: str) -> dict[str, int]:
        """What labelling one item costs: 1 item, its slices along the slicing axis, voxels, foreground voxels.

        The foreground voxels are counted in the ground truth (any region or class but background).
        """
        case_id, slice_index = parse_item_id(item_id)
        label = self._label(item_id)
        foreground = label.any(0) if self.multilabel else label > 0
        return {
            "items": 1,
            "slices": self.metas[case_id].shape[self.axis] if slice_index is None else 1,
            "voxels": int(np.prod(foreground.shape)),
            "foreground_voxels": int(np.count_nonzero(foreground)),
        }

    def ground_truth(self, item_id: str) -> torch.Tensor:
        """The item's ground-truth ``label`` (never its pseudo label), as a training item would carry it.

        Raises:
            PluginError: The item's case has no ground truth.
        """
        if not self.has_ground_truth(item_id):
            raise PluginError(f"Item {item_id!r}: its case has no ground truth.")
        return self.as_target(read_item_label(self.cache, item_id, self.axis))

    def metadata(self, item_id: str) -> dict[str, Any]:
        """The item's ``case_id`` and, for a slice, ``slice_index``; reads nothing."""
        case_id, slice_index = parse_item_id(item_id)
        return {"case_id": case_id} | ({} if slice_index is None else {"slice_index": slice_index})

    def as_target(self, label: np.ndarray) -> torch.Tensor:
        """A stored target as an item's ``label``: ``uint8 [R, *spatial]`` or ``int64 [1, *spatial]``."""
        target = as_tensor(label)
        return target if self.multilabel else target[None].long()

    def item(self, item_id: str, role: Role) -> dict[str, Any]:
        """The item dictionary of ``item_id`` for a dataset of the given role (see module doc)."""
        case_id = parse_item_id(item_id)[0]
        image = read_item_image(self.cache, item_id, self.axis)
        self.normalizer(image, self.metas[case_id].nonzero, out=image)
        if role == "pool":
            return self._item(item_id, image, None, role)
        pseudo = self.pseudo_labels.get(item_id) if role == "train" else None
        label = self._label(item_id) if pseudo is None else pseudo
        return self._item(item_id, image, np.ascontiguousarray(label), role)

    def patch_item(self, item_id: str, patches: PatchSampler) -> dict[str, Any]:
        """The training item of a volume id cropped to one random patch; only the patch is read from the cache.

        Args:
            item_id: A volume id of the training set.
            patches: Chooses the patch (centred on foreground with its probability, see
                :class:`~alseg.datasets.patches.PatchSampler`).
        """
        case_id = parse_item_id(item_id)[0]
        meta = self.metas[case_id]
        pseudo = self.pseudo_labels.get(item_id)
        label = self._label(item_id) if pseudo is None else pseudo
        if pseudo is None and item_id not in self.oracle_labels:
            foreground = self.cache.foreground_voxels(case_id)  # precomputed: the label is not read
        else:
            foreground = foreground_indices(label.any(0) if self.multilabel else label > 0)
        window = patches.window(meta.shape, foreground)
        image = crop(self.cache.image(case_id), window, lambda part: self.normalizer(part, meta.nonzero, out=part))
        return self._item(item_id, image, crop(label, window), "train")

    def _item(self, item_id: str, image: np.ndarray, label: np.ndarray | None, role: Role) -> dict[str, Any]:
        """The item dictionary of an image (normalised) and, unless ``role`` is ``"pool"``, its stored label."""
        case_id, slice_index = parse_item_id(item_id)
        spacing = self.metas[case_id].spacing
        item: dict[str, Any] = {"image": as_tensor(image), "id": item_id, "case_id": case_id}
        if slice_index is not None:
            item["slice_index"] = slice_index
            spacing = (*self._in_plane(spacing), spacing[self.axis])
        item["spacing"] = torch.tensor(spacing, dtype=torch.float32)
        if role == "pool":
            return item
        item["label"] = self.as_target(label)
        if role == "train":
            item["pseudo_labeled"] = item_id in self.pseudo_labels
        return item

    def check_pseudo_label(self, item_id: str, label: Any) -> np.ndarray:
        """A pseudo label (array or tensor shaped like the item's ``label``) in the cache's format.

        Raises:
            PluginError: Wrong shape, or values other than 0/1 (multi-label) or class indices.
        """
        stored = check_label_array(item_id, label, self.label_shape(item_id), self.multilabel, self.num_classes)
        return stored if self.multilabel else stored[0]


class ItemDataset(Dataset):
    """The items of a shared, mutable list of ids (the data module moves ids between lists).

    Args:
        reader: Builds the items (an :class:`ItemReader` or any other :class:`ItemSource`).
        ids: Item ids; the list object is shared with the data module, not copied.
        role: ``"train"`` (label, ``pseudo_labeled``), ``"eval"`` (label) or ``"pool"`` (no label).
        patches: Crops training items to random patches (3D volumes of an :class:`ItemReader`), or ``None`` for
            whole items.
    """

    def __init__(self, reader: ItemSource, ids: list[str], role: Role, patches: PatchSampler | None = None) -> None:
        self.reader, self.ids, self.role, self.patches = reader, ids, role, patches

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.patches is not None:
            return self.reader.patch_item(self.ids[index], self.patches)
        return self.reader.item(self.ids[index], self.role)
