"""Random sampling: the baseline every strategy must beat."""

from typing import Any

import torch

from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.strategy import QueryStrategy
from alseg.strategies.patch_query import random_patches


class RandomStrategy(QueryStrategy):
    """Picks pool items uniformly at random with the round's seed; runs no model and loads no image.

    On a patch pool the boxes come in a random order and are picked under the pool's overlap rule.
    """

    def select_items_to_label(
        self,
        models: PytorchModel | list[PytorchModel],
        data_module: QueryView,
        items_to_label: int,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Returns ``items_to_label`` ids drawn without replacement (all of them if the pool is smaller)."""
        patches = data_module.patch_pool()
        if patches is not None:
            return random_patches(patches, items_to_label, seed), None
        return random_choice(data_module.unlabeled_ids(), items_to_label, seed), None


def random_choice(ids: list[str], k: int, seed: int) -> list[str]:
    """Returns ``k`` of ``ids`` drawn uniformly without replacement; independent of the order of ``ids``."""
    ordered = sorted(ids)
    generator = torch.Generator().manual_seed(seed)
    return [ordered[i] for i in torch.randperm(len(ordered), generator=generator)[:k].tolist()]
