"""The conformance kit: every named check passes the doubles, and a broken plugin fails exactly its check."""

import inspect
from functools import partial

import pytest
import torch

from alseg.core import testing
from alseg.core.derived_labels import DerivedLabels
from alseg.core.testing import (
    ContractError,
    DataModuleTarget,
    InMemoryDataModule,
    ModelTarget,
    SeededRandomStrategy,
    StrategyTarget,
    TinySegmentationModel,
    check_data_module,
    check_model,
    check_strategy,
    data_module_checks,
    model_checks,
    parametrize_with_checks,
    strategy_checks,
)

MULTI_LABEL = partial(InMemoryDataModule, multi_label=True)
DOUBLES = (
    DataModuleTarget(InMemoryDataModule),
    DataModuleTarget(MULTI_LABEL, name="InMemoryDataModule-multi_label"),
    ModelTarget(TinySegmentationModel),
    ModelTarget(TinySegmentationModel, MULTI_LABEL, name="TinySegmentationModel-multi_label"),
    StrategyTarget(SeededRandomStrategy),
    StrategyTarget(SeededRandomStrategy, data_module_factory=MULTI_LABEL, name="SeededRandomStrategy-multi_label"),
)
EVERY_CHECK = {"data_module": data_module_checks(), "model": model_checks(), "strategy": strategy_checks()}


@parametrize_with_checks(*DOUBLES)
def test_the_doubles_pass(check):
    check()


@pytest.mark.parametrize("kind", sorted(EVERY_CHECK))
def test_checks_are_exported_named_after_their_kind_and_documented_in_one_line(kind):
    for check in EVERY_CHECK[kind]:
        assert check.__name__.startswith(f"check_{kind}_") and check.__name__ in testing.__all__
        assert getattr(testing, check.__name__) is check
        assert check.__doc__.startswith("Checks that ") and "\n" not in check.__doc__
        assert next(iter(inspect.signature(check).parameters)).endswith("factory")


def test_parametrize_with_checks_ids_are_target_then_check_and_skip_drops_checks():
    skipped = {"check_data_module_pseudo_labels", "check_model_fast_dev_run_fit"}
    mark = parametrize_with_checks(
        DataModuleTarget(InMemoryDataModule, name="memory"), ModelTarget(TinySegmentationModel), skip=skipped
    )
    names, params = mark.args
    assert names == "check"
    assert [p.id for p in params] == [f"memory-{c.__name__}" for c in data_module_checks(pseudo_labels=False)] + [
        f"TinySegmentationModel-{c.__name__}" for c in model_checks() if c.__name__ not in skipped
    ]


def test_a_target_without_a_name_is_named_after_the_class_its_factory_makes():
    assert DataModuleTarget(partial(InMemoryDataModule, num_cases=4)).id == "InMemoryDataModule"
    assert StrategyTarget(SeededRandomStrategy).id == "SeededRandomStrategy"


def test_pseudo_labels_false_leaves_out_the_pseudo_label_check():
    assert data_module_checks(pseudo_labels=False) == data_module_checks()[:-1]
    assert data_module_checks()[-1].__name__ == "check_data_module_pseudo_labels"


class LeakyPool(InMemoryDataModule):
    def item(self, item_id, with_label):
        return super().item(item_id, with_label=True)


class HalfPrecisionImages(InMemoryDataModule):
    def item(self, item_id, with_label):
        item = super().item(item_id, with_label)
        return {**item, "image": item["image"].half()}


class LosesLabelledItems(InMemoryDataModule):
    def label_items(self, ids, pseudo_labels=None, labels=None):
        super().label_items(ids, pseudo_labels, labels=labels)
        self.training_ids[:] = [i for i in self.training_ids if i not in ids]


class Forgiving(InMemoryDataModule):
    def label_items(self, ids, pseudo_labels=None, labels=None):
        kept = [i for i in ids if i in self.pool_ids]
        super().label_items(kept, pseudo_labels, labels=None if labels is None else {i: labels[i] for i in kept})


class UncountedPseudo(InMemoryDataModule):
    def training_set_num_pseudo_labels(self):
        return 0


class ShiftedMetadata(InMemoryDataModule):
    def item_metadata(self, ids):
        return [{**entry, "slice_index": entry["slice_index"] + 1} for entry in super().item_metadata(ids)]


class ShiftedGroundTruth(InMemoryDataModule):
    """Answers with the ground truth of the next slice: the misalignment of the original framework's check."""

    def ground_truth(self, ids):
        return {i: self._label(c, (s + 1) % 6) for i, (c, s) in zip(ids, map(self._position, ids), strict=True)}


class IgnoresOracleLabels(InMemoryDataModule):
    def label_items(self, ids, pseudo_labels=None, labels=None):
        super().label_items(ids, pseudo_labels, labels=labels)
        self.oracle_labels.clear()  # trains on the ground truth instead of the person's labels


class UnstableIds(InMemoryDataModule):
    made = 0

    def __init__(self):
        UnstableIds.made += 1
        super().__init__(seed=UnstableIds.made)


def assert_fails_exactly(names, aggregate, arguments, message=""):
    """Each named check fails alone, its name first in the message, and the aggregate passes when they are skipped.

    ``arguments`` returns fresh arguments of a check (and of ``aggregate``) on each call; ``message`` is a regular
    expression the messages go on with.
    """
    for name in names:
        with pytest.raises(ContractError, match=rf"^\[{name}\] {message}"):
            getattr(testing, name)(*arguments())
    with pytest.raises(ContractError, match=rf"^\[{names[0]}\] "):
        aggregate(*arguments())
    aggregate(*arguments(), skip=names)


@pytest.mark.parametrize(
    ("module", "check"),
    [
        (LeakyPool, "check_data_module_pool_has_no_labels"),
        (HalfPrecisionImages, "check_data_module_pool_items"),
        (LosesLabelledItems, ("check_data_module_label_items", "check_data_module_oracle_labels")),  # loses both
        (Forgiving, "check_data_module_rejects_unknown_ids"),
        (UncountedPseudo, "check_data_module_pseudo_labels"),
        (UnstableIds, "check_data_module_stable_ids"),
        (ShiftedMetadata, "check_data_module_item_metadata"),
        (partial(ShiftedGroundTruth, initial_training_set_size=20), "check_data_module_ground_truth"),
        (IgnoresOracleLabels, "check_data_module_oracle_labels"),
    ],
)
def test_a_broken_data_module_fails_exactly_its_check(module, check):
    assert_fails_exactly([check] if isinstance(check, str) else list(check), check_data_module, lambda: (module,))


class WrongDimensionality(TinySegmentationModel):
    def input_dimensionality(self):
        return 4


class Unnormalised(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return torch.sigmoid(self(batch["image"]))  # single-label data, but no softmax


class HalfPrecision(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return super().predict_step(batch, batch_idx).half()


class WrongShape(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return super().predict_step(batch, batch_idx)[:, :1]


class FrozenDropout(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        with torch.random.fork_rng():
            torch.manual_seed(0)  # every sample draws the same dropout mask
            return super().predict_step(batch, batch_idx)


class BatchStatisticsForever(TinySegmentationModel):
    def train(self, mode=True):
        super().train(mode)
        if self.encoder is not None:
            self.encoder[1].training = True  # eval() leaves the BatchNorm layer in training mode
        return self


class Untrainable(TinySegmentationModel):
    def training_step(self, batch, batch_idx):
        raise RuntimeError("no training today")


@pytest.mark.parametrize(
    ("model", "check"),
    [
        (WrongDimensionality, "check_model_input_dimensionality"),
        (Unnormalised, "check_model_predict_probabilities"),
        (HalfPrecision, "check_model_predict_probabilities"),
        (WrongShape, "check_model_predict_probabilities"),
        (FrozenDropout, "check_model_mc_samples_differ"),
        (BatchStatisticsForever, "check_model_eval_after_mc_dropout"),
        (Untrainable, "check_model_fast_dev_run_fit"),
    ],
)
def test_a_broken_model_fails_exactly_its_check(model, check):
    assert_fails_exactly([check], check_model, lambda: (model, InMemoryDataModule()))


class NoDropout(TinySegmentationModel):
    def configure_model(self):
        super().configure_model()
        self.encoder[3] = torch.nn.Identity()


def test_a_model_without_dropout_passes_the_mc_dropout_checks():
    check_model(NoDropout, InMemoryDataModule(), skip={"check_model_fast_dev_run_fit"})


def test_a_model_whose_dropout_never_drops_fails_the_mc_dropout_checks():
    assert_fails_exactly(
        ["check_model_mc_samples_differ", "check_model_eval_after_mc_dropout"],
        check_model,
        lambda: (partial(TinySegmentationModel, dropout=0.0), InMemoryDataModule()),
        message="The dropout probability of the model TinySegmentationModel must be > 0",
    )


def test_a_failed_fit_keeps_its_cause():
    with pytest.raises(ContractError, match=r"fit raised RuntimeError: no training today") as error:
        testing.check_model_fast_dev_run_fit(Untrainable, InMemoryDataModule())
    assert isinstance(error.value.__cause__, RuntimeError)


class Duplicates(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        ids, _ = super().select_items_to_label(models, data_module, items_to_label, **kwargs)
        return ids[:1] * 2, None


class Greedy(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        return data_module.unlabeled_ids()[: items_to_label + 1], None


class Outsider(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        return ["not-in-pool"], None


class Meddling(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        models.train()
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


class RecordsATensor(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        data_module.record("tied_picks", torch.tensor(0))
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


class Unseeded(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        kwargs["seed"] = int(torch.randint(0, 2**31, (1,)))
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


class Peeking(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        next(iter(data_module.train_dataloader()))  # the labelled items, labels included
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


class DerivesFromTheUnselected(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        ids, _ = super().select_items_to_label(models, data_module, items_to_label, **kwargs)
        rest = [i for i in data_module.unlabeled_ids() if i not in ids]
        return ids, {rest[0]: CopyOf((rest[1],), (rest[0],))}


class WrongPseudoShape(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        ids, _ = super().select_items_to_label(models, data_module, items_to_label, **kwargs)
        rest = [i for i in data_module.unlabeled_ids() if i not in ids]
        return ids, {rest[0]: CopyOf((ids[0],), (rest[0],), crop=True)}


class CopyOf(DerivedLabels):
    def __init__(self, sources, targets, crop=False):
        super().__init__(sources, targets)
        self.crop = crop

    def derive(self, labels):
        label = labels[self.sources[0]]
        return {self.targets[0]: label[..., :-1] if self.crop else label}


def bound():
    """A model in eval mode bound to a new data module, and the module."""
    data = InMemoryDataModule()
    model = TinySegmentationModel()
    model.bind_data(data)
    model.eval()
    return model, data


@pytest.mark.parametrize(
    ("strategy", "check"),
    [
        (Duplicates, "check_strategy_returns_pool_ids"),
        (Greedy, "check_strategy_returns_pool_ids"),
        (Outsider, "check_strategy_returns_pool_ids"),
        (Meddling, "check_strategy_leaves_model_and_data_unchanged"),
        (RecordsATensor, "check_strategy_notes_are_json"),
        (Unseeded, "check_strategy_same_seed_same_ids"),
        (DerivesFromTheUnselected, "check_strategy_pseudo_labels"),
        (WrongPseudoShape, "check_strategy_pseudo_labels"),
    ],
)
def test_a_broken_strategy_fails_exactly_its_check(strategy, check):
    assert_fails_exactly([check], check_strategy, lambda: (strategy, *bound()))


class LabelsItself(SeededRandomStrategy):
    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        ids, _ = super().select_items_to_label(models, data_module, items_to_label, **kwargs)
        data_module._module.label_items(ids)  # around the view
        return ids, None


def test_a_strategy_that_labels_items_itself_fails_the_first_check():
    with pytest.raises(
        ContractError, match=r"^\[check_strategy_leaves_model_and_data_unchanged\] the strategy changed"
    ):
        check_strategy(LabelsItself, *bound())


def test_every_strategy_check_calls_the_strategy_through_the_query_view():
    assert_fails_exactly(
        [check.__name__ for check in strategy_checks()],
        check_strategy,
        lambda: (Peeking, *bound()),
        message="Strategy Peeking used data_module.train_dataloader, which is not part of the query surface",
    )


@pytest.mark.parametrize(
    "run",
    [
        lambda skip: check_data_module(InMemoryDataModule, skip=skip),
        lambda skip: check_model(TinySegmentationModel, InMemoryDataModule(), skip=skip),
        lambda skip: check_strategy(SeededRandomStrategy, *bound(), skip=skip),
        lambda skip: parametrize_with_checks(*DOUBLES, skip=skip),
    ],
    ids=["data_module", "model", "strategy", "parametrize_with_checks"],
)
def test_an_unknown_name_in_skip_is_an_error_that_lists_the_valid_names(run):
    with pytest.raises(ValueError, match=r"Unknown check name\(s\) in skip: 'check_typo'\. Available: check_\w+, "):
        run(["check_typo"])


def test_skip_must_not_be_a_single_string():
    with pytest.raises(TypeError, match="collection of check names, not the string 'check_model_fast_dev_run_fit'"):
        check_model(TinySegmentationModel, InMemoryDataModule(), skip="check_model_fast_dev_run_fit")


class OriginalLabelItems(InMemoryDataModule):
    """The original extension API: label_items(ids, pseudo_labels), no oracle labels."""

    def label_items(self, ids, pseudo_labels=None):
        super().label_items(ids, pseudo_labels)


def test_a_data_module_with_the_original_label_items_passes_the_oracle_labels_check():
    testing.check_data_module_oracle_labels(OriginalLabelItems)  # only the simulated oracle can label it
