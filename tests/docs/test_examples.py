"""The Extending page's examples (docs/examples/*.py) run, and pass the conformance kit."""

from pathlib import Path

import pytest
import torch
from custom_dataset import NpyFolderDataModule, write_example_data
from custom_model import SmallUNet
from custom_strategy import MarginStrategy, margin_uncertainty
from test_conformance import test_alseg_contract  # noqa: F401  (collected here: the kit over the three examples)

from alseg.core import ConfigError, PluginError
from alseg.core.inference import stream_probabilities
from alseg.core.query_view import QueryView
from alseg.core.testing import InMemoryDataModule, TinySegmentationModel

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_is_shown_on_a_page(example):
    included = f'--8<-- "docs/examples/{example.name}"'
    assert any(included in page.read_text() for page in (ROOT / "docs").glob("*.md")), example.name


def test_margin_uncertainty_is_one_at_a_tie_and_zero_when_certain():
    softmax = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.7, 0.3]]).T[None, :, :, None]  # [1, 2, 3, 1]
    assert torch.allclose(margin_uncertainty(softmax, False)[0, :, 0], torch.tensor([1.0, 0.0, 0.6]))
    three = torch.tensor([0.5, 0.3, 0.2])[None, :, None]  # the two largest decide: 1 - (0.5 - 0.3)
    assert torch.allclose(margin_uncertainty(three, False), torch.tensor([[0.8]]))
    sigmoid = torch.tensor([[0.5, 1.0], [0.9, 0.1]])[None, :, :]  # channels [2] x voxels [2]
    assert torch.allclose(margin_uncertainty(sigmoid, True), torch.tensor([[0.6, 0.1]]))


def test_margin_strategy_selects_the_highest_scores():
    data = InMemoryDataModule(num_cases=4)
    model = TinySegmentationModel()
    model.bind_data(data)
    view = QueryView(data)
    scores = {}
    for batch, probabilities in stream_probabilities(model, view):
        for item_id, score in zip(
            batch["id"], margin_uncertainty(probabilities, False).flatten(1).mean(1), strict=True
        ):
            scores[item_id] = float(score)
    selected, pseudo = MarginStrategy().select_items_to_label(model, view, 3, seed=0)
    assert pseudo is None
    assert sorted(scores[i] for i in selected) == sorted(scores.values())[-3:]
    with pytest.raises(ConfigError, match="aggregation"):
        MarginStrategy(aggregation="median")


def test_npy_folder_splits_by_case_and_labels_from_the_pool(tmp_path):
    write_example_data(tmp_path)
    data = NpyFolderDataModule(str(tmp_path), seed=3)
    splits = [data.training_ids + data.pool_ids, data.val_ids, data.test_ids]
    cases = [{data.case_of(i) for i in ids} for ids in splits]
    assert all(not a & b for n, a in enumerate(cases) for b in cases[n + 1 :]), cases
    assert sum(map(len, splits)) == 36 and len(data.training_ids) == 4
    pool_item = data.unlabeled_dataloader().dataset[0]
    assert "label" not in pool_item and pool_item["image"].shape == (1, 32, 32)
    target = pool_item["id"]
    data.label_items([target])
    labelled = {item["id"]: item for item in data.train_dataloader().dataset}
    assert torch.equal(labelled[target]["label"], data.read_mask(target)) and not labelled[target]["pseudo_labeled"]
    with pytest.raises(PluginError):
        data.label_items([target])


def test_small_unet_outputs_one_channel_per_class():
    data = InMemoryDataModule(image_size=8)
    model = SmallUNet(channels=4)
    model.bind_data(data)
    model.eval()
    batch = next(iter(data.unlabeled_dataloader()))
    probabilities = model.predict_step(batch, 0)
    assert probabilities.shape == (len(batch["id"]), 2, 8, 8)
    assert torch.allclose(probabilities.sum(1), torch.ones(len(batch["id"]), 8, 8))
    assert model.embedding_step(batch, 0).shape == (len(batch["id"]), 8)
