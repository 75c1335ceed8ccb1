"""Uncertainty sampling: per-voxel uncertainty, reduced per item, then ranked (top-k or power sampling)."""

from abc import abstractmethod
from typing import Any

from torch import Tensor

from alseg.core.errors import ConfigError
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.strategy import QueryStrategy
from alseg.strategies.patch_query import check_patch_reduction, query_scored_patches
from alseg.strategies.pool_scores import score_pool
from alseg.strategies.scoring import REDUCTIONS, foreground_mask, reduce_scores
from alseg.strategies.selection import limit_per_case, power_sample, tied_picks, top_k


class UncertaintyStrategy(QueryStrategy):
    """Base of score-based strategies; subclasses define the per-voxel score (and MC samples).

    Args:
        aggregation: Voxel → item reduction: ``mean``, ``sum``, ``max`` or ``top_q`` (mean of the top-q fraction).
        top_q: The fraction for ``top_q`` aggregation, in (0, 1].
        exclude_background: Aggregate only over voxels the model predicts as foreground (argmax ≠ 0 for softmax
            outputs, any channel > 0.5 for sigmoid outputs); an item without such voxels scores 0.
        power: None ranks by score (top-k, equal scores in the order of a permutation seeded by the round's seed);
            a value β > 0 samples items with probability ∝ score^β (stochastic batch acquisition, seeded by the
            round's seed).
        prefer_unique_cases: At most this many items per volume (``case_id``) per round, when the pool allows.
    """

    #: MC-dropout samples per item (None: one deterministic pass).
    mc_samples: int | None = None

    def __init__(
        self,
        aggregation: str = "mean",
        top_q: float | None = None,
        exclude_background: bool = False,
        power: float | None = None,
        prefer_unique_cases: int | None = None,
    ) -> None:
        if aggregation not in REDUCTIONS:
            raise ConfigError(f"Unknown aggregation {aggregation!r}. Available: {', '.join(REDUCTIONS)}.")
        if power is not None and not power > 0:
            raise ConfigError(f"The 'power' option of the strategy must be > 0 (or null for top-k). Got {power}.")
        if prefer_unique_cases is not None and prefer_unique_cases < 1:
            raise ConfigError(f"The 'prefer_unique_cases' option must be >= 1 or null. Got {prefer_unique_cases}.")
        self.aggregation = aggregation
        self.top_q = top_q
        self.exclude_background = exclude_background
        self.power = power
        self.prefer_unique_cases = prefer_unique_cases

    @abstractmethod
    def voxel_scores(self, probabilities: Tensor, multi_label: bool) -> Tensor:
        """Returns per-voxel scores ``[B, *S]`` of a batch's probabilities (``[K, B, C, *S]`` with MC samples)."""

    def item_scores(self, probabilities: Tensor, multi_label: bool) -> Tensor:
        """Returns one score per item ``[B]``: the voxel scores reduced by the configured aggregation."""
        mask = None
        if self.exclude_background:
            mean = probabilities.mean(0) if self.mc_samples else probabilities
            mask = (mean > 0.5).any(dim=1) if multi_label else foreground_mask(mean)
        return reduce_scores(self.voxel_scores(probabilities, multi_label), self.aggregation, self.top_q, mask)

    def select_items_to_label(
        self,
        models: PytorchModel | list[PytorchModel],
        data_module: QueryView,
        items_to_label: int,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Scores the pool and returns the ``items_to_label`` best (or power-sampled) ids.

        With top-k ranking, the number of selected ids that the seeded tie-break chose over an unselected item of the
        same score (:func:`~alseg.strategies.selection.tied_picks`; e.g. all of them when every score is 0) is
        recorded in the round's ledger entry as ``strategy_notes.tied_picks``. Power sampling records nothing: its
        draw, not a tie-break, decides among equal scores.

        On a patch pool (``data_module.patch_pool()`` is not None) a box scores the mean of its voxel scores on
        the sliding-window score map of its volume, and boxes are picked under the pool's overlap rule
        (:mod:`alseg.strategies.patch_query`).
        """
        patches = data_module.patch_pool()
        if patches is not None:
            check_patch_reduction(self.aggregation, self.top_q, self.exclude_background, self.prefer_unique_cases)
            model = models[0] if isinstance(models, list) else models
            return query_scored_patches(self, model, data_module, patches, items_to_label, seed), None
        pool = score_pool(models, data_module, self.item_scores, self.mc_samples, seed)
        count = len(pool.ids)
        if self.power is None:
            ranked = top_k(pool.scores, pool.ids, count, seed=seed)
        else:
            ranked = power_sample(pool.scores, pool.ids, count, seed=seed, beta=self.power)
        if self.prefer_unique_cases is not None:
            ranked = limit_per_case(ranked, pool.case_ids, items_to_label, self.prefer_unique_cases)
        selected = ranked[:items_to_label]
        if self.power is None:
            data_module.record("tied_picks", tied_picks(pool.scores, pool.ids, selected))
        return selected, None
