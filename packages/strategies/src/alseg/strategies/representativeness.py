"""Representativeness sampling, alone or combined with uncertainty ("Less Is More", Burmeister et al., 2022).

Each pick of a round goes to the pool item that the labelled set (and the items already picked this round) represents
least: the one farthest from them in feature space (``distance``), from the least labelled cluster (``clustering``), or
from the least labelled case (``cases``, uniform sampling of slices over the volumes). The combined strategy adds an
uncertainty term, computed once per round, to the representativeness, recomputed after every pick.
"""

from typing import Any

import torch
from torch import Tensor

from alseg.core.errors import ConfigError, PluginError
from alseg.core.inference import current_placement
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.strategy import QueryStrategy
from alseg.strategies.patch_query import refuse_patch_pool
from alseg.strategies.pool_scores import PoolScores, score_pool
from alseg.strategies.representativeness_features import (
    CLUSTERINGS,
    FEATURES,
    QueryItems,
    cluster,
    gather_items,
    project,
)
from alseg.strategies.representativeness_scores import (
    DISTANCE_AGGREGATIONS,
    METRICS,
    DistanceScores,
    GroupScores,
    ScoreSource,
    check_choice,
    greedy_select,
)
from alseg.strategies.score_based import score_based
from alseg.strategies.selection import check_k, tie_break_order
from alseg.strategies.uncertainty import UncertaintyStrategy

METHODS = ("cases", "clustering", "distance")


class RepresentativenessStrategy(QueryStrategy):
    """Greedy representativeness sampling on the features of labelled ∪ pool items; λ = 0 of the combined strategy.

    Ties (e.g. every score 0 in the first pick without labelled items) are broken by a permutation of the pool's ids in
    ascending order seeded by the round's seed. Memory is ``O(N·D + N)``: no pool × pool matrix.

    Args:
        method: ``distance`` (the item farthest from labelled ∪ picked items), ``clustering`` (the item whose cluster
            has the largest unlabelled fraction) or ``cases`` (the item whose case has the lowest labelled fraction;
            needs no features).
        features: ``model`` (``embedding_step``) or ``image`` (the image average-pooled to ``image_size`` per spatial
            axis, flattened).
        image_size: Size per spatial axis of ``image`` features, ``>= 1``.
        feature_dimensionality: Components of a PCA fitted on (and applied to) the features of labelled ∪ pool items;
            None for none.
        metric: ``euclidean`` or ``cosine`` (``distance``).
        distance_aggregation: ``mean`` (average distance to labelled ∪ picked items) or ``min`` (distance to the
            nearest) (``distance``).
        clustering: ``kmeans`` (seeded) or ``mean_shift`` (``clustering``).
        clusters: Number of k-means clusters, ``>= 1``.
        bandwidth: Mean-shift bandwidth ``> 0``; None estimates it from the features.
        chunk_size: Rows per distance block, ``>= 1``.
        device: Where to run the selection; by default where pool inference runs.
    """

    #: The weight λ of the uncertainty term, and the score-based strategy that gives it (none here).
    uncertainty_weight: float = 0.0
    _uncertainty: UncertaintyStrategy | None = None

    def __init__(
        self,
        method: str = "distance",
        features: str = "model",
        image_size: int = 16,
        feature_dimensionality: int | None = None,
        metric: str = "euclidean",
        distance_aggregation: str = "mean",
        clustering: str = "kmeans",
        clusters: int = 10,
        bandwidth: float | None = None,
        chunk_size: int = 4096,
        device: str | None = None,
    ) -> None:
        for option, value, choices in (
            ("method", method, METHODS),
            ("features", features, FEATURES),
            ("metric", metric, METRICS),
            ("distance_aggregation", distance_aggregation, DISTANCE_AGGREGATIONS),
            ("clustering", clustering, CLUSTERINGS),
        ):
            check_choice(option, value, choices)
        for option, value in (("image_size", image_size), ("clusters", clusters), ("chunk_size", chunk_size)):
            _check_positive(option, value)
        if feature_dimensionality is not None:
            _check_positive("feature_dimensionality", feature_dimensionality)
        if bandwidth is not None and not bandwidth > 0:
            raise ConfigError(f"The 'bandwidth' option of the strategy must be > 0 (or null). Got {bandwidth!r}.")
        self.method, self.features, self.image_size = method, features, image_size
        self.feature_dimensionality, self.metric = feature_dimensionality, metric
        self.distance_aggregation, self.clustering = distance_aggregation, clustering
        self.clusters, self.bandwidth, self.chunk_size, self.device = clusters, bandwidth, chunk_size, device

    def select_items_to_label(
        self,
        models: PytorchModel | list[PytorchModel],
        data_module: QueryView,
        items_to_label: int,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Returns the ``items_to_label`` pool ids picked one by one by the (combined) score.

        Raises:
            ConfigError: The pool is a patch pool: the greedy picks do not keep its ``max_overlap`` rule.
        """
        check_k(items_to_label)
        refuse_patch_pool(data_module, type(self).__name__)
        model = models[0] if isinstance(models, list) else models
        device = torch.device(self.device) if self.device else current_placement(model).device
        items, source = None, None
        if self.uncertainty_weight < 1:
            features = None if self.method == "cases" else self.features
            items = gather_items(model, data_module, features, self.image_size, type(self).__name__)
            source = self._source(items, data_module, seed, device)
        uncertain = self._uncertain(model, data_module, seed)
        pool_ids = items.pool_ids if items is not None else uncertain.ids if uncertain is not None else []
        if uncertain is not None and uncertain.ids != pool_ids:
            raise PluginError("The pool loader yielded other items for the uncertainty than for the features.")
        uncertainty = uncertain.scores.to(device) if uncertain is not None else None
        tie_rank = torch.argsort(tie_break_order(len(pool_ids), seed)).to(device)
        picks = greedy_select(items_to_label, tie_rank, uncertainty, source, self.uncertainty_weight)
        return [pool_ids[i] for i in picks], None

    def _uncertain(self, model: PytorchModel, data_module: QueryView, seed: int) -> PoolScores | None:
        """The uncertainty of the pool items (one model pass over the pool), or None without an uncertainty term."""
        scorer = self._uncertainty
        if scorer is None or self.uncertainty_weight == 0:
            return None
        return score_pool(model, data_module, scorer.item_scores, scorer.mc_samples, seed)

    def _source(self, items: QueryItems, data_module: QueryView, seed: int, device: torch.device) -> ScoreSource:
        """The representativeness of the rows of ``items``, on ``device``."""
        labelled = items.labelled.to(device)
        if self.method == "cases":
            return GroupScores(_indices(items.case_ids).to(device), labelled)
        features = items.features
        assert features is not None  # streamed for every method but cases
        if self.feature_dimensionality is not None:
            features = project(features, self.feature_dimensionality, seed)
        if self.method == "clustering":
            groups = cluster(features, self.clustering, self.clusters, self.bandwidth, seed)
            data_module.record("clusters", int(groups.max()) + 1 if groups.numel() else 0)
            return GroupScores(groups.to(device), labelled)
        return DistanceScores(features.to(device), labelled, self.metric, self.distance_aggregation, self.chunk_size)


class UncertaintyRepresentativenessStrategy(RepresentativenessStrategy):
    """``λ·minmax(uncertainty) + (1 − λ)·minmax(representativeness)``, greedily, higher = label first.

    The uncertainty is the per-item score of a score-based strategy (mean entropy or mean BALD over the item's
    voxels), computed once per round; the representativeness is recomputed after every pick. Both terms are min-max
    scaled over the pool items still to choose from before every pick (a constant term scales to 0). λ = 1 reads no
    features and ranks by uncertainty alone (as ``entropy`` does, with the same tie-break); λ = 0 is
    :class:`RepresentativenessStrategy` (no model pass for the uncertainty).

    Args:
        uncertainty_weight: λ in [0, 1].
        uncertainty: ``entropy`` or ``bald``.
        mc_samples: MC-dropout samples of ``bald``, ``>= 2`` (not used by ``entropy``).
        **kwargs: Options of :class:`RepresentativenessStrategy` (method, features, metric, …).
    """

    def __init__(
        self, uncertainty_weight: float = 0.5, uncertainty: str = "entropy", mc_samples: int = 10, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= uncertainty_weight <= 1.0:
            raise ConfigError(
                "The 'uncertainty_weight' option of the strategy must be a number in [0, 1]. "
                f"Got {uncertainty_weight!r}."
            )
        self._uncertainty = score_based(uncertainty, mc_samples)
        self.uncertainty_weight = uncertainty_weight
        self.uncertainty, self.mc_samples = uncertainty, mc_samples


def _indices(names: list[str]) -> Tensor:
    """Indices ``(N,)`` of the names among their sorted distinct values."""
    index = {name: i for i, name in enumerate(sorted(set(names)))}
    return torch.tensor([index[name] for name in names], dtype=torch.long)


def _check_positive(option: str, value: int) -> None:
    if not (isinstance(value, int) and value >= 1):
        raise ConfigError(f"The '{option}' option of the strategy must be an integer >= 1. Got {value!r}.")
