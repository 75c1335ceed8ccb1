"""Oracle-informed foreground sampling: :mod:`fg_random`'s draw on the ground truth instead of the predictions.

A baseline, not a strategy one could deploy: it reads the answer (whether each pool item's ground truth contains
foreground) through :meth:`~alseg.core.query_view.QueryView.ground_truth_foreground`, and every round's ledger entry
records how many ids it revealed (``ground_truth_revealed``).
"""

from typing import Any

from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.strategy import QueryStrategy
from alseg.strategies.fg_random import check_foreground_fraction, draw_with_foreground
from alseg.strategies.patch_query import patches_with_foreground


class OracleForegroundStrategy(QueryStrategy):
    """Random sampling where a fraction of the batch comes from items whose ground truth contains foreground.

    It asks for the ground truth of the whole pool every round, runs no model and loads no image. If fewer items
    contain foreground than the fraction asks for, the rest is drawn uniformly from the remaining pool.

    Args:
        foreground_fraction: Share of each batch drawn from items with foreground, in [0, 1] (the default of
            ``fg_random``, so that the two differ only in where the foreground flags come from; 1.0 labels only
            foreground items while there are any).
    """

    def __init__(self, foreground_fraction: float = 0.5) -> None:
        check_foreground_fraction(foreground_fraction)
        self.foreground_fraction = foreground_fraction

    def select_items_to_label(
        self,
        models: PytorchModel | list[PytorchModel],
        data_module: QueryView,
        items_to_label: int,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Returns ``round(fraction · k)`` random ids with foreground in their ground truth, then random others.

        On a patch pool the ids are boxes whose ground truth holds foreground, and every pick keeps the pool's
        overlap rule (:func:`~alseg.strategies.patch_query.patches_with_foreground`).
        """
        pool_ids = data_module.unlabeled_ids()
        flags = data_module.ground_truth_foreground(pool_ids)
        foreground = [i for i, flag in zip(pool_ids, flags, strict=True) if flag]
        patches = data_module.patch_pool()
        if patches is not None:
            return patches_with_foreground(patches, foreground, items_to_label, self.foreground_fraction, seed), None
        return draw_with_foreground(pool_ids, foreground, items_to_label, self.foreground_fraction, seed), None


class ForegroundAwareRandomStrategy(OracleForegroundStrategy):
    """nnActive's foreground-aware random baseline: a third of each batch from items holding ground-truth foreground.

    Lüth et al. (nnActive, TMLR 2025) draw a fixed share of the queried patches (1/3) centred on a random
    ground-truth foreground voxel and the rest uniformly. On a grid of candidate boxes the boxes whose ground
    truth holds foreground stand for them (with ``query_stride`` 1, every box centred on a foreground voxel is
    among them). It is :class:`OracleForegroundStrategy` with ``foreground_fraction`` 1/3, registered as
    ``fg_aware_random``: oracle-informed, the ledger counts its ``ground_truth_revealed`` ids and reports mark it.
    """

    def __init__(self, foreground_fraction: float = 1 / 3) -> None:
        super().__init__(foreground_fraction)
