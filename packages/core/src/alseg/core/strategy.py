"""The query-strategy abstraction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from alseg.core.init_args import RecordsInitArgs

if TYPE_CHECKING:
    from alseg.core.model import PytorchModel
    from alseg.core.query_view import QueryView


class QueryStrategy(RecordsInitArgs, ABC):
    """Base class of query strategies: pick the pool items the oracle labels next.

    A strategy takes its hyper-parameters in its constructor (typed, with defaults, so that it can be built from a
    configuration or a short name) and keeps no state between rounds: everything random derives from the ``seed``
    the pipeline passes, so that a resumed run repeats the selections of an uninterrupted one.

    Optional hook for heatmaps of queried items (:mod:`alseg.core.heatmaps`): a strategy whose choice rests on a
    per-voxel score defines ``voxel_scores(probabilities, multi_label) -> Tensor[B, *S]`` (from ``[B, C, *S]``, or
    ``[K, B, C, *S]`` if it sets ``mc_samples = K``), as every score-based built-in does; the heatmaps draw that map.
    """

    @abstractmethod
    def select_items_to_label(
        self,
        models: PytorchModel | list[PytorchModel],
        data_module: QueryView,
        items_to_label: int,
        *,
        seed: int = 0,
        round: int = 1,
        **kwargs: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Selects the ids of the pool items to label next.

        The pipeline calls ``select_items_to_label(models, view, items_to_label, seed=..., round=...)``, so an
        override may declare ``seed`` and ``round`` or take them through ``**kwargs`` (the original framework's
        signature ``select_items_to_label(models, data_module, items_to_label, **kwargs)``).

        Args:
            models: The pipeline's model (a list is reserved for ensemble-aware strategies).
            data_module: The strategy's :class:`~alseg.core.query_view.QueryView` of the data module (the name is
                kept for compatibility; it is not the data module itself). It offers the query surface only:
                ``unlabeled_dataloader()`` (the pool in a fixed order, items without labels), ``labeled_dataloader()``,
                ``unlabeled_ids()``, ``labeled_ids()``, ``unlabeled_set_size()``, ``training_set_size()``,
                ``item_metadata(ids)``, ``id_to_class_names()``, ``multi_label()``, ``num_classes()``,
                ``data_channels()``, ``patch_pool()`` and ``pool_case_dataloader()`` (patch pools: boxes and whole pool
                volumes, no label), ``pool_batch_size``, ``record(key, value)`` (adds a JSON-serialisable value to
                the round's ledger entry under ``strategy_notes``) and, for
                oracle-informed baselines only, ``ground_truth_foreground(ids)`` (recorded in the ledger as
                ``ground_truth_revealed``). Any other attribute raises :class:`~alseg.core.errors.PluginError`.
                Tests that call a strategy directly wrap the module: ``QueryView(data_module)``.
            items_to_label: The number of items wanted; the pipeline accepts at most this many.
            seed: Derived from the run's seed and the round: the only source of randomness a strategy may use.
            round: The query round, starting at 1.
            **kwargs: Reserved for further keyword arguments of later versions; ignore what you do not use.

        Returns:
            The selected ids (unique, from the pool, at most ``items_to_label``) and optional pseudo labels keyed by
            id for further pool items, or None. A pseudo label is a label shaped like a training item's, or a
            :class:`~alseg.core.derived_labels.DerivedLabels` request resolved with the oracle's labels of the
            selection (e.g. slices interpolated between two selected slices).
        """
