"""Named contract checks for third-party plugins, in the spirit of scikit-learn's ``check_estimator``.

Each ``check_*`` function runs a list of small named checks and raises :class:`AssertionError` whose message starts
with the failing check's name. Factories (callables returning a fresh object) are used where a check needs
independent instances. Usage in a plugin's tests::

    from alseg.core.testing import check_data_module, check_model, check_strategy

    def test_my_data_module():
        check_data_module(lambda: MyDataModule(data_dir=...))
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch import Trainer
from torch.nn.modules.dropout import _DropoutNd

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import PluginError
from alseg.core.mc_dropout import has_dropout, mc_dropout
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.strategy import QueryStrategy


class ContractError(AssertionError):
    """A plugin breaks the alseg contract; the message names the check."""


def _require(condition: bool, check: str, message: str) -> None:
    if not condition:
        raise ContractError(f"[{check}] {message}")


def check_data_module(factory: Callable[[], ActiveLearningDataModule], pseudo_labels: bool = True) -> None:
    """Checks a data module: unique stable ids, a pool without labels, and an oracle that moves exactly the ids.

    Args:
        factory: Returns a fresh, equally configured data module (same seed) on each call.
        pseudo_labels: Also check that ``label_items`` accepts pseudo labels and counts them.
    """
    module = factory()
    module.setup("fit")
    pool_ids = module.unlabeled_ids()
    _require(
        len(pool_ids) >= 2,
        "pool_size",
        f"the pool needs at least 2 items for the checks; has {len(pool_ids)}",
    )
    _require(len(set(pool_ids)) == len(pool_ids), "unique_ids", "unlabeled_ids() returns duplicates")
    module.setup("validate")
    _require(module.unlabeled_ids() == pool_ids, "stable_ids", "a second setup() changed the pool's ids")
    twin = factory()
    twin.setup("fit")
    _require(twin.unlabeled_ids() == pool_ids, "stable_ids", "two equal modules list different pool ids")
    _check_items(module, pool_ids)
    _check_label_items(module, pool_ids, pseudo_labels)


def _check_items(module: ActiveLearningDataModule, pool_ids: list[str]) -> None:
    pool_batch = next(iter(module.unlabeled_dataloader()))
    _require(
        "label" not in pool_batch,
        "pool_has_no_label",
        "items of the unlabelled pool carry a 'label'",
    )
    _require(
        "image" in pool_batch and "id" in pool_batch,
        "item_keys",
        "pool items need 'image' and 'id'",
    )
    _require(
        pool_batch["image"].dtype == torch.float32,
        "image_dtype",
        f"image is {pool_batch['image'].dtype}",
    )
    _require(
        all(i in set(pool_ids) for i in pool_batch["id"]),
        "pool_ids",
        "loader ids differ from unlabeled_ids()",
    )
    loaded = [i for batch in module.unlabeled_dataloader() for i in batch["id"]]
    _require(
        sorted(loaded) == sorted(pool_ids),
        "pool_ids",
        "the pool loader and unlabeled_ids() disagree",
    )
    if module.training_set_size() > 0:
        train_batch = next(iter(module.train_dataloader()))
        _require("label" in train_batch, "training_labels", "training items carry no 'label'")
        spatial = train_batch["image"].shape[2:]
        _require(
            train_batch["label"].shape[2:] == spatial,
            "label_shape",
            "label and image differ in spatial shape",
        )
    _require(
        module.num_classes() == len(module.id_to_class_names()),
        "num_classes",
        "num_classes() mismatch",
    )
    _require(isinstance(module.multi_label(), bool), "multi_label", "multi_label() must return a bool")


def _check_label_items(module: ActiveLearningDataModule, pool_ids: list[str], pseudo_labels: bool) -> None:
    train_size, pool_size = module.training_set_size(), module.unlabeled_set_size()
    chosen = pool_ids[:1]
    module.label_items(chosen, None)
    _require(
        module.training_set_size() == train_size + 1,
        "label_items",
        "the training set did not grow by 1",
    )
    _require(module.unlabeled_set_size() == pool_size - 1, "label_items", "the pool did not shrink by 1")
    _require(
        chosen[0] not in module.unlabeled_ids(),
        "label_items",
        f"{chosen[0]!r} is still in the pool",
    )
    _require(
        _raises(lambda: module.label_items(["no-such-id"], None)),
        "unknown_id",
        "unknown ids are accepted",
    )
    _require(
        _raises(lambda: module.label_items(chosen, None)),
        "unknown_id",
        "an already labelled id is accepted",
    )
    if pseudo_labels:
        target = pool_ids[1]
        item = module.unlabeled_dataloader().dataset[module.unlabeled_ids().index(target)]
        channels = module.num_classes() if module.multi_label() else 1
        label = torch.zeros((channels, *item["image"].shape[1:]), dtype=torch.long)
        before = module.training_set_num_pseudo_labels()
        module.label_items([], {target: label})
        _require(
            module.training_set_num_pseudo_labels() == before + 1,
            "pseudo_labels",
            "pseudo label not counted",
        )
        _require(
            target not in module.unlabeled_ids(),
            "pseudo_labels",
            "pseudo-labelled id is still in the pool",
        )


def check_model(model_factory: Callable[[], PytorchModel], data_module: ActiveLearningDataModule) -> None:
    """Checks a model: probabilities of the right shape and range, MC-dropout variability, and a fast fit.

    Args:
        model_factory: Returns a fresh model.
        data_module: A small data module the model can train on.
    """
    model = model_factory()
    _require(model.input_dimensionality() in (2, 3), "input_dimensionality", "must be 2 or 3")
    data_module.setup("fit")
    model.bind_data(data_module)
    model.eval()
    batch = next(iter(data_module.unlabeled_dataloader()))
    with torch.inference_mode():
        probs = model.predict_step(batch, 0)
    expected = (batch["image"].shape[0], data_module.num_classes(), *batch["image"].shape[2:])
    _require(
        tuple(probs.shape) == expected,
        "predict_shape",
        f"got {tuple(probs.shape)}, expected {expected}",
    )
    _require(
        probs.dtype == torch.float32,
        "predict_dtype",
        f"probabilities are {probs.dtype}, not float32",
    )
    _require(bool(((probs >= 0) & (probs <= 1)).all()), "predict_range", "probabilities outside [0, 1]")
    if not data_module.multi_label():
        sums = probs.sum(dim=1)
        _require(
            torch.allclose(sums, torch.ones_like(sums), atol=1e-4),
            "predict_softmax",
            "classes do not sum to 1",
        )
    if has_dropout(model):
        with torch.inference_mode(), mc_dropout(model):
            first, second = model.predict_step(batch, 0), model.predict_step(batch, 0)
        _require(not torch.equal(first, second), "mc_dropout", "MC-dropout samples are identical")
        _require(
            not any(m.training for m in model.modules() if not isinstance(m, _DropoutNd)),
            "mc_dropout",
            "a non-dropout layer was left in training mode",
        )
    trainer = Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.fit(model_factory(), datamodule=data_module)


def check_strategy(
    strategy_factory: Callable[[], QueryStrategy],
    model: PytorchModel,
    data_module: ActiveLearningDataModule,
    items_to_label: int = 3,
) -> None:
    """Checks a strategy: at most k unique pool ids, no mutation of model or data, same seed → same ids.

    The strategy is called as the pipeline calls it, with a :class:`~alseg.core.query_view.QueryView` of
    ``data_module``: using anything beyond the query surface fails the ``query_surface`` check, and the values it
    records for the ledger must be JSON-serialisable (``notes_json``).

    Args:
        strategy_factory: Returns a fresh strategy.
        model: A model bound to ``data_module`` (e.g. after ``model.bind_data(data_module)``).
        data_module: The data module whose pool is queried.
        items_to_label: The number of items asked for.
    """
    data_module.setup("fit")
    pool_ids = data_module.unlabeled_ids()
    state = copy.deepcopy(model.state_dict())
    modes = [m.training for m in model.modules()]
    strategy = strategy_factory()
    view = _KitView(data_module, type(strategy).__name__)
    first, _ = strategy.select_items_to_label(model, view, items_to_label, seed=7, round=1)
    _require(
        isinstance(first, list),
        "returns_list",
        f"returned {type(first).__name__}, not a list of ids",
    )
    _require(
        len(first) <= items_to_label,
        "at_most_k",
        f"returned {len(first)} ids for k={items_to_label}",
    )
    _require(len(set(first)) == len(first), "unique", f"returned duplicates: {first}")
    _require(
        set(first) <= set(pool_ids),
        "from_pool",
        f"returned ids not in the pool: {set(first) - set(pool_ids)}",
    )
    _require(data_module.unlabeled_ids() == pool_ids, "no_data_mutation", "the strategy changed the pool")
    _require([m.training for m in model.modules()] == modes, "no_model_mutation", "module modes changed")
    after = model.state_dict()
    unchanged = all(torch.equal(state[k], after[k]) for k in state)
    _require(unchanged, "no_model_mutation", "the strategy changed the model's weights or buffers")
    _require(
        not _raises(lambda: json.dumps(view.notes)),
        "notes_json",
        f"recorded values that are not JSON-serialisable: {view.notes!r}",
    )
    again = _KitView(data_module, type(strategy).__name__)
    second, _ = strategy_factory().select_items_to_label(model, again, items_to_label, seed=7, round=1)
    _require(second == first, "deterministic", f"same seed gave {first} then {second}")


class _KitView(QueryView):
    """The pipeline's view of a data module; a strategy reaching beyond it fails the ``query_surface`` check."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except PluginError as error:
            raise ContractError(f"[query_surface] {error}") from None


def _raises(action: Callable[[], Any]) -> bool:
    try:
        action()
    except Exception:
        return True
    return False
