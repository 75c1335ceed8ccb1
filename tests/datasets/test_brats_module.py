import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from alseg.core import ActiveLearningPipeline
from alseg.core.errors import ConfigError, DataError, PluginError
from alseg.core.testing import SeededRandomStrategy, TinySegmentationModel
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.brats_layout import discover_brats
from alseg.datasets.items import parse_item_id, read_item_label
from alseg.datasets.synthetic import SyntheticBraTS
from alseg.datasets.volume_data_module import cache_root


@pytest.fixture
def make(brats6_dir, tmp_path):
    """Builds a set-up BraTS module on the six-case fixture with a per-test cache."""

    def build(**options):
        options = {"data_dir": str(brats6_dir), "cache_dir": str(tmp_path / "cache"), **options}
        module = BraTSDataModule(**{"initial_training_set_size": 4, **options})
        module.setup()
        return module

    return build


def _items(dataset):
    return [dataset[i] for i in range(len(dataset))]


def test_slice_items_have_ids_shapes_and_metadata(make):
    module = make()
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape[1:] == (4, 16, 16)
    assert batch["label"].dtype == torch.uint8 and batch["label"].shape[1:] == (3, 16, 16)
    assert not batch["pseudo_labeled"].any()
    for item_id, case_id, index in zip(batch["id"], batch["case_id"], batch["slice_index"].tolist(), strict=True):
        assert item_id == f"{case_id}:{index}"
    assert torch.equal(batch["spacing"][0], torch.tensor([1.0, 1.0, 1.5]))  # in-plane, then between slices
    sagittal = make(axis=0).train_dataloader().dataset[0]
    assert sagittal["image"].shape == (4, 16, 8) and torch.equal(sagittal["spacing"], torch.tensor([1.0, 1.5, 1.0]))
    assert module.data_channels() == 4 and module.multi_label()
    assert module.id_to_class_names() == {0: "TC", 1: "WT", 2: "ET"}


def test_channel_order_follows_modalities(make):
    default = make().val_dataloader().dataset[0]
    chosen = make(modalities=["t1c", "flair"]).val_dataloader().dataset[0]  # 2023 name of t1ce
    assert chosen["id"] == default["id"]
    assert torch.equal(chosen["image"], default["image"][[2, 0]])


def test_multilabel_regions_match_multiclass_classes(make):
    regions = make().val_dataloader().dataset
    classes = make(label_mode="multiclass").val_dataloader().dataset
    assert classes.reader.multilabel is False
    for region_item, class_item in zip(_items(regions), _items(classes), strict=True):
        label = class_item["label"]
        assert label.dtype == torch.int64 and label.shape == (1, 16, 16)
        necrotic, edema, enhancing = label[0] == 1, label[0] == 2, label[0] == 3
        expected = torch.stack([necrotic | enhancing, necrotic | edema | enhancing, enhancing]).to(torch.uint8)
        assert torch.equal(region_item["label"], expected)
    assert any(item["label"].any() for item in _items(regions))
    binary = make(label_mode="binary")
    assert binary.id_to_class_names() == {0: "background", 1: "foreground"} and not binary.multi_label()
    for binary_item, region_item in zip(_items(binary.val_dataloader().dataset), _items(regions), strict=True):
        assert torch.equal(binary_item["label"], region_item["label"][1:2].to(torch.int64))  # WT = every label


def test_pool_never_yields_labels(make):
    module = make()
    for batch in module.unlabeled_dataloader():
        assert "label" not in batch and "pseudo_labeled" not in batch
    val = next(iter(module.val_dataloader()))
    assert "label" in val and "pseudo_labeled" not in val


def test_volume_items_and_training_patches(make):
    module = make(dim=3, patch_size=(8, 8, 4), initial_training_set_size=2)
    assert module.unlabeled_ids() == [c for c in module.split.train if c not in module._prepared().sets.train]
    pool = next(iter(module.unlabeled_dataloader()))
    assert pool["image"].shape == (1, 4, 16, 16, 8) and "slice_index" not in pool  # metrics must not gather it
    assert torch.equal(pool["spacing"][0], torch.tensor([1.0, 1.0, 1.5]))
    train = next(iter(module.train_dataloader()))
    assert train["image"].shape == (2, 4, 8, 8, 4) and train["label"].shape == (2, 3, 8, 8, 4)
    val = next(iter(module.val_dataloader()))
    assert val["image"].shape == (1, 4, 16, 16, 8) and val["label"].shape == (1, 3, 16, 16, 8)
    labelled = [batch["id"][0] for batch in module.labeled_dataloader()]  # whole volumes, in training-set order
    assert labelled == module._prepared().sets.train
    assert next(iter(module.labeled_dataloader()))["image"].shape == (1, 4, 16, 16, 8)


def test_patches_are_padded_and_foreground_centred(make):
    module = make(dim=3, patch_size=(4, 4, 16), foreground_patch_probability=1.0, initial_training_set_size=4)
    dataset = module.train_dataloader().dataset
    for _ in range(3):
        for item in _items(dataset):
            assert item["image"].shape == (4, 4, 4, 16)  # z padded from 8 to 16
            assert item["label"].any()  # every fixture case has a tumour
            assert not item["image"][:, :, :, 12:].any()  # padding is zero


def test_label_items_moves_ids_in_order(make):
    module = make()
    pool, train = module.unlabeled_ids(), module._prepared().sets.train.copy()
    chosen = [pool[3], pool[0]]
    module.label_items(chosen)
    assert module._prepared().sets.train == [*train, *chosen]
    assert module.unlabeled_ids() == [i for i in pool if i not in chosen]
    dataset = module.train_dataloader().dataset
    assert [dataset[i]["id"] for i in range(len(dataset))][-2:] == chosen
    assert module.training_set_num_pseudo_labels() == 0
    with pytest.raises(PluginError, match=chosen[0]):
        module.label_items([chosen[0]])
    with pytest.raises(PluginError, match="no-such"):
        module.label_items(["no-such:1"])
    assert module.unlabeled_ids() == [i for i in pool if i not in chosen]


def test_pseudo_labels_replace_ground_truth_and_are_flagged(make):
    module = make()
    with_tumour = [
        i
        for i, fg in zip(module.unlabeled_ids(), module.items_with_foreground(module.unlabeled_ids()), strict=True)
        if fg
    ]
    target = with_tumour[0]
    with pytest.raises(PluginError, match="shape"):
        module.label_items([], {target: np.zeros((1, 16, 16))})
    with pytest.raises(PluginError, match="values"):
        module.label_items([], {target: np.full((3, 16, 16), 0.5)})
    assert target in module.unlabeled_ids()  # nothing moved on error
    module.label_items([], {target: torch.zeros(3, 16, 16)})
    item = next(i for i in _items(module.train_dataloader().dataset) if i["id"] == target)
    assert item["pseudo_labeled"] and item["label"].dtype == torch.uint8 and not item["label"].any()
    assert module.training_set_num_pseudo_labels() == 1 and target not in module.unlabeled_ids()
    batch = next(iter(torch.utils.data.DataLoader(module.train_dataloader().dataset, batch_size=32)))
    assert batch["pseudo_labeled"].sum() == 1  # pseudo and true labels collate together


def test_items_with_foreground_reads_cached_metadata(make):
    module = make()
    ids = module.unlabeled_ids()
    truth = [bool(read_item_label(module.volume_cache, i).any()) for i in ids]
    assert module.items_with_foreground(ids) == truth and any(truth) and not all(truth)
    with pytest.raises(PluginError, match="nope"):
        module.items_with_foreground(["nope"])


@pytest.mark.parametrize("label_mode", ["multilabel", "multiclass"])
def test_annotation_cost_counts_slices_voxels_and_ground_truth_foreground(make, label_mode):
    slices, volumes = make(label_mode=label_mode), make(label_mode=label_mode, dim=3, initial_training_set_size=1)
    ids = slices.unlabeled_ids()[:7]
    labels = [read_item_label(slices.volume_cache, i) for i in ids]  # [R, H, W] regions or [H, W] classes
    foreground = sum(int((label.reshape(-1, 16 * 16) > 0).any(0).sum()) for label in labels)
    assert slices.annotation_cost(ids) == {
        "items": 7,
        "slices": 7,
        "voxels": 7 * 16 * 16,
        "foreground_voxels": foreground,
        "new_voxels": 7 * 16 * 16,  # slices never overlap
        "labelled_fraction": 7 * 16 * 16 / (len(slices.split.train) * 16 * 16 * 8),
    }
    case = volumes.unlabeled_ids()[0]
    regions = read_item_label(volumes.volume_cache, case)
    cost = volumes.annotation_cost([case])
    assert (cost["items"], cost["slices"], cost["voxels"]) == (1, 8, 16 * 16 * 8)
    assert cost["foreground_voxels"] == int((regions.reshape(-1, 16, 16, 8) > 0).any(0).sum()) > 0
    assert slices.labeled_ids() == slices._prepared().sets.train
    with pytest.raises(PluginError, match="nope"):
        slices.annotation_cost(["nope"])


def test_second_epoch_and_second_module_decode_nothing(make, monkeypatch):
    module = make()
    assert module.volume_cache.decodes == 6
    loads = []
    original = nib.load
    monkeypatch.setattr(nib, "load", lambda *a, **k: loads.append(a) or original(*a, **k))
    for _ in range(2):
        assert sum(len(batch["id"]) for batch in module.train_dataloader()) == module.training_set_size()
        assert sum(len(batch["id"]) for batch in module.unlabeled_dataloader()) == module.unlabeled_set_size()
    again = make()
    assert loads == [] and again.volume_cache.decodes == 0


def test_initial_set_is_seeded_and_label_blind_by_default(make):
    first, same, other = (make(seed=s)._prepared().sets.train for s in (1, 1, 2))
    assert first == same and first != other and len(first) == 4
    module = make(seed=1, initial_set_from_foreground_only=True, initial_training_set_size=6)
    assert all(module.items_with_foreground(module._prepared().sets.train))
    with pytest.raises(ConfigError, match="initial_training_set_size"):
        make(initial_training_set_size=1000)


def test_split_is_by_case(make):
    module = make()
    sets = module._prepared().sets
    cases = {name: {parse_item_id(i)[0] for i in ids} for name, ids in vars(sets).items() if isinstance(ids, list)}
    assert cases["train"] | cases["pool"] == set(module.split.train)
    assert (len(module.split.train), len(module.split.val), len(module.split.test)) == (4, 1, 1)
    assert not (set(module.split.train) & cases["val"]) and not (cases["val"] & cases["test"])
    listed = make(val_cases=["BraTS2021_00000", "BraTS2021_00001"], test_cases=["BraTS2021_00002"])
    assert listed.split.val == ("BraTS2021_00000", "BraTS2021_00001") and listed.split.test == ("BraTS2021_00002",)
    assert make(split_seed=5).split != module.split
    with pytest.raises(ConfigError, match="BraTS2021_00099"):
        make(val_cases=["BraTS2021_00099"])


@pytest.mark.parametrize("split_seed", range(4))
def test_2023_split_keeps_the_timepoints_of_a_patient_together(brats2023_timepoints_dir, tmp_path, split_seed):
    module = BraTSDataModule(
        data_dir=str(brats2023_timepoints_dir), cache_dir=str(tmp_path / "cache"), split_seed=split_seed
    )
    module.setup()
    patient = {case.case_id: case.patient_id for case in module.source().cases}
    split = module.split
    assert len(split.train) + len(split.val) + len(split.test) == len(patient) == 9
    patients = [{patient[case] for case in cases} for cases in (split.train, split.val, split.test)]
    assert len(patients[1]) == len(patients[2]) == 1  # round(0.2 x 5 patients)
    for group, cases in zip(patients, (split.train, split.val, split.test), strict=True):
        assert set(cases) == {case for case in patient if patient[case] in group}


def test_skip_empty_slices_uses_the_image(make):
    skipped, everything = make(initial_training_set_size=0), make(skip_empty_slices=False, initial_training_set_size=0)
    assert len(everything.unlabeled_ids()) == 4 * 8 > len(skipped.unlabeled_ids())
    assert all(item["image"].any() for item in _items(skipped.unlabeled_dataloader().dataset))


def test_bad_input_surfaces_data_errors(brats6_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    for data_dir, message in ((tmp_path / "empty", "no case folders"), (tmp_path / "missing", "does not exist")):
        with pytest.raises(DataError, match=message):
            BraTSDataModule(data_dir=str(data_dir), cache_dir=str(tmp_path / "cache")).setup()
    (brats6_dir / "BraTS2021_00003" / "BraTS2021_00003_t1ce.nii.gz").unlink()
    with pytest.raises(DataError, match=r"BraTS2021_00003: missing modality file BraTS2021_00003_t1ce\.nii\.gz"):
        BraTSDataModule(data_dir=str(brats6_dir), cache_dir=str(tmp_path / "cache")).setup()
    with pytest.raises(ConfigError, match="dim"):
        BraTSDataModule(dim=4)
    with pytest.raises(ConfigError, match="label mode"):
        BraTSDataModule(label_mode="softmax")


def test_no_data_dir_builds_the_synthetic_benchmark_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ALSEG_CACHE", str(tmp_path / "env"))
    assert cache_root(None) == tmp_path / "env" and cache_root("~/x") != tmp_path / "env"
    module = BraTSDataModule(cache_dir=str(tmp_path / "root"))
    module.setup()
    assert module.source().data_dir.parent == tmp_path / "root" / "synthetic"
    assert (len(module.split.train), len(module.split.val), len(module.split.test)) == (8, 2, 2)
    assert module.training_set_size() == 16 and next(iter(module.val_dataloader()))["image"].shape[1:] == (4, 48, 48)
    again = BraTSDataModule(cache_dir=str(tmp_path / "root"))
    again.setup()
    assert again.volume_cache.decodes == 0 and again.unlabeled_ids() == module.unlabeled_ids()


def test_short_pipeline_run(make, tmp_path):
    module = make(batch_size=8)
    pipeline = ActiveLearningPipeline(
        module,
        TinySegmentationModel(),
        SeededRandomStrategy(),
        tmp_path / "run",
        items_to_label=3,
        iterations=1,
        epochs=1,
        trainer_options={"accelerator": "cpu"},
        logger=False,
    )
    summary = pipeline.run()
    assert summary["rounds"] == 2 and summary["num_labeled"] == 4 + 3
    assert "test/loss" in summary["test_metrics"]
    last = json.loads((tmp_path / "run" / "rounds.jsonl").read_text().splitlines()[-1])
    assert last["selected_with_foreground"] == sum(module.items_with_foreground(last["selected_ids"]))
    assert last["annotation_cost"] == module.annotation_cost(module.labeled_ids())  # every label is an oracle's


def test_data_fingerprint_follows_content_split_and_normalization(make, brats6_dir, tmp_path, replace_keeping_mtime):
    first, second = make(), make()
    fingerprint = first.data_fingerprint()
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0
    assert second.data_fingerprint() == fingerprint and second.volume_cache.decodes == 0
    assert make(seed=3).data_fingerprint() == fingerprint  # the initial set is the run's, not the data's
    assert make(normalization="ct").data_fingerprint() != fingerprint
    assert make(split_seed=5).data_fingerprint() != fingerprint
    assert make(label_mode="multiclass").data_fingerprint() != fingerprint
    moved = tmp_path / "moved"
    shutil.copytree(brats6_dir, moved)
    assert make(data_dir=str(moved)).data_fingerprint() == fingerprint  # content, not location
    cases = discover_brats(brats6_dir)
    replace_keeping_mtime(cases[0].label, cases[1].label)
    changed = make()
    assert changed.data_fingerprint() != fingerprint and changed.volume_cache.decodes == 1


def test_normalization_change_decodes_nothing(make):
    assert make().volume_cache.decodes == 6
    module = make(normalization="ct")
    assert module.volume_cache.decodes == 0
    assert module._prepared().sets.reader.normalizer.schemes == ("ct",) * 4
    with pytest.raises(ConfigError, match=r"'normalization' .* Got 'zscore'"):
        BraTSDataModule(normalization="zscore")


def test_synthetic_options_choose_the_generated_data_from_a_config(tmp_path):
    from alseg.core.cli import build_pipeline

    config = tmp_path / "config.yaml"
    config.write_text(
        "data:\n  class_path: brats\n  init_args:\n"
        f"    cache_dir: {tmp_path / 'cache'}\n    val_fraction: 0.4\n    test_fraction: 0.4\n"
        "    initial_training_set_size: 2\n    synthetic: {cases: 5, shape: [16, 16, 8], tumour_fraction: 1.0}\n"
    )
    module = build_pipeline(["--config", str(config), "--output_dir", str(tmp_path / "run")]).data_module
    module.setup()
    assert sum(map(len, (module.split.train, module.split.val, module.split.test))) == 5
    assert module.synthetic == SyntheticBraTS(cases=5, shape=(16, 16, 8), tumour_fraction=1.0)
    assert module.source().cases[0].case_id.startswith("BraTS2021_")
    with pytest.raises(ConfigError, match=r"'synthetic' option .* without a 'data_dir'"):
        BraTSDataModule(data_dir=str(tmp_path), synthetic=SyntheticBraTS(cases=5))
