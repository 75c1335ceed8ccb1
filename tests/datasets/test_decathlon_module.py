import json

import nibabel as nib
import numpy as np
import pytest
import torch

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.decathlon import DecathlonDataModule
from alseg.datasets.items import parse_item_id
from alseg.datasets.labels import MSD_BRAIN_TUMOUR_REGIONS
from alseg.datasets.msd_layout import discover_decathlon
from alseg.datasets.volumes import read_case


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


def _ct_module(ct_dir, tmp_path, **options):
    options = {
        "dim": 3,
        "patch_size": (12, 12, 6),
        "val_cases": ["ct_3"],
        "test_cases": ["ct_4"],
        "initial_training_set_size": 3,
        **options,
    }
    module = DecathlonDataModule(data_dir=str(ct_dir), cache_dir=str(tmp_path / "cache"), **options)
    module.setup()
    return module


def _stored(ct_dir, case_id, folder="imagesTr"):
    return np.asarray(nib.load(ct_dir / folder / f"{case_id}.nii.gz").dataobj).astype(np.float64)


def _by_case(module):
    items = _items(module.train_dataloader().dataset) + _items(module.val_dataloader().dataset)
    return {item["case_id"]: item["image"][0].numpy() for item in items + _items(module.test_dataloader().dataset)}


def test_ct_is_clipped_and_z_scored_with_training_foreground_statistics(ct_dir, tmp_path):
    module = _ct_module(ct_dir, tmp_path)
    (stats,) = module._prepared().sets.reader.normalizer.ct
    training = np.concatenate([_stored(ct_dir, c)[_stored(ct_dir, c, "labelsTr") > 0] for c in module.split.train])
    assert training.size == 3 * 144 and training.max() == 3000
    # Statistics of a sample of the training cases' foreground: air, the 0 HU region and the brighter
    # validation/test organs never enter them, and the outlier voxel lies above the 99.5 percentile.
    assert abs(stats.mean - training.mean()) < 3 and abs(stats.std / training.std() - 1) < 0.15
    assert stats.lower == pytest.approx(np.percentile(training, 0.5), abs=15) and stats.lower < 0
    assert stats.upper == pytest.approx(np.percentile(training, 99.5), abs=15) and stats.upper < 3000
    images = _by_case(module)
    assert sorted(images) == [f"ct_{i}" for i in range(5)]
    for case_id, image in images.items():
        stored = _stored(ct_dir, case_id)
        expected = (np.clip(stored, stats.lower, stats.upper) - stats.mean) / stats.std
        np.testing.assert_allclose(image, expected, rtol=1e-5, atol=1e-5)
        water, air = image[stored == 0], image[stored == -1000]
        assert water.size >= 2 * 2 * 6 and air.size > 0
        np.testing.assert_allclose(water, -stats.mean / stats.std, rtol=1e-5)  # one value in every case
        np.testing.assert_allclose(air, (stats.lower - stats.mean) / stats.std, rtol=1e-5)  # clipped
        assert (water != 0).all() and (water != air[0]).all()  # 0 HU is neither a hole nor air
    outlier = images["ct_1"][_stored(ct_dir, "ct_1") == 3000]
    np.testing.assert_allclose(outlier, (stats.upper - stats.mean) / stats.std, rtol=1e-5)  # clipped


def test_forced_nonzero_zscore_on_ct_is_per_case_and_zeroes_0_hu(ct_dir, tmp_path):
    module = _ct_module(ct_dir, tmp_path, normalization="nonzero_zscore")
    assert module._prepared().sets.reader.normalizer.ct == (None,)
    for case_id, image in _by_case(module).items():
        stored = _stored(ct_dir, case_id)
        values = stored[stored != 0]
        np.testing.assert_allclose(image[stored != 0], (values - values.mean()) / values.std(), rtol=1e-4, atol=1e-5)
        assert (image[stored == 0] == 0).all()
    with pytest.raises(ConfigError, match=r"'normalization' .* one of auto, ct, nonzero_zscore\. Got 'CT'"):
        DecathlonDataModule(data_dir=str(ct_dir), normalization="CT")


def test_mri_task_is_z_scored_per_case_over_nonzero_voxels(make, msd6_dir):
    module = make(dim=3, patch_size=(16, 16, 8))
    assert module._prepared().sets.reader.normalizer.schemes == ("nonzero_zscore",) * 4
    for item in _items(module.val_dataloader().dataset) + _items(module.test_dataloader().dataset):
        case = next(c for c in discover_decathlon(msd6_dir) if c.case_id == item["case_id"])
        decoded = read_case(case, None).image
        for channel, stored in enumerate(decoded):
            brain = stored != 0
            values = stored[brain].astype(np.float64)
            normalised = item["image"][channel].numpy()
            np.testing.assert_allclose(normalised[brain], (values - values.mean()) / values.std(), rtol=1e-4, atol=1e-5)
            assert (normalised[~brain] == 0).all()
