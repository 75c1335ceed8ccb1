"""Oracles: the simulated default changes nothing; an oracle that answers later continues the same run identically."""

import json

import pytest
import torch

from alseg.core import ConfigError, PluginError
from alseg.core.oracle import LabelsPending, Oracle, SimulatedOracle
from alseg.core.testing import InMemoryDataModule


def ledger(path):
    return [json.loads(line) for line in (path / "rounds.jsonl").read_text().splitlines()]


class LaterOracle(Oracle):
    """Answers with the ground truth (or with labels of ``fill``) only for rounds in ``ready``; else pending.

    ``ready`` is what the person has done so far, not configuration: it is set after the oracle is built.
    """

    def __init__(self, fill=None):
        self.fill, self.ready, self.asked = fill, set(), []

    @classmethod
    def after(cls, *ready, fill=None):
        oracle = cls(fill)
        oracle.ready = set(ready)
        return oracle

    def labels(self, request):
        self.asked.append(request.round)
        if request.round not in self.ready:
            raise LabelsPending(f"round {request.round}: label {len(request.ids)} items, then run again")
        truth = request.data_module.ground_truth(request.ids)
        return {i: torch.full_like(label, self.fill) if self.fill is not None else label for i, label in truth.items()}


def comparable(records):
    return [(r["selected_ids"], r["num_labeled"], r["num_unlabeled"], r["annotation_cost"]) for r in records]


def test_the_simulated_oracle_is_the_default_and_leaves_no_trace(make_pipeline, tmp_path):
    make_pipeline("default", iterations=1).run()
    make_pipeline("explicit", iterations=1, oracle=SimulatedOracle()).run()
    assert comparable(ledger(tmp_path / "default")) == comparable(ledger(tmp_path / "explicit"))
    assert "oracle" not in (tmp_path / "default" / "config.yaml").read_text()
    assert not (tmp_path / "default" / "pending_round.pt").exists()
    assert not (tmp_path / "default" / "oracle_labels").exists()


def test_an_oracle_that_answers_later_gives_the_simulated_ledger(make_pipeline, tmp_path):
    make_pipeline("simulated").run()
    oracle = LaterOracle()
    with pytest.raises(LabelsPending, match="round 1: label 3 items"):
        make_pipeline("later", oracle=oracle).run()
    run = tmp_path / "later"
    assert len(ledger(run)) == 1 and (run / "pending_round.pt").is_file()
    with pytest.raises(LabelsPending):  # asked again, the same selection: nothing is queried twice
        make_pipeline("later", oracle=LaterOracle()).run()
    with pytest.raises(LabelsPending, match="round 2"):
        make_pipeline("later", oracle=LaterOracle.after(1)).run()
    make_pipeline("later", oracle=LaterOracle.after(1, 2)).run()
    simulated, later = ledger(tmp_path / "simulated"), ledger(run)
    assert comparable(later) == comparable(simulated)
    for mine, theirs in zip(later, simulated, strict=True):  # the query's random state was restored too
        assert mine["metrics"] == pytest.approx(theirs["metrics"], rel=1e-5)
    assert not (run / "pending_round.pt").exists()
    assert sorted(p.name for p in (run / "oracle_labels").iterdir()) == ["round_001.pt", "round_002.pt"]


def test_supplied_labels_are_trained_on_and_replayed_on_resume(make_pipeline, tmp_path):
    oracle = LaterOracle.after(1, fill=1)
    pipeline = make_pipeline("filled", iterations=1, oracle=oracle)
    pipeline.run()
    selected = ledger(tmp_path / "filled")[1]["selected_ids"]
    items = {item["id"]: item for item in pipeline.data_module.labeled_dataloader().dataset}
    assert all(items[i]["label"].eq(1).all() and not items[i]["pseudo_labeled"] for i in selected)
    resumed = make_pipeline("filled", iterations=2, oracle=LaterOracle.after(1, 2, fill=1))
    resumed.run()
    items = {item["id"]: item for item in resumed.data_module.labeled_dataloader().dataset}
    assert all(items[i]["label"].eq(1).all() for i in selected)  # round 1 replayed with the person's labels


class PartlyUnlabelled(InMemoryDataModule):
    """Case ``case_0`` has no ground truth."""

    def ids_without_ground_truth(self, ids):
        return [i for i in ids if i.startswith("case_0:")]


def test_the_simulated_oracle_refuses_items_without_ground_truth(tmp_path):
    from alseg.core import ActiveLearningPipeline
    from alseg.core.testing import SeededRandomStrategy, TinySegmentationModel

    pipeline = ActiveLearningPipeline(
        PartlyUnlabelled(),
        TinySegmentationModel(),
        SeededRandomStrategy(),
        tmp_path / "run",
        items_to_label=12,
        trainer_options={"accelerator": "cpu"},
    )
    with pytest.raises(ConfigError, match=r"simulated oracle cannot label .* case\(s\) \['case_0'\] have no ground"):
        pipeline.run()


class OldSignature(InMemoryDataModule):
    def label_items(self, ids, pseudo_labels=None):
        super().label_items(ids, pseudo_labels)


def test_an_oracle_that_supplies_labels_needs_label_items_to_take_them(tmp_path):
    from alseg.core import ActiveLearningPipeline
    from alseg.core.testing import SeededRandomStrategy, TinySegmentationModel

    pipeline = ActiveLearningPipeline(
        OldSignature(), TinySegmentationModel(), SeededRandomStrategy(), tmp_path / "run", oracle=LaterOracle()
    )
    with pytest.raises(PluginError, match=r"OldSignature.label_items does not accept them"):
        pipeline.run()
    assert not (tmp_path / "run" / "config.yaml").exists()
