"""BALD: label the items whose predictions the model's weights disagree on most (MC dropout)."""

from torch import Tensor

from alseg.core.errors import ConfigError
from alseg.strategies.scoring import mutual_information
from alseg.strategies.uncertainty import UncertaintyStrategy


class BALDStrategy(UncertaintyStrategy):
    """Mutual information H[E p] − E[H p] between prediction and weights over T MC-dropout samples.

    Only dropout layers sample; normalisation layers stay in eval mode. A model without dropout is an error.

    Args:
        mc_samples: MC-dropout samples T per item.
        **kwargs: Options of :class:`UncertaintyStrategy` (aggregation, power, …).
    """

    def __init__(self, mc_samples: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        if mc_samples < 2:
            raise ConfigError(f"The 'mc_samples' option of BALD must be >= 2. Got {mc_samples}.")
        self.mc_samples = mc_samples

    def voxel_scores(self, probabilities: Tensor, multi_label: bool) -> Tensor:
        """Returns the mutual-information map ``[B, *S]`` in nats from samples ``[K, B, C, *S]``."""
        return mutual_information(probabilities, multi_label)


class PowerBALDStrategy(BALDStrategy):
    """:class:`BALDStrategy` with power sampling (β = 1) by default, registered as ``power_bald``.

    It exists only so that the short name has a class to point to; ``bald`` with ``power: 1.0`` is the same.
    """

    def __init__(self, power: float | None = 1.0, **kwargs) -> None:
        super().__init__(power=power, **kwargs)
