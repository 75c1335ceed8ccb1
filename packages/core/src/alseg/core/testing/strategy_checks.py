"""Named checks of a query strategy: at most k unique pool ids, no mutation of model or data, same seed → same ids.

Every check takes a strategy factory (a callable returning a fresh strategy), a model bound to the data module
(``model.bind_data(data_module)``), the data module and the number of items asked for, and calls the strategy as the
pipeline does: with ``seed=7, round=1`` and a :class:`~alseg.core.query_view.QueryView` of the data module. Reaching
beyond the view's query surface fails whichever check runs the strategy. Any check can be skipped::

    check_strategy(MyStrategy, model, data, skip={"check_strategy_notes_are_json"})
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Collection, Iterator
from typing import Any

import torch

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.derived_labels import DerivedLabels, resolve_pseudo_labels
from alseg.core.errors import PluginError
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.selection_check import check_selection
from alseg.core.strategy import QueryStrategy
from alseg.core.testing.contract import Violation, contract_check, raises, require, select

StrategyFactory = Callable[[], QueryStrategy]
StrategyCheck = Callable[[StrategyFactory, PytorchModel, ActiveLearningDataModule, int], None]


class _KitView(QueryView):
    """The pipeline's view of a data module; reaching beyond its query surface is a :class:`Violation`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except PluginError as error:
            raise Violation(str(error)) from None


def _answer(
    strategy_factory: StrategyFactory, model: PytorchModel, data_module: ActiveLearningDataModule, items_to_label: int
) -> tuple[Any, _KitView]:
    """Returns a fresh strategy's answer with seed 7 in round 1, and the view it was given."""
    strategy = strategy_factory()
    view = _KitView(data_module, type(strategy).__name__)
    return strategy.select_items_to_label(model, view, items_to_label, seed=7, round=1), view


def _select(
    strategy_factory: StrategyFactory, model: PytorchModel, data_module: ActiveLearningDataModule, items_to_label: int
) -> tuple[list[str], _KitView]:
    """Returns the ids a fresh strategy selects with seed 7 in round 1, and the view it was given."""
    (ids, _), view = _answer(strategy_factory, model, data_module, items_to_label)
    return ids, view


@contract_check
def check_strategy_leaves_model_and_data_unchanged(
    strategy_factory: StrategyFactory,
    model: PytorchModel,
    data_module: ActiveLearningDataModule,
    items_to_label: int = 3,
) -> None:
    """Checks that selecting changes neither the pool nor the model's weights, buffers and training modes."""
    data_module.setup("fit")
    pool_ids = data_module.unlabeled_ids()
    state = copy.deepcopy(model.state_dict())
    modes = [m.training for m in model.modules()]
    _select(strategy_factory, model, data_module, items_to_label)
    require(data_module.unlabeled_ids() == pool_ids, "the strategy changed the pool")
    require([m.training for m in model.modules()] == modes, "the strategy changed the training mode of modules")
    after = model.state_dict()
    require(all(torch.equal(state[k], after[k]) for k in state), "the strategy changed the model's weights or buffers")


@contract_check
def check_strategy_returns_pool_ids(
    strategy_factory: StrategyFactory,
    model: PytorchModel,
    data_module: ActiveLearningDataModule,
    items_to_label: int = 3,
) -> None:
    """Checks that the strategy returns a list of at most ``items_to_label`` unique ids, all from the pool."""
    data_module.setup("fit")
    pool_ids = set(data_module.unlabeled_ids())
    ids, _ = _select(strategy_factory, model, data_module, items_to_label)
    require(isinstance(ids, list), f"returned {type(ids).__name__}, not a list of ids")
    require(len(ids) <= items_to_label, f"returned {len(ids)} ids for items_to_label={items_to_label}")
    require(len(set(ids)) == len(ids), f"returned duplicates: {ids}")
    require(set(ids) <= pool_ids, f"returned ids not in the pool: {sorted(set(ids) - pool_ids)}")


@contract_check
def check_strategy_notes_are_json(
    strategy_factory: StrategyFactory,
    model: PytorchModel,
    data_module: ActiveLearningDataModule,
    items_to_label: int = 3,
) -> None:
    """Checks that the values the strategy records for the ledger (``data_module.record``) are JSON-serialisable."""
    data_module.setup("fit")
    _, view = _select(strategy_factory, model, data_module, items_to_label)
    require(
        not raises(lambda: json.dumps(view.notes)), f"recorded values that are not JSON-serialisable: {view.notes!r}"
    )


@contract_check
def check_strategy_same_seed_same_ids(
    strategy_factory: StrategyFactory,
    model: PytorchModel,
    data_module: ActiveLearningDataModule,
    items_to_label: int = 3,
) -> None:
    """Checks that two fresh strategies given the same seed select the same ids."""
    data_module.setup("fit")
    first, _ = _select(strategy_factory, model, data_module, items_to_label)
    second, _ = _select(strategy_factory, model, data_module, items_to_label)
    require(second == first, f"the same seed gave {first}, then {second}")


@contract_check
def check_strategy_pseudo_labels(
    strategy_factory: StrategyFactory,
    model: PytorchModel,
    data_module: ActiveLearningDataModule,
    items_to_label: int = 3,
) -> None:
    """Checks that pseudo labels, if any, pass the pipeline's checks and resolve to labels of the items' shape."""
    data_module.setup("fit")
    pool_ids = data_module.unlabeled_ids()
    answer, view = _answer(strategy_factory, model, data_module, items_to_label)
    if not (isinstance(answer, tuple) and len(answer) == 2 and answer[1]):
        return  # no pseudo labels (a malformed answer fails check_strategy_returns_pool_ids)
    try:
        _, pseudo_labels = check_selection(view._strategy_name, answer, pool_ids, items_to_label)
        if any(isinstance(value, DerivedLabels) for value in pseudo_labels.values()):
            require(data_module.ground_truth([]) is not None, "derived pseudo labels need ground_truth(ids)")
            pseudo_labels = resolve_pseudo_labels(pseudo_labels, data_module.ground_truth)
    except PluginError as error:
        raise Violation(str(error)) from None
    channels = data_module.num_classes() if data_module.multi_label() else 1
    images = {i: item["image"] for i, item in _pool_items(data_module, set(pseudo_labels))}
    for item_id, label in pseudo_labels.items():
        expected = (channels, *images[item_id].shape[1:])
        shape = tuple(torch.as_tensor(label).shape)
        require(shape == expected, f"the pseudo label of {item_id!r} has shape {shape}, expected {expected}")


def _pool_items(data_module: ActiveLearningDataModule, ids: set[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    dataset = data_module.unlabeled_dataloader().dataset
    for index in range(len(dataset)):  # type: ignore[arg-type]
        item = dataset[index]
        if item["id"] in ids:
            yield item["id"], item


def strategy_checks() -> tuple[StrategyCheck, ...]:
    """Returns the strategy checks in the order :func:`check_strategy` runs them.

    The first checks that the strategy changes nothing, so that the later ones can share the model and data module.
    """
    return (
        check_strategy_leaves_model_and_data_unchanged,
        check_strategy_returns_pool_ids,
        check_strategy_notes_are_json,
        check_strategy_same_seed_same_ids,
        check_strategy_pseudo_labels,
    )


def check_strategy(
    strategy_factory: StrategyFactory,
    model: PytorchModel,
    data_module: ActiveLearningDataModule,
    items_to_label: int = 3,
    *,
    skip: Collection[str] = (),
) -> None:
    """Runs the strategy checks (:func:`strategy_checks`) but those named in ``skip``.

    Args:
        strategy_factory: Returns a fresh strategy.
        model: A model bound to ``data_module`` (e.g. after ``model.bind_data(data_module)``).
        data_module: The data module whose pool is queried.
        items_to_label: The number of items asked for.
        skip: Names of checks not to run.

    Raises:
        ContractError: A check fails; the message begins with its name.
        ValueError: ``skip`` names a check that is not among them.
    """
    for check in select(strategy_checks(), skip):
        check(strategy_factory, model, data_module, items_to_label)
