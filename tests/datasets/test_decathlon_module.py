import json

import pytest
import torch

from alseg.core.errors import ConfigError, DataError
from alseg.core.testing import check_data_module
from alseg.datasets.decathlon import DecathlonDataModule
from alseg.datasets.items import parse_item_id
from alseg.datasets.labels import MSD_BRAIN_TUMOUR_REGIONS


@pytest.fixture
def make(msd6_dir, tmp_path):
    """Builds a set-up Decathlon module on the six-case fixture with a per-test cache."""

    def build(**options):
        options = {"data_dir": str(msd6_dir), "cache_dir": str(tmp_path / "cache"), **options}
        module = DecathlonDataModule(**{"initial_training_set_size": 4, **options})
        module.setup()
        return module

    return build


def _items(dataset):
    return [dataset[i] for i in range(len(dataset))]


def test_default_is_single_label_with_dataset_json_classes(make):
    module = make()
    assert not module.multi_label()
    assert module.id_to_class_names() == {0: "background", 1: "edema", 2: "non-enhancing tumor", 3: "enhancing tumour"}
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape[1:] == (4, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["label"].shape[1:] == (1, 16, 16) and batch["label"].dtype == torch.int64
    assert int(batch["label"].max()) <= 3 and module.data_channels() == 4


def test_regions_give_multilabel_targets(make):
    classes = make().val_dataloader().dataset
    regions = make(regions=MSD_BRAIN_TUMOUR_REGIONS)
    assert regions.multi_label() and regions.id_to_class_names() == {0: "TC", 1: "WT", 2: "ET"}
    for region_item, class_item in zip(_items(regions.val_dataloader().dataset), _items(classes), strict=True):
        label = class_item["label"][0]
        expected = torch.stack([(label == 2) | (label == 3), label > 0, label == 3]).to(torch.uint8)
        assert torch.equal(region_item["label"], expected)
    with pytest.raises(ConfigError, match="Region 'X'"):
        make(regions={"X": [7]})


def test_modalities_select_channels_in_order(make):
    default = make().val_dataloader().dataset[0]
    chosen = make(modalities=["t2w", "FLAIR"]).val_dataloader().dataset[0]
    assert torch.equal(chosen["image"], default["image"][[3, 0]])
    with pytest.raises(ConfigError, match="Unknown modality 'adc'"):
        make(modalities=["adc"])


def test_images_ts_is_never_a_split(make, msd6_dir):
    module = make(test_fraction=0.34)
    test_files = json.loads((msd6_dir / "dataset.json").read_text())["test"]
    unlabelled = {name.split("/")[-1].removesuffix(".nii.gz") for name in test_files}
    split = module.split
    assert len(split.train) + len(split.val) + len(split.test) == 6 and len(split.test) == 2
    assert not unlabelled & {*split.train, *split.val, *split.test}
    test_cases = {parse_item_id(i)[0] for i in module._prepared().sets.test}
    assert test_cases == set(split.test)


def test_volume_items(make):
    module = make(dim=3, patch_size=(8, 8, 8), initial_training_set_size=1)
    pool = next(iter(module.unlabeled_dataloader()))
    assert pool["id"] == pool["case_id"] and pool["image"].shape == (1, 4, 16, 16, 8) and "label" not in pool
    train = next(iter(module.train_dataloader()))
    assert train["image"].shape == (1, 4, 8, 8, 8) and train["label"].shape == (1, 1, 8, 8, 8)


@pytest.mark.parametrize("dim", [2, 3])
def test_conformance_kit(make, dim):
    check_data_module(lambda: make(dim=dim, patch_size=(8, 8, 8), initial_training_set_size=2))


def test_bad_input_surfaces_data_errors(msd6_dir, tmp_path):
    def setup(data_dir):
        DecathlonDataModule(data_dir=str(data_dir), cache_dir=str(tmp_path / "cache")).setup()

    with pytest.raises(DataError, match=r"no dataset\.json"):
        setup(tmp_path)
    (msd6_dir / "imagesTr" / "BRATS_004.nii.gz").unlink()
    with pytest.raises(DataError, match=r"Case BRATS_004: .*imagesTr/BRATS_004\.nii\.gz"):
        setup(msd6_dir)


def test_binary_label_mode_merges_foreground(make):
    classes = make().val_dataloader().dataset
    binary = make(label_mode="binary")
    assert not binary.multi_label() and binary.id_to_class_names() == {0: "background", 1: "foreground"}
    for binary_item, class_item in zip(_items(binary.val_dataloader().dataset), _items(classes), strict=True):
        assert torch.equal(binary_item["label"], (class_item["label"] > 0).to(torch.int64))
    assert any(item["label"].any() for item in _items(classes))
    with pytest.raises(ConfigError, match="needs the label mode 'multilabel'"):
        make(label_mode="binary", regions=MSD_BRAIN_TUMOUR_REGIONS)
