"""Item dictionaries of decoded 2D images held in memory (the image-folder analogue of ``ItemReader``).

Every item has ``image`` (normalised ``float32 [C, H, W]``), ``id`` (the file stem) and ``case_id`` (the stem too:
an image is a 2D "volume" of its own, so the metrics measure every image alone, with no ``slice_index``). Labelled
items add ``label`` (``int64 [1, H, W]`` class indices), training items ``pseudo_labeled`` (bool). Pool items never
carry a label.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from alseg.core.partial_labels import UNKNOWN
from alseg.datasets.image_decoding import DecodedImage
from alseg.datasets.image_normalization import ChannelNormalizer
from alseg.datasets.item_source import Role, check_label_array


class ImageReader:
    """Builds the items of decoded images; holds the pseudo labels given so far.

    Args:
        decoded: Item id (file stem) → its decoded arrays.
        class_names: Class names by class index.
        normalizer: Normalises every image read.

    Attributes:
        pseudo_labels: Item id → pseudo label ``uint8 [H, W]``.
        oracle_labels: Item id → label an oracle supplied (a person's), ``uint8 [H, W]``; training items carry it.
    """

    def __init__(
        self, decoded: Mapping[str, DecodedImage], class_names: tuple[str, ...], normalizer: ChannelNormalizer
    ):
        self.decoded, self.normalizer = decoded, normalizer
        self.num_classes = len(class_names)
        self.pseudo_labels: dict[str, np.ndarray] = {}
        self.oracle_labels: dict[str, np.ndarray] = {}

    def item(self, item_id: str, role: Role) -> dict[str, Any]:
        """The item dictionary of ``item_id`` for a dataset of the given role (see the module doc)."""
        decoded = self.decoded[item_id]
        item: dict[str, Any] = {
            "image": torch.from_numpy(self.normalizer(decoded.image)),
            "id": item_id,
            "case_id": item_id,
        }
        if role == "pool":
            return item
        pseudo = self.pseudo_labels.get(item_id) if role == "train" else None
        stored = self.oracle_labels.get(item_id) if pseudo is None and role == "train" else pseudo
        item["label"] = self.ground_truth(item_id) if stored is None else _target(stored)
        if role == "train":
            item["pseudo_labeled"] = pseudo is not None
        return item

    def ground_truth(self, item_id: str) -> torch.Tensor:
        """The image's ground-truth ``label`` ``int64 [1, H, W]`` (never its pseudo label)."""
        return _target(self.decoded[item_id].label)

    def metadata(self, item_id: str) -> dict[str, Any]:
        """The image's ``case_id`` (its own id: an image is a case of its own)."""
        return {"case_id": item_id}

    def check_pseudo_label(self, item_id: str, label: Any) -> np.ndarray:
        """A pseudo label (array or tensor ``[1, H, W]`` of class indices) as ``uint8 [H, W]``.

        Raises:
            PluginError: Wrong shape, or values that are not class indices.
        """
        shape = (1, *self.decoded[item_id].label.shape)
        return check_label_array(item_id, label, shape, False, self.num_classes)[0]

    def has_ground_truth(self, item_id: str) -> bool:
        """Whether the image has a ground-truth mask (always: image folders pair every image with a mask)."""
        return True

    def has_foreground(self, item_id: str) -> bool:
        """Whether the item's label (an oracle's, else the ground truth) has a pixel of a class other than 0."""
        return bool(_foreground(self.oracle_labels.get(item_id, self.decoded[item_id].label)).any())

    def annotation_cost(self, item_id: str) -> dict[str, int]:
        """What labelling one image costs: 1 item, 1 slice, its pixels and its ground-truth pixels of classes > 0."""
        label = self.oracle_labels.get(item_id, self.decoded[item_id].label)
        return {"items": 1, "slices": 1, "voxels": int(label.size), "foreground_voxels": int(_foreground(label).sum())}


def _foreground(label: np.ndarray) -> np.ndarray:
    """Pixels of a class other than 0 (unknown pixels are not foreground)."""
    return (label > 0) & (label != UNKNOWN)


def _target(label: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(label[None].astype(np.int64))
