"""Pseudo labels derived from the oracle's labels of a selection: resolved, checked, scored against the same slice."""

import json

import pytest
import torch

from alseg.core import PluginError, QueryStrategy
from alseg.core.derived_labels import DerivedLabels
from alseg.core.selection_check import check_selection
from alseg.core.testing import InMemoryDataModule

# Case 0 and case 2 of the in-memory double hold a disc in slices 2 and 3 only; with seed 1 all of BLOCKS is pool.
BLOCKS = (("case_0:0", "case_0:1", "case_0:2"), ("case_2:1", "case_2:2", "case_2:3"))


class CopyBottom(DerivedLabels):
    """Gives the middle slice of a 3-slice block the oracle's label of the bottom slice."""

    def derive(self, labels):
        return {self.targets[0]: labels[self.sources[1]].clone()}


class BlockStrategy(QueryStrategy):
    """Selects the end slices of BLOCKS and derives the middle ones from the bottom slice."""

    def __init__(self, sources=None):
        self.sources = sources

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        pool = set(data_module.unlabeled_ids())
        assert all(i in pool for block in BLOCKS for i in block)
        selected = [block[i] for block in BLOCKS for i in (0, 2)]
        return selected, {b[1]: CopyBottom(self.sources or (b[0], b[2]), (b[1],)) for b in BLOCKS}


def ledger(path):
    return [json.loads(line) for line in (path / "rounds.jsonl").read_text().splitlines()]


def test_derived_labels_are_resolved_from_the_oracle_and_scored_against_the_same_slice(make_pipeline, tmp_path):
    pipeline = make_pipeline(strategy=BlockStrategy(), iterations=1, items_to_label=4, data={"seed": 1})
    pipeline.run()
    record = ledger(tmp_path / "run")[1]
    assert record["num_labeled"] == 4 + 4 and record["num_pseudo_labeled"] == 2  # the budget counts oracle labels
    assert record["pseudo_labeled_ids"] == ["case_0:1", "case_2:2"]
    # case_0:1 holds no disc but got case_0:2's disc (Dice 0); case_2:2 got case_2:3's identical disc (Dice 1).
    # A comparison with the slice after (case_0:2) or before (case_2:1) would give 1 and 0.
    assert record["pseudo_label_dice"] == {"case_0:1": 0.0, "case_2:2": 1.0}
    data = pipeline.data_module
    trained = {item["id"]: item for item in data.labeled_dataloader().dataset}
    assert torch.equal(trained["case_0:1"]["label"], data.ground_truth(["case_0:2"])["case_0:2"])
    assert trained["case_0:1"]["pseudo_labeled"] and not trained["case_0:2"]["pseudo_labeled"]


def test_a_resumed_run_replays_the_derived_labels(make_pipeline, tmp_path):
    make_pipeline(strategy=BlockStrategy(), iterations=1, items_to_label=4, data={"seed": 1}).run()
    resumed = make_pipeline(strategy=BlockStrategy(), iterations=1, items_to_label=4, data={"seed": 1})
    resumed.run()
    trained = {item["id"]: item for item in resumed.data_module.labeled_dataloader().dataset}
    assert trained["case_0:1"]["label"].sum() > 0 and trained["case_0:1"]["pseudo_labeled"]


def test_labels_derived_from_an_unselected_id_are_refused(make_pipeline):
    strategy = BlockStrategy(sources=("case_0:0", "case_1:4"))
    with pytest.raises(PluginError, match="derived from ids it did not select: 'case_1:4'"):
        make_pipeline(strategy=strategy, iterations=1, items_to_label=4, data={"seed": 1}).run()


class NoGroundTruth(InMemoryDataModule):
    def ground_truth(self, ids):
        return None


def test_a_data_module_without_ground_truth_cannot_resolve_derived_labels(make_pipeline, tmp_path):
    pipeline = make_pipeline(strategy=BlockStrategy(), iterations=1, items_to_label=4, data={"seed": 1})
    pipeline.data_module = NoGroundTruth(seed=1)
    with pytest.raises(PluginError, match=r"NoGroundTruth.ground_truth\(ids\) gives none"):
        pipeline.run()


@pytest.mark.parametrize(
    ("pseudo", "fragment"),
    [
        ({"c": CopyBottom(("a", "b"), ("d",))}, "for 'c' that does not list it as a target"),
        ({"c": CopyBottom(("a", "b"), ("c", "d"))}, "targets are not pseudo-label keys: 'd'"),
    ],
)
def test_a_request_must_label_exactly_its_keys(pseudo, fragment):
    with pytest.raises(PluginError, match=fragment):
        check_selection("S", (["a", "b"], pseudo), ["a", "b", "c", "d"], 2)


def test_derived_labels_come_from_the_labels_a_person_gave(make_pipeline, tmp_path):
    from alseg.core.oracle import Oracle

    class AllOnes(Oracle):
        def labels(self, request):
            return {i: torch.ones_like(label) for i, label in request.data_module.ground_truth(request.ids).items()}

    pipeline = make_pipeline(
        strategy=BlockStrategy(), iterations=1, items_to_label=4, data={"seed": 1}, oracle=AllOnes()
    )
    pipeline.run()
    trained = {item["id"]: item for item in pipeline.data_module.labeled_dataloader().dataset}
    assert trained["case_0:1"]["label"].eq(1).all() and trained["case_0:1"]["pseudo_labeled"]  # not case_0:2's truth
