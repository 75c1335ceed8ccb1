"""The active-learning loop: rounds, stopping, id validation, determinism, resume."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Trainer

from alseg.core import ActiveLearningPipeline, ConfigError, PluginError, QueryStrategy
from alseg.core.run_directory import RunDirectory
from alseg.core.testing import InMemoryDataModule, SeededRandomStrategy, TinySegmentationModel


def ledger(path):
    return [json.loads(line) for line in (path / "rounds.jsonl").read_text().splitlines()]


def selections(path):
    return [record["selected_ids"] for record in ledger(path)]


class FixedStrategy(QueryStrategy):
    """Returns a fixed answer (for id-validation tests)."""

    def __init__(self, answer, pseudo=None):
        self.answer, self.pseudo = answer, pseudo

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        return self.answer(data_module.unlabeled_ids()), self.pseudo


class CrashingStrategy(SeededRandomStrategy):
    """Behaves like the seeded random strategy but dies in round ``crash_round`` (set by a test, not configured)."""

    crash_round = None

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        if kwargs["round"] == self.crash_round:
            raise KeyboardInterrupt("simulated kill")
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


def test_rounds_labels_and_epochs(make_pipeline, tmp_path):
    summary = make_pipeline(iterations=2, epochs=1, initial_epochs=2, epochs_increase_per_query=1).run()
    records = ledger(tmp_path / "run")
    assert [r["round"] for r in records] == [0, 1, 2]  # iterations + 1 trainings
    assert [r["num_labeled"] for r in records] == [4, 7, 10]
    assert [r["num_unlabeled"] for r in records] == [20, 17, 14]
    assert [r["epochs"] for r in records] == [2, 2, 3]
    assert records[0]["selected_ids"] == [] and all(len(r["selected_ids"]) == 3 for r in records[1:])
    data = InMemoryDataModule()
    assert [r["selected_with_foreground"] for r in records] == [
        sum(data.items_with_foreground(r["selected_ids"])) for r in records
    ]
    assert "val/loss" in records[-1]["metrics"] and "test/loss" in summary["test_metrics"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["rounds"] == 3
    assert (tmp_path / "run" / records[-1]["best_checkpoint"]).is_file()


def test_runs_until_pool_is_empty(make_pipeline, tmp_path):
    make_pipeline(iterations=None, items_to_label=8, data={"num_cases": 4, "slices_per_case": 4}).run()
    records = ledger(tmp_path / "run")
    # 2 training cases x 4 slices = 8 items, 4 labelled at start: one query round empties the pool.
    assert [r["num_unlabeled"] for r in records] == [4, 0]


def test_same_seed_same_selections_other_seed_differs(make_pipeline, tmp_path):
    make_pipeline("a", seed=3).run()
    make_pipeline("b", seed=3).run()
    make_pipeline("c", seed=4).run()
    assert selections(tmp_path / "a") == selections(tmp_path / "b")
    assert selections(tmp_path / "a") != selections(tmp_path / "c")


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (lambda pool: ["nope", pool[0]], "not in the unlabelled pool: 'nope'"),
        (lambda pool: [pool[0], pool[0]], "duplicate ids"),
        (lambda pool: pool[:4], "returned 4 ids, but items_to_label is 3"),
        (lambda pool: "case_0:0", "expected a list of string ids"),
    ],
)
def test_invalid_selection_is_an_error_naming_ids(make_pipeline, tmp_path, answer, fragment):
    with pytest.raises(PluginError, match="FixedStrategy") as error:
        make_pipeline(strategy=FixedStrategy(answer)).run()
    assert fragment in str(error.value)
    assert len(ledger(tmp_path / "run")) == 1  # only round 0 completed


def test_selected_id_already_labelled_is_rejected(make_pipeline, tmp_path):
    pipeline = make_pipeline(strategy=FixedStrategy(lambda pool: []))
    labelled = pipeline.data_module.training_ids[0]
    pipeline.strategy = FixedStrategy(lambda pool: [labelled])
    with pytest.raises(PluginError, match=f"not in the unlabelled pool: '{labelled}'"):
        pipeline.run()


def test_resume_after_crash_gives_identical_selections(make_pipeline, tmp_path, monkeypatch):
    make_pipeline("straight", iterations=3, strategy=CrashingStrategy()).run()
    monkeypatch.setattr(CrashingStrategy, "crash_round", 2)
    with pytest.raises(KeyboardInterrupt):
        make_pipeline("killed", iterations=3, strategy=CrashingStrategy()).run()
    assert len(ledger(tmp_path / "killed")) == 2
    # A kill during the append leaves a partial line: it is not a completed round.
    with open(tmp_path / "killed" / "rounds.jsonl", "a") as handle:
        handle.write('{"round": 2, "selected_')
    partial = (tmp_path / "killed" / "rounds.jsonl").read_bytes()
    assert len(RunDirectory(tmp_path / "killed").read_rounds()) == 2  # readers skip the partial line…
    assert (tmp_path / "killed" / "rounds.jsonl").read_bytes() == partial  # …and leave the file alone
    monkeypatch.setattr(CrashingStrategy, "crash_round", None)
    make_pipeline("killed", iterations=3, strategy=CrashingStrategy()).run()
    assert selections(tmp_path / "killed") == selections(tmp_path / "straight")
    metrics = [r["metrics"]["val/loss"] for r in ledger(tmp_path / "killed")]
    assert metrics == pytest.approx([r["metrics"]["val/loss"] for r in ledger(tmp_path / "straight")])


def test_resume_of_finished_run_adds_nothing_and_extends_with_more_iterations(make_pipeline, tmp_path):
    make_pipeline(iterations=1, config={"active_learning": {"iterations": 1}}).run()
    make_pipeline(iterations=1, config={"active_learning": {"iterations": 1}}).run()
    assert len(ledger(tmp_path / "run")) == 2
    make_pipeline(iterations=2, config={"active_learning": {"iterations": 2}}).run()
    assert [r["round"] for r in ledger(tmp_path / "run")] == [0, 1, 2]


def test_pseudo_labels_are_recorded_and_replayed(make_pipeline, tmp_path):
    class Pseudo(QueryStrategy):
        def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
            pool = sorted(data_module.unlabeled_ids())
            return pool[:1], {pool[1]: torch.zeros(1, 16, 16, dtype=torch.long)}

    make_pipeline(iterations=1, strategy=Pseudo()).run()
    record = ledger(tmp_path / "run")[1]
    assert record["num_pseudo_labeled"] == 1 and len(record["pseudo_labeled_ids"]) == 1
    resumed = make_pipeline(iterations=1, strategy=Pseudo())
    resumed.run()
    assert resumed.data_module.training_set_num_pseudo_labels() == 1


def test_reset_weights_reinitialises_in_every_query_round(make_pipeline):
    pipeline = make_pipeline(iterations=2, reset_weights=True)
    reset_calls = []
    original = pipeline.model.reset_parameters
    pipeline.model.reset_parameters = lambda: (reset_calls.append(1), original())
    pipeline.run()
    assert reset_calls == [1, 1]  # rounds 1 and 2, not round 0


def test_pseudo_label_weight_follows_the_round(make_pipeline):
    class RoundSpy(SeededRandomStrategy):
        rounds = []

        def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
            self.rounds.append(models.active_learning_round)
            return super().select_items_to_label(models, data_module, items_to_label, **kwargs)

    make_pipeline(iterations=2, strategy=RoundSpy()).run()
    assert RoundSpy.rounds == [1, 2]
    model = TinySegmentationModel()  # default schedule: 0.9 at round 0, linearly to 0.1 at round 10
    model.bind_data(InMemoryDataModule())
    batch = next(iter(InMemoryDataModule(batch_size=2).train_dataloader()))
    batch["pseudo_labeled"] = torch.tensor([True, False])
    logits = model(batch["image"])
    per_item = model.loss_function.per_item(logits, batch["label"])
    for round_index, weight in ((0, 0.9), (5, 0.5), (10, 0.1)):
        model.active_learning_round = round_index
        expected = (weight * per_item[0] + per_item[1]) / (weight + 1)
        assert model.compute_loss(logits, batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_unknown_model_selection_criterion_lists_logged_metrics(make_pipeline):
    with pytest.raises(ConfigError, match=r"'dice_tumour' is not logged.*Logged: val/dice_disc, val/loss, val/mean"):
        make_pipeline(model_selection_criterion="dice_tumour").run()


@pytest.mark.parametrize(
    ("option", "value"),
    [("items_to_label", 0), ("epochs", 0), ("iterations", -1), ("items_to_label", 1.5)],
)
def test_bad_options_fail_before_anything_is_written(make_pipeline, tmp_path, option, value):
    with pytest.raises(ConfigError, match=f"'{option}' option of the active_learning section"):
        make_pipeline(**{option: value})
    assert not (tmp_path / "run").exists()


def test_trainer_options_owned_by_pipeline_are_rejected(make_pipeline):
    with pytest.raises(ConfigError, match="max_epochs"):
        make_pipeline(trainer_options={"max_epochs": 3})


class BareList(QueryStrategy):
    """Returns the ids alone, without the pseudo labels (a common plugin mistake)."""

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        return data_module.unlabeled_ids()[:2]


def test_a_bare_list_of_ids_is_an_error_naming_the_expected_shape(make_pipeline):
    with pytest.raises(PluginError, match=r"Strategy BareList returned list \['case_0:.*expected a tuple \(ids, "):
        make_pipeline(strategy=BareList()).run()


def test_an_empty_selection_from_a_non_empty_pool_is_an_error(make_pipeline, tmp_path):
    with pytest.raises(PluginError, match="returned no ids from a pool of 20 items"):
        make_pipeline(strategy=FixedStrategy(lambda pool: []), iterations=None).run()
    assert len(ledger(tmp_path / "run")) == 1


class Pseudo(SeededRandomStrategy):
    """Selects like the random strategy and pseudo-labels two further pool items as background."""

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        ids, _ = super().select_items_to_label(models, data_module, items_to_label, **kwargs)
        rest = [i for i in sorted(data_module.unlabeled_ids()) if i not in ids][:2]
        return ids, {i: torch.zeros(1, 16, 16, dtype=torch.long) for i in rest}


def test_pseudo_labelled_items_are_not_charged_as_labelling_budget(make_pipeline, tmp_path):
    make_pipeline(strategy=Pseudo(), iterations=2).run()
    records = ledger(tmp_path / "run")
    assert [r["num_labeled"] for r in records] == [4, 7, 10]  # oracle labels only
    assert [r["num_pseudo_labeled"] for r in records] == [0, 2, 4]
    assert [r.num_training_items for r in RunDirectory(tmp_path / "run").read_rounds()] == [4, 9, 14]
    make_pipeline(strategy=Pseudo(), iterations=2).run()  # replays oracle and pseudo labels on resume


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"strategy": SeededRandomStrategy()}, "strategy.class_path"),
        ({"model_selection_criterion": "mean_dice"}, "active_learning.model_selection_criterion"),
        ({"trainer_options": {"accelerator": "cpu", "gradient_clip_val": 1.0}}, "trainer.gradient_clip_val"),
        ({"data": {"image_size": 8}}, "data.init_args.image_size"),
        ({"model": {"learning_rate": 0.5}}, "model.init_args.learning_rate"),
    ],
)
def test_a_python_api_resume_with_other_arguments_is_refused(make_pipeline, tmp_path, change, key):
    make_pipeline(strategy=Pseudo(), iterations=1).run()
    before = (tmp_path / "run" / "rounds.jsonl").read_bytes()
    with pytest.raises(ConfigError, match=f"different configuration.*{key}"):
        make_pipeline(**{"strategy": Pseudo(), "iterations": 2, **change}).run()
    assert (tmp_path / "run" / "rounds.jsonl").read_bytes() == before


def _drop_options(run: Path, *dotted: str) -> None:
    """Removes options from a run's config.yaml, as a run started before they existed has it."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    for key in dotted:
        *parents, name = key.split(".")
        section = config
        for parent in parents:
            section = section[parent]
        del section[name]
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_a_run_of_an_earlier_version_resumes_unless_a_newer_option_leaves_its_default(make_pipeline, tmp_path):
    make_pipeline(iterations=1).run()
    newer = ("active_learning.test_each_round", "model.init_args.dropout")
    _drop_options(tmp_path / "run", *newer)
    before = (tmp_path / "run" / "rounds.jsonl").read_bytes()
    with pytest.raises(ConfigError, match=r"different configuration.*active_learning.test_each_round: None in the"):
        make_pipeline(iterations=2, test_each_round=True).run()
    assert (tmp_path / "run" / "rounds.jsonl").read_bytes() == before
    assert make_pipeline(iterations=2).run()["rounds"] == 3  # the defaults: resumed


def test_testing_every_round_records_the_test_split_of_each_best_checkpoint(make_pipeline, tmp_path):
    summary = make_pipeline(test_each_round=True).run()
    records = RunDirectory(tmp_path / "run").read_rounds()
    model, data = TinySegmentationModel(), InMemoryDataModule()
    data.setup()
    model.bind_data(data)
    for record in records:
        assert {"val/loss", "test/loss", "test/mean_dice"} <= set(record.metrics) and record.timing_s["test"] > 0
        state = torch.load(tmp_path / "run" / record.best_checkpoint, weights_only=True)["state_dict"]
        model.load_state_dict(state)
        tested = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).test(model, data, verbose=False)
        assert record.metrics["test/loss"] == pytest.approx(tested[0]["test/loss"], rel=1e-5)
    assert summary["test_metrics"] == {k: v for k, v in records[-1].metrics.items() if k.startswith("test/")}
    assert not any(k.startswith("test/") for k in summary["final_metrics"])


def test_rounds_are_tested_only_when_asked(make_pipeline, tmp_path):
    make_pipeline(iterations=1).run()
    assert not any(k.startswith("test/") for r in RunDirectory(tmp_path / "run").read_rounds() for k in r.metrics)


def test_the_ledger_counts_the_annotation_cost_of_oracle_labels_across_a_resume(make_pipeline, tmp_path):
    class CostlyData(InMemoryDataModule):
        def annotation_cost(self, ids):  # a slice's cost: its digit sum, so that every id costs something else
            return {"items": len(ids), "effort": sum(int(i.rsplit(":", 1)[1]) + 1 for i in ids)}

    def cost(ids):
        return CostlyData().annotation_cost(ids)["effort"]

    def pipeline():
        return ActiveLearningPipeline(
            CostlyData(), TinySegmentationModel(), CrashingStrategy(), tmp_path / "run", items_to_label=3,
            iterations=2, trainer_options={"accelerator": "cpu"},
        )  # fmt: skip

    CrashingStrategy.crash_round = 2
    with pytest.raises(KeyboardInterrupt):
        pipeline().run()
    CrashingStrategy.crash_round = None
    pipeline().run()
    records = RunDirectory(tmp_path / "run").read_rounds()
    initial = CostlyData()
    initial.setup()
    spent = cost(initial.labeled_ids())
    for record in records:
        spent += cost(record.selected_ids)
        assert record.annotation_cost == {"items": record.num_labeled, "effort": spent}
