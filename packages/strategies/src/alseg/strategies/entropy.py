"""Entropy sampling: label the items whose predictions are most uncertain."""

from torch import Tensor

from alseg.strategies.scoring import predictive_entropy
from alseg.strategies.uncertainty import UncertaintyStrategy


class EntropyStrategy(UncertaintyStrategy):
    """Predictive entropy per voxel, reduced per item.

    Shannon entropy over classes for softmax outputs, the sum of per-channel binary entropies for sigmoid
    (multi-label) outputs. Options: see :class:`UncertaintyStrategy`.
    """

    def voxel_scores(self, probabilities: Tensor, multi_label: bool) -> Tensor:
        """Returns the entropy map ``[B, *S]`` in nats."""
        return predictive_entropy(probabilities, multi_label)


class PowerEntropyStrategy(EntropyStrategy):
    """:class:`EntropyStrategy` with power sampling (β = 1) by default, registered as ``power_entropy``.

    It exists only so that the short name has a class to point to; ``entropy`` with ``power: 1.0`` is the same.
    """

    def __init__(self, power: float | None = 1.0, **kwargs) -> None:
        super().__init__(power=power, **kwargs)
