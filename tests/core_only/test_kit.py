"""The conformance kit passes the doubles and catches deliberately broken plugins."""

import pytest
import torch

from alseg.core.testing import (
    ContractError,
    InMemoryDataModule,
    SeededRandomStrategy,
    TinySegmentationModel,
    check_data_module,
    check_model,
    check_strategy,
)


@pytest.mark.parametrize("multi_label", [False, True])
def test_doubles_pass(multi_label):
    check_data_module(lambda: InMemoryDataModule(multi_label=multi_label))
    data = InMemoryDataModule(multi_label=multi_label)
    check_model(TinySegmentationModel, data)
    model = TinySegmentationModel()
    model.bind_data(data)
    check_strategy(SeededRandomStrategy, model, data)


class LeakyPool(InMemoryDataModule):
    def item(self, item_id, with_label):
        return super().item(item_id, with_label=True)


class LazyOracle(InMemoryDataModule):
    def label_items(self, ids, pseudo_labels=None):
        self.training_ids.extend(ids)  # forgets to remove them from the pool


class Forgiving(InMemoryDataModule):
    def label_items(self, ids, pseudo_labels=None):
        super().label_items([i for i in ids if i in self.pool_ids], pseudo_labels)


class UncountedPseudo(InMemoryDataModule):
    def training_set_num_pseudo_labels(self):
        return 0


class UnstableIds(InMemoryDataModule):
    made = 0

    def __init__(self):
        UnstableIds.made += 1
        super().__init__(seed=UnstableIds.made)


@pytest.mark.parametrize(
    ("module", "check"),
    [
        (LeakyPool, "pool_has_no_label"),
        (LazyOracle, "label_items"),
        (Forgiving, "unknown_id"),
        (UncountedPseudo, "pseudo_labels"),
        (UnstableIds, "stable_ids"),
    ],
)
def test_broken_data_modules_are_caught(module, check):
    with pytest.raises(ContractError, match=rf"\[{check}\]"):
        check_data_module(module)


class Unnormalised(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return torch.sigmoid(self(batch["image"]))  # single-label data, but no softmax


class HalfPrecision(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return super().predict_step(batch, batch_idx).half()


class WrongShape(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return super().predict_step(batch, batch_idx)[:, :1]


@pytest.mark.parametrize(
    ("model", "check"),
    [(Unnormalised, "predict_softmax"), (HalfPrecision, "predict_dtype"), (WrongShape, "predict_shape")],
)
def test_broken_models_are_caught(model, check):
    with pytest.raises(ContractError, match=rf"\[{check}\]"):
        check_model(model, InMemoryDataModule())


class Duplicates(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        ids, _ = super().select_items_to_label(models, data_module, items_to_label, **kwargs)
        return ids[:1] * 2, None


class Greedy(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        return data_module.unlabeled_ids()[: items_to_label + 1], None


class Unseeded(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        kwargs["seed"] = int(torch.randint(0, 2**31, (1,)))
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


class Meddling(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        models.train()
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


class Outsider(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        return ["not-in-pool"], None


@pytest.mark.parametrize(
    ("strategy", "check"),
    [
        (Duplicates, "unique"),
        (Greedy, "at_most_k"),
        (Unseeded, "deterministic"),
        (Meddling, "no_model_mutation"),
        (Outsider, "from_pool"),
    ],
)
def test_broken_strategies_are_caught(strategy, check):
    data = InMemoryDataModule()
    model = TinySegmentationModel()
    model.bind_data(data)
    model.eval()
    with pytest.raises(ContractError, match=rf"\[{check}\]"):
        check_strategy(strategy, model, data)


class FrozenDropout(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        with torch.random.fork_rng():
            torch.manual_seed(0)  # every sample draws the same dropout mask
            return super().predict_step(batch, batch_idx)


def test_model_whose_mc_samples_never_differ_is_caught():
    with pytest.raises(ContractError, match=r"\[mc_dropout\]"):
        check_model(FrozenDropout, InMemoryDataModule())
