"""Named checks of a data module: unique stable ids, a pool without labels, an oracle that moves exactly the ids.

Every check takes a factory, a callable that returns a fresh, equally configured data module (same seed) on each
call, and sets up modules of its own, so that each runs alone and any can be skipped::

    check_data_module(lambda: MyDataModule(data_dir=...), skip={"check_data_module_pseudo_labels"})

The checks need a pool of at least 2 items.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from typing import Any

import torch

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.testing.contract import contract_check, raises, require, select

DataModuleFactory = Callable[[], ActiveLearningDataModule]
DataModuleCheck = Callable[[DataModuleFactory], None]


def _set_up(factory: DataModuleFactory) -> tuple[ActiveLearningDataModule, list[str]]:
    """Returns a new module after ``setup("fit")`` and its pool ids."""
    module = factory()
    module.setup("fit")
    pool_ids = module.unlabeled_ids()
    require(len(pool_ids) >= 2, f"the pool needs at least 2 items for the checks; has {len(pool_ids)}")
    return module, pool_ids


def _first_pool_batch(module: ActiveLearningDataModule) -> dict[str, Any]:
    return next(iter(module.unlabeled_dataloader()))


@contract_check
def check_data_module_unique_ids(factory: DataModuleFactory) -> None:
    """Checks that ``unlabeled_ids()`` lists every pool item once."""
    _, pool_ids = _set_up(factory)
    require(len(set(pool_ids)) == len(pool_ids), "unlabeled_ids() returns duplicates")


@contract_check
def check_data_module_stable_ids(factory: DataModuleFactory) -> None:
    """Checks that the pool's ids survive a second ``setup()`` and are those of an equally configured module."""
    module, pool_ids = _set_up(factory)
    module.setup("validate")
    require(module.unlabeled_ids() == pool_ids, "a second setup() changed the pool's ids")
    twin = factory()
    twin.setup("fit")
    require(twin.unlabeled_ids() == pool_ids, "two equal modules list different pool ids")


@contract_check
def check_data_module_pool_has_no_labels(factory: DataModuleFactory) -> None:
    """Checks that the items of the unlabelled pool carry no ``"label"``."""
    module, _ = _set_up(factory)
    require("label" not in _first_pool_batch(module), "items of the unlabelled pool carry a 'label'")


@contract_check
def check_data_module_pool_items(factory: DataModuleFactory) -> None:
    """Checks that pool items carry an ``"id"`` and a float32 ``"image"``."""
    module, _ = _set_up(factory)
    batch = _first_pool_batch(module)
    require("image" in batch and "id" in batch, f"pool items need 'image' and 'id'; have {sorted(batch)}")
    require(batch["image"].dtype == torch.float32, f"pool images are {batch['image'].dtype}, not torch.float32")


@contract_check
def check_data_module_pool_loader_ids(factory: DataModuleFactory) -> None:
    """Checks that the pool loader yields exactly the ids of ``unlabeled_ids()``."""
    module, pool_ids = _set_up(factory)
    require(set(_first_pool_batch(module)["id"]) <= set(pool_ids), "loader ids differ from unlabeled_ids()")
    loaded = [i for batch in module.unlabeled_dataloader() for i in batch["id"]]
    require(sorted(loaded) == sorted(pool_ids), "the pool loader and unlabeled_ids() disagree")


@contract_check
def check_data_module_training_items(factory: DataModuleFactory) -> None:
    """Checks that training items carry a ``"label"`` of their image's spatial shape (if there are any)."""
    module, _ = _set_up(factory)
    if module.training_set_size() == 0:
        return
    batch = next(iter(module.train_dataloader()))
    require("label" in batch, "training items carry no 'label'")
    require(
        batch["label"].shape[2:] == batch["image"].shape[2:],
        f"label and image differ in spatial shape: {tuple(batch['label'].shape)} and {tuple(batch['image'].shape)}",
    )


@contract_check
def check_data_module_classes(factory: DataModuleFactory) -> None:
    """Checks that ``num_classes()`` counts ``id_to_class_names()`` and that ``multi_label()`` is a bool."""
    module, _ = _set_up(factory)
    names = module.id_to_class_names()
    require(
        module.num_classes() == len(names),
        f"num_classes() is {module.num_classes()}, but id_to_class_names() names {len(names)} classes",
    )
    require(isinstance(module.multi_label(), bool), f"multi_label() must return a bool; got {module.multi_label()!r}")


@contract_check
def check_data_module_label_items(factory: DataModuleFactory) -> None:
    """Checks that ``label_items(ids)`` moves exactly those ids from the pool to the training set."""
    module, pool_ids = _set_up(factory)
    train_size, pool_size = module.training_set_size(), module.unlabeled_set_size()
    module.label_items(pool_ids[:1], None)
    require(module.training_set_size() == train_size + 1, "the training set did not grow by 1")
    require(module.unlabeled_set_size() == pool_size - 1, "the pool did not shrink by 1")
    require(pool_ids[0] not in module.unlabeled_ids(), f"{pool_ids[0]!r} is still in the pool")


@contract_check
def check_data_module_rejects_unknown_ids(factory: DataModuleFactory) -> None:
    """Checks that ``label_items`` rejects ids that are not in the pool: unknown and already labelled ones."""
    module, pool_ids = _set_up(factory)
    require(raises(lambda: module.label_items(["no-such-id"], None)), "unknown ids are accepted")
    module.label_items(pool_ids[:1], None)
    require(raises(lambda: module.label_items(pool_ids[:1], None)), "an already labelled id is accepted")


@contract_check
def check_data_module_pseudo_labels(factory: DataModuleFactory) -> None:
    """Checks that ``label_items`` accepts pseudo labels, counts them and takes their ids out of the pool."""
    module, pool_ids = _set_up(factory)
    target = pool_ids[0]
    image = module.unlabeled_dataloader().dataset[0]["image"]  # the item of pool_ids[0]
    channels = module.num_classes() if module.multi_label() else 1
    label = torch.zeros((channels, *image.shape[1:]), dtype=torch.long)
    before = module.training_set_num_pseudo_labels()
    module.label_items([], {target: label})
    require(module.training_set_num_pseudo_labels() == before + 1, "pseudo label not counted")
    require(target not in module.unlabeled_ids(), "pseudo-labelled id is still in the pool")


@contract_check
def check_data_module_item_metadata(factory: DataModuleFactory) -> None:
    """Checks that ``item_metadata(ids)`` gives the ``case_id`` and ``slice_index`` the pool items carry."""
    module, _ = _set_up(factory)
    batch = _first_pool_batch(module)
    ids = list(batch["id"])
    metadata = module.item_metadata(ids)
    require(len(metadata) == len(ids), f"item_metadata returned {len(metadata)} entries for {len(ids)} ids")
    for n, (item_id, entry) in enumerate(zip(ids, metadata, strict=True)):
        case = batch["case_id"][n] if "case_id" in batch else item_id
        require(entry.get("case_id") == case, f"item_metadata gives case {entry.get('case_id')!r} for {item_id!r}")
        if "slice_index" in batch:
            index = int(batch["slice_index"][n])
            require(entry.get("slice_index") == index, f"item_metadata gives another slice_index for {item_id!r}")
    require(raises(lambda: module.item_metadata(["no-such-id"])), "item_metadata accepts unknown ids")


@contract_check
def check_data_module_ground_truth(factory: DataModuleFactory) -> None:
    """Checks that ``ground_truth(ids)``, if known, fits pool images and equals a training item's own label."""
    module, pool_ids = _set_up(factory)
    pool_item = module.unlabeled_dataloader().dataset[0]
    truth = module.ground_truth([pool_item["id"]])
    if truth is None:
        return
    label = truth.get(pool_item["id"])
    require(label is not None, f"ground_truth did not answer for {pool_item['id']!r}")
    require(label.shape[1:] == pool_item["image"].shape[1:], "ground_truth gives a label of another spatial shape")
    require(module.unlabeled_ids() == pool_ids, "ground_truth changed the pool")
    labelled = module.labeled_dataloader().dataset
    for item in (labelled[i] for i in range(min(8, len(labelled)))):
        answer = module.ground_truth([item["id"]])[item["id"]]
        require(torch.equal(answer, item["label"]), f"ground_truth of {item['id']!r} differs from its training label")


@contract_check
def check_data_module_oracle_labels(factory: DataModuleFactory) -> None:
    """Checks that ``label_items(ids, labels=...)``, if it takes labels, trains on them as oracle labels."""
    module, pool_ids = _set_up(factory)
    if "labels" not in inspect.signature(module.label_items).parameters:
        return  # the original label_items(ids, pseudo_labels): only the simulated oracle labels it (Oracle.check)
    target = pool_ids[0]
    image = module.unlabeled_dataloader().dataset[0]["image"]  # the item of pool_ids[0]
    channels = module.num_classes() if module.multi_label() else 1
    supplied = torch.ones((channels, *image.shape[1:]), dtype=torch.uint8 if module.multi_label() else torch.long)
    require(
        raises(lambda: module.label_items([target], None, labels={pool_ids[1]: supplied})),
        "labels of ids not being labelled are accepted",
    )
    pseudo, size = module.training_set_num_pseudo_labels(), module.training_set_size()
    module.label_items([target], None, labels={target: supplied})
    require(module.training_set_size() == size + 1 and target not in module.unlabeled_ids(), "the id was not moved")
    require(module.training_set_num_pseudo_labels() == pseudo, "an oracle label was counted as a pseudo label")
    labelled = module.labeled_dataloader().dataset
    item = next(labelled[i] for i in range(len(labelled)) if labelled[i]["id"] == target)
    require(
        torch.equal(torch.as_tensor(item["label"]).long(), supplied.long()),
        "the training item does not carry the supplied label (label_items ignored labels=)",
    )
    require(not item.get("pseudo_labeled", False), "an item labelled by the oracle is flagged pseudo_labeled")


def data_module_checks(pseudo_labels: bool = True) -> tuple[DataModuleCheck, ...]:
    """Returns the data-module checks in the order :func:`check_data_module` runs them.

    Args:
        pseudo_labels: Include :func:`check_data_module_pseudo_labels`.
    """
    checks = (
        check_data_module_unique_ids,
        check_data_module_stable_ids,
        check_data_module_pool_has_no_labels,
        check_data_module_pool_items,
        check_data_module_pool_loader_ids,
        check_data_module_training_items,
        check_data_module_classes,
        check_data_module_label_items,
        check_data_module_rejects_unknown_ids,
        check_data_module_item_metadata,
        check_data_module_ground_truth,
        check_data_module_oracle_labels,
    )
    return (*checks, check_data_module_pseudo_labels) if pseudo_labels else checks


def check_data_module(factory: DataModuleFactory, pseudo_labels: bool = True, *, skip: Collection[str] = ()) -> None:
    """Runs the data-module checks (:func:`data_module_checks`) but those named in ``skip``.

    Args:
        factory: Returns a fresh, equally configured data module (same seed) on each call.
        pseudo_labels: Also check that ``label_items`` accepts pseudo labels and counts them.
        skip: Names of checks not to run.

    Raises:
        ContractError: A check fails; the message begins with its name.
        ValueError: ``skip`` names a check that is not among them.
    """
    for check in select(data_module_checks(pseudo_labels), skip):
        check(factory)
