"""Conformance kit: named checks that a model, data module or strategy honours the alseg contract, plus test doubles.

Each ``check_<kind>_<what>`` function checks one contract and raises :class:`ContractError`, whose message begins
with the check's name in brackets. ``data_module_checks()``, ``model_checks()`` and ``strategy_checks()`` list them
in order; ``check_data_module``, ``check_model`` and ``check_strategy`` run them all but those named in ``skip``;
:func:`parametrize_with_checks` makes one pytest test of every check of every target.
"""

from alseg.core.testing.contract import ContractError
from alseg.core.testing.data_module_checks import (
    check_data_module,
    check_data_module_classes,
    check_data_module_ground_truth,
    check_data_module_item_metadata,
    check_data_module_label_items,
    check_data_module_oracle_labels,
    check_data_module_pool_has_no_labels,
    check_data_module_pool_items,
    check_data_module_pool_loader_ids,
    check_data_module_pseudo_labels,
    check_data_module_rejects_unknown_ids,
    check_data_module_stable_ids,
    check_data_module_training_items,
    check_data_module_unique_ids,
    data_module_checks,
)
from alseg.core.testing.doubles import InMemoryDataModule, SeededRandomStrategy, TinySegmentationModel
from alseg.core.testing.model_checks import (
    check_model,
    check_model_eval_after_mc_dropout,
    check_model_fast_dev_run_fit,
    check_model_input_dimensionality,
    check_model_mc_samples_differ,
    check_model_predict_probabilities,
    model_checks,
)
from alseg.core.testing.parametrize import (
    DataModuleTarget,
    ModelTarget,
    StrategyTarget,
    Target,
    parametrize_with_checks,
)
from alseg.core.testing.strategy_checks import (
    check_strategy,
    check_strategy_leaves_model_and_data_unchanged,
    check_strategy_notes_are_json,
    check_strategy_pseudo_labels,
    check_strategy_returns_pool_ids,
    check_strategy_same_seed_same_ids,
    strategy_checks,
)

__all__ = [
    "ContractError",
    "DataModuleTarget",
    "InMemoryDataModule",
    "ModelTarget",
    "SeededRandomStrategy",
    "StrategyTarget",
    "Target",
    "TinySegmentationModel",
    "check_data_module",
    "check_data_module_classes",
    "check_data_module_ground_truth",
    "check_data_module_item_metadata",
    "check_data_module_label_items",
    "check_data_module_oracle_labels",
    "check_data_module_pool_has_no_labels",
    "check_data_module_pool_items",
    "check_data_module_pool_loader_ids",
    "check_data_module_pseudo_labels",
    "check_data_module_rejects_unknown_ids",
    "check_data_module_stable_ids",
    "check_data_module_training_items",
    "check_data_module_unique_ids",
    "check_model",
    "check_model_eval_after_mc_dropout",
    "check_model_fast_dev_run_fit",
    "check_model_input_dimensionality",
    "check_model_mc_samples_differ",
    "check_model_predict_probabilities",
    "check_strategy",
    "check_strategy_leaves_model_and_data_unchanged",
    "check_strategy_notes_are_json",
    "check_strategy_pseudo_labels",
    "check_strategy_returns_pool_ids",
    "check_strategy_same_seed_same_ids",
    "data_module_checks",
    "model_checks",
    "parametrize_with_checks",
    "strategy_checks",
]
