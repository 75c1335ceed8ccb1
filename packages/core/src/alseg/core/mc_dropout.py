"""Monte-Carlo dropout: sample a model's predictive distribution with dropout switched on.

``model.train()`` is the wrong tool for this: it also puts BatchNorm into batch-statistics mode
and updates its running statistics with every forward pass. :func:`mc_dropout` switches on only
the dropout layers (every ``torch.nn.modules.dropout._DropoutNd``: ``Dropout``, ``Dropout1d/2d/3d``,
``AlphaDropout``, ``FeatureAlphaDropout``, wherever they are nested) and leaves every other module
in the mode it had, so call ``model.eval()`` first (Lightning's predict loop does).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from alseg.core.errors import ConfigError, PluginError


def _dropout_layers(module: nn.Module) -> list[_DropoutNd]:
    return [m for m in module.modules() if isinstance(m, _DropoutNd)]


def has_dropout(module: nn.Module) -> bool:
    """Whether ``module`` or any module nested in it is a dropout layer.

    Args:
        module: The model to inspect.

    Returns:
        True when at least one ``_DropoutNd`` instance is found.
    """
    return bool(_dropout_layers(module))


@contextmanager
def mc_dropout(module: nn.Module) -> Iterator[nn.Module]:
    """Switch the dropout layers of ``module`` to training mode for the duration of the block.

    Every other module keeps its current mode. On exit, normal or by exception, the exact previous
    ``training`` flag of every module is restored.

    Example:
        >>> model.eval()
        >>> with mc_dropout(model), torch.inference_mode():
        ...     samples = torch.stack([model(x).softmax(1) for _ in range(k)])  # [K, B, C, ...]

    Args:
        module: The model to sample from.

    Yields:
        ``module`` itself.

    Raises:
        PluginError: When ``module`` contains no dropout layer.
        ConfigError: When every dropout layer of ``module`` has ``p == 0`` (a model configured with dropout 0): the
            samples would be identical, as without dropout.
    """
    dropouts = _dropout_layers(module)
    if not dropouts:
        raise PluginError(
            f"Monte-Carlo dropout sampling was requested but the model {type(module).__name__} "
            "has no dropout layer (torch.nn.Dropout, Dropout1d/2d/3d, AlphaDropout, "
            "FeatureAlphaDropout), so all samples would be identical and BALD would be 0. "
            "Give the model a dropout rate > 0 or use a strategy that needs no sampling."
        )
    if all(layer.p == 0 for layer in dropouts):
        raise ConfigError(
            f"The dropout probability of the model {type(module).__name__} must be > 0 for Monte-Carlo dropout "
            f"sampling. Got p = 0 in all {len(dropouts)} of its dropout layers, so all samples would be identical "
            "and BALD's mutual information would be 0 everywhere. Configure the model with dropout > 0 or use a "
            "strategy that needs no sampling."
        )
    previous = [(m, m.training) for m in module.modules()]
    try:
        for layer in dropouts:
            layer.train(True)
        yield module
    finally:
        # Assign the flag directly: ``train(flag)`` would recurse into children and overwrite
        # their own (possibly different) previous flags.
        for m, training in previous:
            m.training = training
