"""The score-based strategies that other strategies rank by, named by a short option (``uncertainty: bald``)."""

from alseg.core.errors import ConfigError
from alseg.strategies.bald import BALDStrategy
from alseg.strategies.entropy import EntropyStrategy
from alseg.strategies.uncertainty import UncertaintyStrategy

UNCERTAINTIES = ("bald", "entropy")


def score_based(uncertainty: str, mc_samples: int) -> UncertaintyStrategy:
    """Returns mean entropy or mean BALD (with ``mc_samples`` MC-dropout samples) per item.

    Raises:
        ConfigError: ``uncertainty`` is not one of :data:`UNCERTAINTIES`.
    """
    if uncertainty not in UNCERTAINTIES:
        raise ConfigError(
            f"The 'uncertainty' option of the strategy must be one of: {', '.join(UNCERTAINTIES)}. Got {uncertainty!r}."
        )
    return BALDStrategy(mc_samples=mc_samples) if uncertainty == "bald" else EntropyStrategy()
