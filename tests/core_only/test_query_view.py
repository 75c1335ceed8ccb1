"""A strategy sees the query surface only: no route to a pool label, no labelling behind the pipeline's back."""

import json

import pytest
import torch

from alseg.core import PluginError, QueryStrategy
from alseg.core.inference import map_pool, stream_probabilities
from alseg.core.query_view import QueryView
from alseg.core.testing import InMemoryDataModule, SeededRandomStrategy, TinySegmentationModel


def ledger(path):
    return [json.loads(line) for line in (path / "rounds.jsonl").read_text().splitlines()]


class Reaching(QueryStrategy):
    """Reaches for something beyond the query surface (named by ``route``)."""

    def __init__(self, route: str = "items_with_foreground"):
        self.route = route

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        ids = data_module.unlabeled_ids()
        if self.route == "trainer":
            models.trainer.datamodule.items_with_foreground(ids)
        elif self.route == "dataset":
            data_module.unlabeled_dataloader().dataset.module.items_with_foreground(ids)
        else:
            getattr(data_module, self.route)(ids)
        return ids[:items_to_label], None


@pytest.mark.parametrize("route", ["items_with_foreground", "label_items", "volume_cache", "source"])
def test_the_data_module_beyond_the_query_surface_is_refused_by_name(make_pipeline, route):
    with pytest.raises(PluginError, match=f"Strategy Reaching used data_module.{route}, which is not part of"):
        make_pipeline(strategy=Reaching(route)).run()


def test_the_pool_dataset_and_the_model_lead_to_no_labels(make_pipeline):
    with pytest.raises(AttributeError, match="module"):
        make_pipeline(strategy=Reaching("dataset")).run()
    with pytest.raises(RuntimeError, match="not attached to a `Trainer`"):
        make_pipeline("other", strategy=Reaching("trainer")).run()


def test_pool_items_with_a_label_are_a_contract_error():
    data = InMemoryDataModule()
    data.setup()
    data.pool_ids, data.training_ids = data.training_ids, data.pool_ids  # both now hold labelled items only
    data._datasets["pool"].with_label = True
    with pytest.raises(PluginError, match="carries a label"):
        next(iter(QueryView(data).unlabeled_dataloader()))


class Labelling(SeededRandomStrategy):
    """Labels items itself through a data module it kept from outside the view."""

    module = None

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        self.module.label_items(self.module.unlabeled_ids()[:10])
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


def test_a_strategy_that_labels_items_itself_is_an_error_naming_it(make_pipeline, tmp_path):
    pipeline = make_pipeline(strategy=Labelling())
    Labelling.module = pipeline.data_module
    with pytest.raises(PluginError, match=r"Strategy Labelling changed the labelled set during its query \(4 → 14"):
        pipeline.run()
    assert len(ledger(tmp_path / "run")) == 1


class Oracle(QueryStrategy):
    """An oracle-informed baseline: picks items whose ground truth has foreground, through the explicit call."""

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        ids = sorted(data_module.unlabeled_ids())
        flags = data_module.ground_truth_foreground(ids)
        data_module.record("foreground_in_pool", sum(flags))
        return [i for i, flag in zip(ids, flags, strict=True) if flag][:items_to_label], None


def test_ground_truth_goes_through_one_call_that_the_ledger_records(make_pipeline, tmp_path):
    make_pipeline(strategy=Oracle(), iterations=1).run()
    first, second = ledger(tmp_path / "run")
    assert first["ground_truth_revealed"] == 0
    assert second["ground_truth_revealed"] == 20  # the whole pool was asked about
    assert second["strategy_notes"]["foreground_in_pool"] > 0
    assert second["selected_with_foreground"] == len(second["selected_ids"])
    assert ledger(tmp_path / "run")[0]["strategy_notes"] == {}


def test_ground_truth_of_ids_outside_the_pool_is_refused():
    data = InMemoryDataModule()
    data.setup()
    with pytest.raises(PluginError, match=r"not in the pool: \['case_5:0'\]"):
        QueryView(data, "Oracle").ground_truth_foreground(["case_5:0"])


def test_streaming_through_the_view_matches_the_model_on_the_pool():
    data = InMemoryDataModule()
    model = TinySegmentationModel()
    model.bind_data(data)
    streamed = torch.cat([p for _, p in stream_probabilities(model, QueryView(data))])
    with torch.inference_mode():
        model.eval()
        direct = torch.cat([model.predict_step(b, 0) for b in data.unlabeled_dataloader()])
    torch.testing.assert_close(streamed, direct)


def test_map_pool_gives_one_value_per_pool_item_and_checks_the_count():
    data = InMemoryDataModule()
    model = TinySegmentationModel()
    model.bind_data(data)
    view = QueryView(data)
    values = map_pool(stream_probabilities(model, view), lambda batch, p: p.flatten(1).mean(1).tolist())
    assert sorted(values) == sorted(data.unlabeled_ids())
    with pytest.raises(PluginError, match="returned 1 values for a batch of 4"):
        map_pool(stream_probabilities(model, view), lambda batch, p: [0.0])
