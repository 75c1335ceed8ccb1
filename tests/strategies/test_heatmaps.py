"""Heatmaps of queried items: which files, the score map under the querying checkpoint, no effect on the ledger."""

import json

import numpy as np
import pytest
import torch

from alseg.core import ActiveLearningPipeline, ConfigError
from alseg.core.heatmaps import draw_heatmaps
from alseg.core.inference import Placement, batch_probabilities
from alseg.core.testing import InMemoryDataModule, SeededRandomStrategy, TinySegmentationModel
from alseg.strategies.bald import BALDStrategy
from alseg.strategies.entropy import EntropyStrategy


def pipeline(path, strategy=None, accelerator="cpu", **options):
    options = {"items_to_label": 3, "iterations": 2, "epochs": 1, "logger": False, **options}
    return ActiveLearningPipeline(
        InMemoryDataModule(),
        TinySegmentationModel(),
        strategy or EntropyStrategy(),
        path,
        trainer_options={"accelerator": accelerator, "devices": 1},
        **options,
    )


def ledger(path):
    records = [json.loads(line) for line in (path / "rounds.jsonl").read_text().splitlines()]
    for record in records:  # timings and paths differ between runs
        record.pop("timing_s"), record.pop("wall_time_s")
    return records


def drawn(path, round_index):
    return sorted(p.name for p in (path / "heatmaps" / f"round_{round_index:03d}").iterdir())


@pytest.mark.parametrize("strategy", [EntropyStrategy, lambda: BALDStrategy(mc_samples=2)], ids=["entropy", "bald"])
def test_files_of_the_first_n_selected_ids_and_same_ledger(tmp_path, strategy):
    pipeline(tmp_path / "plain", strategy()).run()
    pipeline(tmp_path / "drawn", strategy(), heatmaps_per_round=2).run()
    assert ledger(tmp_path / "plain") == ledger(tmp_path / "drawn")
    assert not (tmp_path / "plain" / "heatmaps").exists()
    for record in ledger(tmp_path / "drawn")[1:]:
        done = json.loads(
            (tmp_path / "drawn" / "heatmaps" / f"round_{record['round']:03d}" / "heatmaps.json").read_text()
        )
        assert done["ids"] == record["selected_ids"][:2]
        stems = [f"{n:02d}_{i.replace(':', '_')}" for n, i in enumerate(done["ids"], 1)]
        assert drawn(tmp_path / "drawn", record["round"]) == sorted([f"{s}.png" for s in stems] + ["heatmaps.json"])
    assert sorted(p.name for p in (tmp_path / "drawn" / "heatmaps").iterdir()) == ["round_001", "round_002"]


def test_score_map_is_the_strategys_under_the_querying_checkpoint(tmp_path):
    """The drawn map equals the strategy's voxel scores of the item under the previous round's best checkpoint."""
    from alseg.core import heatmaps

    captured = {}
    original = heatmaps.write_png

    def capture(path, maps, title, score_name, gradcam=None):
        captured[path.name] = (maps.scores, title)
        original(path, maps, title, score_name, gradcam)

    run = pipeline(tmp_path / "run", heatmaps_per_round=1, iterations=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(heatmaps, "write_png", capture)
        run.run()
    record = ledger(tmp_path / "run")
    item_id = record[1]["selected_ids"][0]
    data = InMemoryDataModule()
    data.setup()
    model = TinySegmentationModel()
    model.bind_data(data)
    model.load_state_dict(torch.load(tmp_path / "run" / record[0]["best_checkpoint"], weights_only=True)["state_dict"])
    item = next(data.item(i, False) for i in data.unlabeled_ids() if i == item_id)
    batch = {"image": item["image"][None], "id": [item_id]}
    expected = (
        EntropyStrategy()
        .voxel_scores(batch_probabilities(model, batch, Placement(torch.device("cpu"))), False)[0]
        .numpy()
    )
    scores, title = captured[f"01_{item_id.replace(':', '_')}.png"]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    assert record[0]["best_checkpoint"] in title


def test_resume_draws_nothing_twice_and_later_drawing(tmp_path):
    path = tmp_path / "run"
    pipeline(path, heatmaps_per_round=1, iterations=1).run()
    first = (path / "heatmaps" / "round_001" / "heatmaps.json").stat().st_mtime_ns
    pipeline(path, heatmaps_per_round=1, iterations=2).run()  # resumes: draws round 2 only
    assert (path / "heatmaps" / "round_001" / "heatmaps.json").stat().st_mtime_ns == first
    assert (path / "heatmaps" / "round_002" / "heatmaps.json").is_file()
    # Later, for a run made without heatmaps: the same run started again with the option draws its rounds.
    later = tmp_path / "later"
    pipeline(later, iterations=1).run()
    before = ledger(later)
    pipeline(later, iterations=1, heatmaps_per_round=3).run()
    assert ledger(later) == before and len(drawn(later, 1)) == 4
    # Or from Python, with a fresh data module (the selected ids are pool items again).
    plain = tmp_path / "plain"
    pipeline(plain, strategy=SeededRandomStrategy(), iterations=1).run()
    data, model = InMemoryDataModule(), TinySegmentationModel()
    data.setup()
    model.bind_data(data)
    assert draw_heatmaps(plain, data, model, SeededRandomStrategy(), 2) == [1]
    assert draw_heatmaps(plain, data, model, SeededRandomStrategy(), 2) == []
    done = json.loads((plain / "heatmaps" / "round_001" / "heatmaps.json").read_text())
    assert done["score"] is None and len(done["ids"]) == 2


def test_mc_samples_and_gradcam_on_cpu(tmp_path, monkeypatch):
    from alseg.core import heatmaps

    devices = []
    original = heatmaps.item_maps

    def spy(model, strategy, batch, *args, **kwargs):
        devices.append((next(model.parameters()).device.type, batch["image"].device.type))
        return original(model, strategy, batch, *args, **kwargs)

    monkeypatch.setattr(heatmaps, "item_maps", spy)
    path = tmp_path / "run"
    pipeline(path, BALDStrategy(mc_samples=3), heatmaps_per_round=1, iterations=1,
             heatmaps_gradcam_layer="encoder.0").run()  # fmt: skip
    assert devices == [("cpu", "cpu")]
    done = json.loads((path / "heatmaps" / "round_001" / "heatmaps.json").read_text())
    assert done["gradcam_layer"] == "encoder.0" and done["score"] == "bald score"


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"heatmaps_per_round": -1}, "heatmaps_per_round"),
        ({"heatmaps_per_round": 1, "heatmaps_gradcam_layer": "nope"}, "heatmaps_gradcam_layer"),
    ],
)
def test_bad_options(tmp_path, options, option):
    with pytest.raises(ConfigError, match=f"'{option}'") as error:
        pipeline(tmp_path / "run", **options).run()
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run" / "rounds.jsonl").exists()


@pytest.mark.gpu
def test_cuda_placement(tmp_path, monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from alseg.core import heatmaps

    devices = []
    original = heatmaps.item_maps

    def spy(model, strategy, batch, *args, **kwargs):
        devices.append(batch["image"].device.type)
        return original(model, strategy, batch, *args, **kwargs)

    monkeypatch.setattr(heatmaps, "item_maps", spy)
    pipeline(tmp_path / "run", accelerator="gpu", heatmaps_per_round=1, iterations=1).run()
    assert devices == ["cuda"]


def test_multi_label_maps_threshold_sigmoids_and_sum_binary_entropies():
    """Sigmoid outputs are thresholded per region (never softmaxed); the map is the sum of binary entropies."""
    from alseg.core.heatmap_maps import item_maps
    from alseg.strategies.scoring import binary_entropy

    data = InMemoryDataModule(multi_label=True)
    data.setup()
    model = TinySegmentationModel()
    model.bind_data(data)
    item_id = data.unlabeled_ids()[0]
    batch = {"image": data.item(item_id, False)["image"][None], "id": [item_id]}
    truth = data.ground_truth([item_id])[item_id]
    [maps] = item_maps(model, EntropyStrategy(), batch, [truth], True, 0, Placement(torch.device("cpu")))
    probabilities = batch_probabilities(model, batch, Placement(torch.device("cpu")))
    np.testing.assert_array_equal(maps.prediction, (probabilities[0] > 0.5).numpy())
    np.testing.assert_array_equal(maps.truth, (truth > 0.5).numpy())
    np.testing.assert_allclose(maps.scores, binary_entropy(probabilities)[0].numpy(), rtol=1e-6)
    assert maps.scores.dtype == np.float32 and maps.prediction.shape[0] == data.num_classes()
