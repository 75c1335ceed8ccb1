"""The generic 2D image-folder data module: file matching, class maps, resizing, split, oracle and bad input."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from alseg.core.errors import ConfigError, DataError, PluginError
from alseg.core.partial_labels import UNKNOWN
from alseg.datasets.image_files import ImagePair
from alseg.datasets.image_folder import ImageFolderDataModule
from alseg.datasets.image_normalization import IMAGENET_MEAN, IMAGENET_STD

CLASSES = {0: "background", 1: "tumor", 2: "stroma"}
SIZE = (12, 16)


def write_pair(root, stem, image, mask, image_ext=".png", mask_ext=".png"):
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{stem}{image_ext}")
    Image.fromarray(mask).save(root / "masks" / f"{stem}{mask_ext}")


def write_folder(root, n=8, size=SIZE, values=(0, 1, 2), seed=0):
    """``n`` random RGB images ``img0`` ... with random masks of ``values``; ``img0``'s mask is all background."""
    rng = np.random.default_rng(seed)
    for index in range(n):
        mask = rng.choice(values, size).astype(np.uint8) if index else np.zeros(size, np.uint8)
        write_pair(root, f"img{index}", rng.integers(0, 256, (*size, 3), dtype=np.uint8), mask)
    return root


def make(data_dir, **options):
    options = {"classes": CLASSES, "initial_training_set_size": 2, **options}
    module = ImageFolderDataModule(str(data_dir), **options)
    module.setup()
    return module


def items(dataset):
    return [dataset[i] for i in range(len(dataset))]


def raw(data_dir, folder, stem):
    return np.asarray(Image.open(next((data_dir / folder).glob(f"{stem}.*"))))


def test_items_are_images_with_class_labels_and_the_pool_has_none(tmp_path):
    data = write_folder(tmp_path / "data")
    module = make(data)
    split = module.case_split()
    assert (len(split.train), len(split.val), len(split.test)) == (4, 2, 2) and not module.multi_label()
    assert sorted(split.train + split.val + split.test) == [f"img{i}" for i in range(8)]
    assert module.data_channels() == 3 and module.id_to_class_names() == CLASSES
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape[1:] == (3, *SIZE)
    assert batch["label"].dtype == torch.int64 and batch["label"].shape[1:] == (1, *SIZE)
    assert batch["id"] == batch["case_id"] and not batch["pseudo_labeled"].any() and "slice_index" not in batch
    for item in items(module.val_dataloader().dataset):
        assert np.array_equal(item["label"][0].numpy(), raw(data, "masks", item["id"]))
    pool = items(module.unlabeled_dataloader().dataset)
    assert [item["id"] for item in pool] == module.unlabeled_ids() and all("label" not in item for item in pool)


def test_training_normalisation_uses_the_training_split_only(tmp_path):
    data = write_folder(tmp_path / "data")
    module = make(data)
    train = np.stack([raw(data, "images", stem) for stem in module.case_split().train]).astype(np.float64)
    mean, std = train.mean((0, 1, 2)), train.std((0, 1, 2))
    served = torch.stack([item["image"] for item in items(module.unlabeled_dataloader().dataset)])
    assert served.shape[0] == 2
    for item in items(module.test_dataloader().dataset):  # test images with the training statistics
        expected = (raw(data, "images", item["id"]).transpose(2, 0, 1) - mean[:, None, None]) / std[:, None, None]
        np.testing.assert_allclose(item["image"].numpy(), expected, atol=1e-4)
    imagenet = make(data, normalization="imagenet").val_dataloader().dataset[0]
    expected = (raw(data, "images", imagenet["id"]) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(imagenet["image"].numpy(), expected.transpose(2, 0, 1), atol=1e-5)
    with pytest.raises(ConfigError, match=r"'normalization' option .* training, imagenet\. Got 'zscore'"):
        make(data, normalization="zscore")


def test_images_and_masks_match_by_stem_whatever_the_extension(tmp_path):
    data = write_folder(tmp_path / "data", n=5)
    image = raw(data, "images", "img3")
    (data / "images" / "img3.png").unlink()
    Image.fromarray(image).save(data / "images" / "img3.tif")
    (data / "images" / "notes.txt").write_text("not an image")
    shutil.copy(data / "images" / "img1.png", data / "images" / ".img9.png")  # hidden: passed over
    module = make(data, val_fraction=0.0, test_fraction=0.0)
    assert sorted(module.labeled_ids() + module.unlabeled_ids()) == [f"img{i}" for i in range(5)]
    served = items(module.unlabeled_dataloader().dataset) + items(module.train_dataloader().dataset)
    item = next(i for i in served if i["id"] == "img3")
    assert item["image"].shape == (3, *SIZE) and np.array_equal(
        module._item_sets().reader.decoded["img3"].image, image.transpose(2, 0, 1)
    )


def test_unmatched_images_and_masks_are_listed(tmp_path):
    data = write_folder(tmp_path / "data", n=4)
    (data / "masks" / "img1.png").rename(data / "masks" / "img1_mask.png")
    shutil.copy(data / "images" / "img2.png", data / "images" / "extra.png")
    message = r"images without a mask in .*masks: extra\.png, img1\.png; masks without an image in .*: img1_mask\.png"
    with pytest.raises(DataError, match=message):
        make(data)
    shutil.copy(data / "images" / "img2.png", data / "images" / "img2.tif")
    with pytest.raises(DataError, match=r"img2\.png and img2\.tif share the stem 'img2'"):
        make(data)
    shutil.rmtree(data / "masks")
    with pytest.raises(DataError, match="has no masks/ folder"):
        make(data)


def test_class_map_merges_values_and_orders_classes_by_their_smallest_value(tmp_path):
    mask = np.array([[0, 1, 2, 5], [7, 7, 5, 9]], np.uint8).repeat(4, 0).repeat(4, 1)
    for stem in ("a", "b", "c"):
        write_pair(tmp_path, stem, np.zeros((*mask.shape, 3), np.uint8), mask)
    classes = {7: "other", 5: "other", 2: "stroma", 0: "background", 1: "tumor"}  # any key order
    module = make(tmp_path, classes=classes, ignore=[9], val_fraction=0.0, test_fraction=0.0)
    assert module.id_to_class_names() == {0: "background", 1: "tumor", 2: "stroma", 3: "other"}
    label = module.train_dataloader().dataset[0]["label"][0].numpy()
    expected = np.array([[0, 1, 2, 3], [3, 3, 3, UNKNOWN]]).repeat(4, 0).repeat(4, 1)  # 9 ignored: unknown
    assert np.array_equal(label, expected)
    assert module.annotation_cost(["a"]) == {"items": 1, "slices": 1, "voxels": 128, "foreground_voxels": 96}
    assert module.ground_truth(["a"])["a"][0].numpy().tolist() == expected.tolist()
    with pytest.raises(DataError, match=r"label file .*masks/a\.png holds values \[9\] outside the declared labels"):
        make(tmp_path, classes=classes)


@pytest.mark.parametrize(
    ("classes", "ignore", "message"),
    [
        ({0: "background"}, None, "at least two classes"),
        ({0: "background", 1: "tumor"}, [1], r"Mask values \[1\] are both in the 'classes' and in the 'ignore'"),
        ({"zero": "background", 1: "tumor"}, None, "integers in"),
        ({-1: "background", 1: "tumor"}, None, "integers in"),
        ({0: "background", 1: ""}, None, "class names are non-empty"),
        ({}, None, "must map mask values to class names"),
    ],
)
def test_bad_class_maps_are_config_errors(tmp_path, classes, ignore, message):
    with pytest.raises(ConfigError, match=message):
        ImageFolderDataModule(str(tmp_path), classes, ignore)


def test_resizing_is_bilinear_for_images_and_nearest_for_masks(tmp_path):
    data = write_folder(tmp_path / "data", n=6)
    module = make(data, image_size=(8, 10))
    item = module.val_dataloader().dataset[0]
    assert item["image"].shape == (3, 8, 10) and item["label"].shape == (1, 8, 10)
    nearest = Image.fromarray(raw(data, "masks", item["id"])).resize((10, 8), Image.Resampling.NEAREST)
    assert np.array_equal(item["label"][0].numpy(), np.asarray(nearest))
    reader = module._item_sets().reader
    bilinear = Image.fromarray(raw(data, "images", item["id"])).resize((10, 8), Image.Resampling.BILINEAR)
    assert np.array_equal(reader.decoded[item["id"]].image, np.asarray(bilinear).transpose(2, 0, 1))
    with pytest.raises(ConfigError, match="'image_size' option must be two positive integers"):
        make(data, image_size=(8, 0))


def test_images_of_different_sizes_need_resizing_or_batches_of_one(tmp_path):
    data = write_folder(tmp_path / "data", n=5)
    write_pair(data, "wide", np.zeros((12, 20, 3), np.uint8), np.ones((12, 20), np.uint8))
    with pytest.raises(ConfigError, match=r"differ in size .*set 'image_size', or 'batch_size' and 'pool_batch_size'"):
        make(data)
    assert len(make(data, image_size=(12, 16)).unlabeled_ids()) == 2
    single = make(data, batch_size=1, val_fraction=0.0, test_fraction=0.0, initial_training_set_size=6)
    assert sorted(tuple(b["image"].shape[2:]) for b in single.train_dataloader()) == [(12, 16)] * 5 + [(12, 20)]


def test_grayscale_folders_take_channels_1(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(5):
        write_pair(tmp_path, f"g{index}", rng.integers(0, 256, SIZE, dtype=np.uint8), np.ones(SIZE, np.uint8))
    module = make(tmp_path, channels=1)
    assert module.data_channels() == 1 and module.train_dataloader().dataset[0]["image"].shape == (1, *SIZE)
    with pytest.raises(ConfigError, match="'imagenet' normalization is for RGB images"):
        make(tmp_path, channels=1, normalization="imagenet")
    with pytest.raises(DataError, match=r"Image .*images/g0\.png: a grayscale image \(mode L, 1 channel\), but RGB"):
        make(tmp_path)


def test_bad_files_are_data_errors_naming_the_file(tmp_path):
    data = write_folder(tmp_path / "data", n=4)
    Image.fromarray(np.zeros((*SIZE, 4), np.uint8)).save(data / "images" / "img2.png")  # RGBA
    with pytest.raises(DataError, match=r"images/img2\.png: an image \(mode RGBA, 4 channels\), but RGB images"):
        make(data)
    write_pair(data, "img2", np.zeros((*SIZE, 3), np.uint8), np.zeros((10, 16), np.uint8))
    with pytest.raises(DataError, match=r"img2\.png is 12 x 16 .* but its mask .*masks/img2\.png is 10 x 16"):
        make(data)
    write_pair(data, "img2", np.zeros((*SIZE, 3), np.uint8), np.zeros((*SIZE, 3), np.uint8))
    with pytest.raises(DataError, match=r"Mask .*masks/img2\.png: mode RGB, 3 channels; masks must be single-channel"):
        make(data)
    (data / "masks" / "img2.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"Mask .*masks/img2\.png cannot be read as an image"):
        make(data)


class Grouped(ImageFolderDataModule):
    """Images ``<case>_<n>`` grouped into cases by the part before the underscore."""

    def case_of(self, pair: ImagePair) -> str:
        return pair.stem.split("_")[0]


def test_split_is_seeded_and_keeps_the_images_of_a_case_together(tmp_path):
    for case in range(10):
        for tile in range(2):
            write_pair(tmp_path, f"c{case}_{tile}", np.zeros((*SIZE, 3), np.uint8), np.ones(SIZE, np.uint8))

    def split(seed):
        module = Grouped(str(tmp_path), CLASSES, split_seed=seed, initial_training_set_size=2)
        return module.case_split()

    first = split(0)
    assert len(first.val) == len(first.test) == 4 and len(first.train) == 12  # 2 of 10 cases each: 4 images
    cases = [{stem.split("_")[0] for stem in stems} for stems in (first.train, first.val, first.test)]
    assert sum(len(c) for c in cases) == 10 and not (cases[0] & cases[1] or cases[0] & cases[2] or cases[1] & cases[2])
    assert split(0) == first and split(1) != first


def test_initial_set_is_seeded_and_label_items_moves_ids(tmp_path):
    data = write_folder(tmp_path / "data", n=10)
    module = make(data, initial_training_set_size=3)
    assert make(data, initial_training_set_size=3).labeled_ids() == module.labeled_ids()
    assert make(data, initial_training_set_size=3, seed=5).labeled_ids() != module.labeled_ids()
    pool = module.unlabeled_ids()
    module.label_items([pool[2], pool[0]])
    assert module.labeled_ids()[-2:] == [pool[2], pool[0]] and module.unlabeled_ids() == [pool[1], *pool[3:]]
    with pytest.raises(PluginError, match="not in the unlabelled pool"):
        module.label_items([pool[0]])
    with pytest.raises(ConfigError, match=r"'initial_training_set_size' .* between 0 and the 6 candidate"):
        make(data, initial_training_set_size=7)


def test_pseudo_labels_are_checked_used_and_flagged(tmp_path):
    module = make(write_folder(tmp_path / "data", n=10))
    target = module.unlabeled_ids()[0]
    with pytest.raises(PluginError, match=r"must have shape \(1, 12, 16\)"):
        module.label_items([], {target: np.zeros(SIZE)})
    with pytest.raises(PluginError, match=r"only the values \[0, 1, 2\]"):
        module.label_items([], {target: np.full((1, *SIZE), 3)})
    assert target in module.unlabeled_ids()
    pseudo = torch.full((1, *SIZE), 2)
    module.label_items([], {target: pseudo})
    item = next(i for i in items(module.train_dataloader().dataset) if i["id"] == target)
    assert item["pseudo_labeled"] and torch.equal(item["label"], pseudo)
    assert module.training_set_num_pseudo_labels() == 1 and target not in module.unlabeled_ids()


def test_annotation_cost_and_foreground_come_from_the_masks(tmp_path):
    data = write_folder(tmp_path / "data", n=6)
    module = make(data)
    ids = ["img0", "img1", "img3"]
    foreground = sum(int(np.count_nonzero(raw(data, "masks", stem))) for stem in ids)
    assert module.annotation_cost(ids) == {
        "items": 3,
        "slices": 3,
        "voxels": 3 * 12 * 16,
        "foreground_voxels": foreground,
    }
    assert module.items_with_foreground(ids) == [False, True, True]
    with pytest.raises(PluginError, match="unknown ids"):
        module.annotation_cost(["nope"])


def test_data_fingerprint_follows_content_split_and_options_not_paths(tmp_path):
    data = write_folder(tmp_path / "data", n=6)
    fingerprint = make(data).data_fingerprint()
    assert make(shutil.copytree(data, tmp_path / "moved")).data_fingerprint() == fingerprint
    for options in ({"image_size": (8, 8)}, {"split_seed": 1}, {"classes": {0: "bg", 1: "tumor", 2: "tumor"}}):
        assert make(data, **options).data_fingerprint() != fingerprint
    mask = raw(data, "masks", "img4").copy()
    mask[0, 0] = 2 if mask[0, 0] != 2 else 1
    Image.fromarray(mask).save(data / "masks" / "img4.png")
    assert make(data).data_fingerprint() != fingerprint


def test_alseg_train_takes_a_class_map_from_the_command_line(tmp_path, alseg_train):
    data = write_folder(tmp_path / "data", n=10)
    classes = '{"0": "background", "1": "tumor", "2": "stroma"}'
    records = alseg_train(
        tmp_path / "run", ["--data", "image_folder", "--data.data_dir", str(data)], "--data.classes", classes
    )
    assert {"val/dice_tumor", "val/dice_stroma"} <= set(records[-1]["metrics"]) and len(
        records[-1]["selected_ids"]
    ) == 2
