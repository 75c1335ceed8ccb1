"""The interpolation strategy: blocks of adjacent slices, oracle-labelled ends, interpolated inner slices."""

import json
import statistics

import pytest
import torch

from alseg.core import ActiveLearningPipeline, ConfigError
from alseg.core.metrics import label_dice
from alseg.core.query_view import QueryView
from alseg.core.testing import InMemoryDataModule, TinySegmentationModel
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.synthetic import write_brats
from alseg.strategies.blocks import Block, runs
from alseg.strategies.interpolation import InterpolatedBlock, InterpolationStrategy
from alseg.strategies.pool_scores import score_pool


def ledger(path):
    return [json.loads(line) for line in (path / "rounds.jsonl").read_text().splitlines()]


def run(tmp_path, strategy, items_to_label=4, **data):
    pipeline = ActiveLearningPipeline(
        InMemoryDataModule(seed=1, **data),
        TinySegmentationModel(),
        strategy,
        tmp_path / "run",
        items_to_label=items_to_label,
        iterations=1,
        trainer_options={"accelerator": "cpu"},
    )
    pipeline.run()
    return pipeline, ledger(tmp_path / "run")[1]


def test_only_the_end_slices_are_oracle_labels_and_the_inner_ones_are_pseudo_labelled(tmp_path):
    pipeline, record = run(tmp_path, InterpolationStrategy(block_thickness=3, block_selection="random"))
    assert len(record["selected_ids"]) == 4 and record["num_labeled"] == 4 + 4  # the budget: 2 blocks of 2 ends
    assert record["strategy_notes"]["block_slices"] == [3, 3]
    assert record["num_pseudo_labeled"] == 2 and sorted(record["pseudo_label_dice"]) == record["pseudo_labeled_ids"]
    assert record["annotation_cost"]["items"] == 8  # pseudo labels cost nothing
    for inner in record["pseudo_labeled_ids"]:
        case, index = inner.split(":")
        ends = {f"{case}:{int(index) - 1}", f"{case}:{int(index) + 1}"}
        assert ends <= set(record["selected_ids"])  # each inner slice lies between two selected ends
    trained = {item["id"]: item for item in pipeline.data_module.labeled_dataloader().dataset}
    assert all(trained[i]["pseudo_labeled"] for i in record["pseudo_labeled_ids"])


def test_without_pseudo_labels_the_inner_slices_stay_in_the_pool(tmp_path):
    _, record = run(tmp_path, InterpolationStrategy(block_thickness=3, pseudo_labels=False))
    assert record["num_pseudo_labeled"] == 0 and record["pseudo_labeled_ids"] == []
    assert record["num_unlabeled"] == 20 - 4


def test_an_odd_budget_ends_with_a_single_slice(tmp_path):
    _, record = run(tmp_path, InterpolationStrategy(block_selection="random"), items_to_label=3)
    assert record["strategy_notes"]["block_slices"] == [5, 1] and len(record["selected_ids"]) == 3


class CountingModel(TinySegmentationModel):
    calls = 0

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        CountingModel.calls += 1
        return super().predict_step(batch, batch_idx, dataloader_idx)


def test_each_pool_slice_is_scored_once_per_round_whatever_the_thickness():
    data = InMemoryDataModule(seed=1, pool_batch_size=4)
    model = CountingModel()
    model.bind_data(data)
    CountingModel.calls = 0
    InterpolationStrategy(block_thickness=4).select_items_to_label(model, QueryView(data), 6, seed=0)
    assert CountingModel.calls == len(data.unlabeled_dataloader())  # one pass over the pool's batches


def test_uncertain_blocks_are_chosen_first():
    data = InMemoryDataModule(seed=1)
    model = TinySegmentationModel()
    model.bind_data(data)
    view = QueryView(data)
    strategy = InterpolationStrategy(block_thickness=3)
    selected, pseudo = strategy.select_items_to_label(model, view, 2, seed=0)
    scores = strategy._scorer
    pool = {i: float(s) for i, s in zip(*_scores(model, view, scores), strict=True)}
    block = (*selected[:1], *sorted(pseudo), *selected[1:])
    best = max(
        (sum(pool.get(f"{c}:{s + d}", float("-inf")) for d in range(3)), (c, s))
        for c in {i.split(":")[0] for i in pool}
        for s in range(6)
    )
    assert block == tuple(f"{best[1][0]}:{best[1][1] + d}" for d in range(3))


def _scores(model, view, scorer):
    pool = score_pool(model, view, scorer.item_scores)
    return pool.ids, pool.scores.tolist()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"block_thickness": 1}, "'block_thickness' option must be an integer >= 2"),
        ({"block_selection": "greedy"}, "Unknown block_selection 'greedy'"),
        ({"label_interpolation": "linear"}, "Unknown label_interpolation 'linear'"),
        ({"uncertainty": "margin"}, "'uncertainty' option of the strategy must be one of: bald, entropy"),
    ],
)
def test_bad_options_are_config_errors(options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        InterpolationStrategy(**options)


def test_signed_distance_pseudo_labels_of_five_slice_blocks_match_the_synthetic_tumours(tmp_path):
    """Mean Dice >= 0.85 over the inner slices with tumour, on synthetic cases with BraTS's 155 axial slices.

    (On the 32 slices of the built-in benchmark a tumour spans about 10 slices, and a 5-slice block a third of it.)
    """
    folder = write_brats(tmp_path / "brats", n_cases=3, shape=(48, 48, 155), tumour_fraction=1.0)
    data = BraTSDataModule(
        data_dir=str(folder),
        cache_dir=str(tmp_path / "cache"),
        skip_empty_slices=False,
        val_fraction=0.0,
        test_fraction=0.0,
    )
    data.setup()
    ids = data.labeled_ids() + data.unlabeled_ids()
    positions = {i: (m["case_id"], m["slice_index"]) for i, m in zip(ids, data.item_metadata(ids), strict=True)}
    dice = []
    for run in runs(positions):
        for start in range(0, len(run) - 4, 4):
            block = Block(tuple(run[start : start + 5]))
            truth = data.ground_truth(list(block.ids))
            derived = InterpolatedBlock(block, True, data.num_classes(), "signed_distance").derive(truth)
            assert all(derived[i].dtype == truth[i].dtype == torch.uint8 for i in block.inner)  # like training labels
            dice += [label_dice(derived[i], truth[i], 3, True) for i in block.inner if truth[i].any()]
    assert len(dice) > 20 and statistics.mean(dice) >= 0.85
