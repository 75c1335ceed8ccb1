"""The contract between a dataset's items and the datasets and oracle of a data module, and the pseudo-label check.

:class:`~alseg.datasets.item_datasets.ItemReader` (slices and volumes of the volume cache) and
:class:`~alseg.datasets.image_items.ImageReader` (decoded 2D images) implement :class:`ItemSource`;
:class:`~alseg.datasets.item_datasets.ItemDataset` and :class:`~alseg.datasets.item_sets.ItemSets` use any of them.
"""

from typing import Any, Literal, Protocol

import numpy as np
import torch

from alseg.core.errors import PluginError

Role = Literal["train", "eval", "pool"]
"""What a dataset serves: ``"train"`` (label, ``pseudo_labeled``), ``"eval"`` (label) or ``"pool"`` (no label)."""


class ItemSource(Protocol):
    """What the datasets and the oracle (:class:`~alseg.datasets.item_sets.ItemSets`) need of a dataset's items.

    Attributes:
        pseudo_labels: Item id → pseudo label as returned by :meth:`check_pseudo_label`.
        oracle_labels: Item id → a label an oracle supplied (a person's), in the same format; a training item carries
            it instead of the ground truth, and costs and foreground are counted in it.
    """

    pseudo_labels: dict[str, np.ndarray]
    oracle_labels: dict[str, np.ndarray]

    def item(self, item_id: str, role: Role) -> dict[str, Any]:
        """The item dictionary of ``item_id`` for a dataset of the given role."""
        ...

    def check_pseudo_label(self, item_id: str, label: Any) -> np.ndarray:
        """A pseudo label shaped like the item's ``label``, checked and in the stored format."""
        ...

    def has_ground_truth(self, item_id: str) -> bool:
        """Whether the item's case has a ground-truth label (else only an oracle that asks a person can label it)."""
        ...

    def has_foreground(self, item_id: str) -> bool:
        """Whether the item's label (an oracle's, else the ground truth) has foreground (analysis only)."""
        ...

    def ground_truth(self, item_id: str) -> torch.Tensor:
        """The item's ground-truth ``label`` (never its pseudo label), as a training item would carry it."""
        ...

    def metadata(self, item_id: str) -> dict[str, Any]:
        """The item's ``case_id`` and, for a slice, ``slice_index``; reads nothing."""
        ...

    def annotation_cost(self, item_id: str) -> dict[str, int]:
        """``items``, ``slices``, ``voxels`` and ``foreground_voxels`` of labelling one item."""
        ...


def check_label_array(
    item_id: str, label: Any, shape: tuple[int, ...], multilabel: bool, num_classes: int
) -> np.ndarray:
    """A pseudo label (array or tensor) as ``uint8`` of the item's ``label`` shape, after checking it.

    Args:
        item_id: The item, for error messages.
        label: The pseudo label, ``[R, *spatial]`` 0/1 (multi-label) or ``[1, *spatial]`` class indices.
        shape: The shape of the item's ``label``.
        multilabel: Whether labels are binary channels.
        num_classes: Channels (multi-label) or classes (single-label).

    Raises:
        PluginError: Wrong shape, or values other than 0/1 (multi-label) or class indices.
    """
    array = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    if array.shape != shape:
        raise PluginError(f"The pseudo label of item {item_id!r} must have shape {shape}. Got {array.shape}.")
    valid = range(2) if multilabel else range(num_classes)
    if not np.isin(array, valid).all():
        raise PluginError(
            f"The pseudo label of item {item_id!r} must hold only the values {list(valid)}. "
            f"Got {np.unique(array)[:10].tolist()}."
        )
    return array.astype(np.uint8)
