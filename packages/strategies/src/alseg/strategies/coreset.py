"""Core-set sampling: label the pool items that best cover the feature space (k-center greedy)."""

from typing import Any

import torch

from alseg.core.inference import current_placement, map_pool, stream_embeddings
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.strategy import QueryStrategy
from alseg.strategies.k_center import k_center_greedy
from alseg.strategies.patch_query import refuse_patch_pool


class CoresetStrategy(QueryStrategy):
    """k-center greedy (Sener & Savarese, 2018) on ``embedding_step`` features of the labelled and pool items.

    Distances are updated in chunks (no N × N matrix). Labelled items are the initial centres; with none, the first
    pick is the pool item farthest from the feature mean. Ties (e.g. identical embeddings) are broken by a permutation
    of the pool's ids in ascending order, seeded by the round's seed.

    Args:
        chunk_size: Rows per distance block.
        device: Where to run the selection (e.g. ``cuda``); by default where pool inference runs (the Trainer's
            device in a pipeline, see :func:`alseg.core.inference.current_placement`).
    """

    def __init__(self, chunk_size: int = 4096, device: str | None = None) -> None:
        self.chunk_size = chunk_size
        self.device = device

    def select_items_to_label(
        self,
        models: PytorchModel | list[PytorchModel],
        data_module: QueryView,
        items_to_label: int,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Returns the ``items_to_label`` pool ids picked by k-center greedy.

        Raises:
            ConfigError: The pool is a patch pool: k-center greedy does not keep its ``max_overlap`` rule.
        """
        refuse_patch_pool(data_module, type(self).__name__)
        model = models[0] if isinstance(models, list) else models
        pool = self._embed(model, data_module, None)
        labelled = (
            self._embed(model, data_module, data_module.labeled_dataloader()) if data_module.training_set_size() else {}
        )
        pool_ids = sorted(pool)
        device = self.device or current_placement(model).device
        features = torch.stack([pool[i] for i in pool_ids] + list(labelled.values())).to(device)
        is_labelled = torch.arange(len(features), device=device) >= len(pool_ids)
        picked = k_center_greedy(features, is_labelled, items_to_label, self.chunk_size, seed=seed).indices
        return [pool_ids[i] for i in picked], None

    def _embed(self, model: PytorchModel, data_module: QueryView, loader: Any) -> dict[str, torch.Tensor]:
        stream = stream_embeddings(model, data_module, loader, requested_by="coreset")
        return map_pool(stream, lambda batch, embeddings: list(embeddings.cpu()))
