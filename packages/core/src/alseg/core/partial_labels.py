"""Partial labels: voxels nobody annotated are unknown, not background.

A label marks them with :data:`UNKNOWN` (255): a single-label class map ``[1, *spatial]`` at the voxel, a multi-label
map ``[C, *spatial]`` in its channels (a voxel unknown in any channel is unknown). Losses average over the known
voxels only (:mod:`alseg.core.losses`); a fully labelled item has no unknown voxel and is unaffected.
"""

import torch
from torch import Tensor

#: The label value of a voxel nobody annotated.
UNKNOWN = 255


def known_voxels(target: Tensor) -> Tensor:
    """Returns the known voxels of a batch of labels.

    Args:
        target: Labels ``[B, C, *spatial]`` (``C = 1`` for class maps).

    Returns:
        Boolean ``[B, 1, *spatial]``: true where no channel holds :data:`UNKNOWN`.
    """
    return (target != UNKNOWN).all(dim=1, keepdim=True)


def with_unknown_as(target: Tensor, known: Tensor, value: int = 0) -> Tensor:
    """Returns ``target`` with its unknown voxels set to ``value`` (a valid label, for losses that one-hot it)."""
    return torch.where(known, target, torch.full_like(target, value))
