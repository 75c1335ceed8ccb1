"""Foreground-aware random sampling: part of the batch from items the model predicts to contain foreground."""

from typing import Any

from torch import Tensor

from alseg.core.errors import ConfigError
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.strategy import QueryStrategy
from alseg.strategies.patch_query import patches_with_foreground
from alseg.strategies.pool_scores import score_pool
from alseg.strategies.random import random_choice


class ForegroundRandomStrategy(QueryStrategy):
    """Random sampling where a fraction of the batch comes from items predicted to contain foreground.

    A strong baseline in 3D active learning: foreground is rare, so uniform sampling mostly labels background. Only
    the current model's predictions are used, never the ground truth (``oracle_fg`` is the same draw on the ground
    truth). If fewer items are predicted to contain foreground than the fraction asks for, the rest is drawn uniformly
    from the remaining pool.

    Args:
        foreground_fraction: Share of each batch drawn from items predicted to contain foreground, in [0, 1].
        threshold: Probability above which a voxel counts as foreground (sigmoid outputs; softmax outputs use the
            argmax class).
    """

    def __init__(self, foreground_fraction: float = 0.5, threshold: float = 0.5) -> None:
        check_foreground_fraction(foreground_fraction)
        self.foreground_fraction = foreground_fraction
        self.threshold = threshold

    def _has_foreground(self, probabilities: Tensor, multi_label: bool) -> Tensor:
        voxels = (probabilities > self.threshold).any(dim=1) if multi_label else probabilities.argmax(dim=1) > 0
        return voxels.flatten(1).any(dim=1).double()

    def select_items_to_label(
        self,
        models: PytorchModel | list[PytorchModel],
        data_module: QueryView,
        items_to_label: int,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Returns ``round(fraction · k)`` random predicted-foreground ids, then random ids from the rest.

        On a patch pool the ids are boxes whose crop (from ``unlabeled_dataloader()``) the model predicts to hold
        foreground, and every pick keeps the pool's overlap rule
        (:func:`~alseg.strategies.patch_query.patches_with_foreground`).
        """
        pool = score_pool(models, data_module, self._has_foreground)
        foreground = [i for i, flag in zip(pool.ids, pool.scores.tolist(), strict=True) if flag > 0]
        patches = data_module.patch_pool()
        if patches is not None:
            return patches_with_foreground(patches, foreground, items_to_label, self.foreground_fraction, seed), None
        return draw_with_foreground(pool.ids, foreground, items_to_label, self.foreground_fraction, seed), None


def check_foreground_fraction(fraction: float) -> None:
    """Raises :class:`ConfigError` unless ``fraction``, the foreground share of a batch, is in [0, 1]."""
    if not 0 <= fraction <= 1:
        raise ConfigError(f"The 'foreground_fraction' option must be in [0, 1]. Got {fraction}.")


def draw_with_foreground(pool_ids: list[str], foreground: list[str], k: int, fraction: float, seed: int) -> list[str]:
    """Returns ``round(fraction · k)`` random ids of ``foreground`` (all if fewer), then random ids from the rest.

    Args:
        pool_ids: The pool's ids.
        foreground: The pool ids that count as containing foreground.
        k: The number of ids wanted (all of the pool if it is smaller).
        fraction: The share of ``k`` drawn from ``foreground``, in [0, 1].
        seed: Seed of both draws; the result does not depend on the order of either list.

    Returns:
        The foreground picks, then the others.
    """
    picked = random_choice(foreground, min(round(fraction * k), len(foreground)), seed)
    rest = sorted(set(pool_ids) - set(picked))
    return picked + random_choice(rest, k - len(picked), seed + 1)
