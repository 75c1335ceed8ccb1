"""Crop-first training patches: the window the sampler draws, what reading only that window gives (against a crop
of the whole padded volume), the foreground share, seeding, and patches of partially labelled volumes."""

import numpy as np
import pytest
import torch
from monai.transforms import SpatialCrop, SpatialPad

from alseg.core.partial_labels import UNKNOWN
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.patch_items import parse_patch_id
from alseg.datasets.patches import PatchSampler, Window, crop, foreground_indices


def _reference(volume: np.ndarray, window: Window, patch: tuple[int, int, int]) -> np.ndarray:
    """The window cut from the whole volume after MONAI's symmetric zero padding, at the window's centre."""
    padded = SpatialPad(patch)(torch.as_tensor(volume))
    before = [width[0] for width in SpatialPad(patch).compute_pad_width(volume.shape[-3:])[1:]]
    centre = [s + b + n // 2 for s, b, n in zip(window.start, before, patch, strict=True)]
    return np.asarray(SpatialCrop(roi_center=centre, roi_size=patch)(padded))


def _centre(window: Window) -> tuple[int, ...]:
    return tuple(s + n // 2 for s, n in zip(window.start, window.size, strict=True))


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_a_crop_equals_the_crop_of_the_whole_padded_volume_at_its_centre(probability):
    patch = (6, 8, 4)  # y is padded from 7 to 8
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 10, 7, 5)).astype(np.float32)
    label = (rng.random((3, 10, 7, 5)) > 0.9).astype(np.uint8)
    sampler = PatchSampler(patch, probability)
    foreground = foreground_indices(label.any(0))
    torch.manual_seed(0)
    for _ in range(20):
        window = sampler.window(image.shape[1:], foreground)
        assert window.size == patch
        for volume in (image, label):
            cut = crop(volume, window)
            assert cut.shape == (volume.shape[0], *patch) and cut.dtype == volume.dtype
            np.testing.assert_array_equal(cut, _reference(volume, window, patch))
        if probability == 1.0:
            assert crop(label, window).any()


def test_padding_stays_zero_after_the_transform():
    window = Window((-1, 0, 0), (3, 2, 2))
    part = crop(np.ones((1, 2, 2, 2), np.float32), window, lambda values: values + 4)
    assert part.shape == (1, 3, 2, 2)
    assert not part[:, 0].any() and (part[:, 1:] == 5).all()


def test_the_share_of_foreground_centred_patches_follows_the_probability():
    shape, patch = (32, 32, 32), (8, 8, 8)
    foreground = np.zeros(shape, bool)
    foreground[14:18, 14:18, 14:18] = True  # central: no centre is moved inside the volume
    sampler = PatchSampler(patch, 0.33)
    torch.manual_seed(1)
    draws = 600
    centred = sum(foreground[_centre(sampler.window(shape, foreground_indices(foreground)))] for _ in range(draws))
    assert 0.27 < centred / draws < 0.40  # 0.33, and rarely a random centre lands on the 4³ cube


def test_a_label_without_foreground_gets_a_patch_anywhere():
    sampler = PatchSampler((4, 4, 4), 1.0)
    torch.manual_seed(0)
    starts = {sampler.window((16, 16, 16), np.empty(0, np.int32)).start for _ in range(20)}
    assert len(starts) > 10 and all(0 <= s <= 12 for start in starts for s in start)


def test_centres_lie_in_the_region_and_on_its_foreground():
    sampler = PatchSampler((4, 4, 4), 1.0)
    region = Window((8, 4, 6), (4, 3, 2))
    inside = np.zeros(region.size, bool)
    inside[1, 2, 0] = True
    torch.manual_seed(0)
    assert {_centre(sampler.window((20, 20, 20), foreground_indices(inside), region)) for _ in range(10)} == {(9, 6, 6)}
    anywhere = [_centre(sampler.window((20, 20, 20), np.empty(0, np.int32), region)) for _ in range(50)]
    assert all(
        all(s <= c < s + n for c, s, n in zip(centre, region.start, region.size, strict=True)) for centre in anywhere
    )
    assert len(set(anywhere)) > 10


@pytest.fixture
def volumes(brats6_dir, tmp_path):
    def build(**options):
        defaults = {"dim": 3, "patch_size": (8, 8, 16), "initial_training_set_size": 4}
        module = BraTSDataModule(data_dir=str(brats6_dir), cache_dir=str(tmp_path / "cache"), **(defaults | options))
        module.setup("fit")
        return module

    return build


def test_training_patches_are_the_crops_of_the_whole_items(volumes):
    module = volumes(foreground_patch_probability=0.5)
    reader, sampler = module._prepared().sets.reader, module.patches
    dataset = module.train_dataloader().dataset
    for index, item_id in enumerate(module.labeled_ids()):
        whole = reader.item(item_id, "train")
        torch.manual_seed(index)
        item = dataset[index]
        torch.manual_seed(index)
        foreground = foreground_indices(whole["label"].numpy().any(0))
        window = sampler.window(whole["image"].shape[1:], foreground)
        assert item["image"].shape == (4, 8, 8, 16) and item["label"].dtype == torch.uint8  # z padded from 8
        np.testing.assert_array_equal(item["image"].numpy(), _reference(whole["image"].numpy(), window, (8, 8, 16)))
        np.testing.assert_array_equal(item["label"].numpy(), _reference(whole["label"].numpy(), window, (8, 8, 16)))
        assert item.keys() == whole.keys() and item["id"] == item_id and not item["pseudo_labeled"]


def test_the_same_seed_gives_the_same_patches(volumes):
    dataset = volumes(foreground_patch_probability=0.5, patch_size=(4, 4, 4)).train_dataloader().dataset

    def draw(seed):
        torch.manual_seed(seed)
        return [dataset[i]["image"] for i in range(len(dataset)) for _ in range(3)]

    first, again, other = draw(3), draw(3), draw(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_a_pseudo_labelled_volume_is_cropped_from_its_pseudo_label(volumes):
    module = volumes(foreground_patch_probability=1.0, patch_size=(4, 4, 4), initial_training_set_size=1)
    case = module.unlabeled_ids()[0]
    pseudo = np.zeros((3, 16, 16, 8), np.uint8)
    pseudo[:, 3, 4, 5] = 1
    module.label_items([], pseudo_labels={case: pseudo})
    item = module.train_dataloader().dataset[module.labeled_ids().index(case)]
    assert item["pseudo_labeled"] and item["label"].sum() == 3  # centred on its only foreground voxel


def test_patch_unit_patches_keep_unknown_voxels_and_centre_in_labelled_boxes(volumes):
    module = volumes(annotation_unit="patch", query_patch_size=(8, 8, 4), patch_size=(4, 4, 4))
    reader = module._prepared().sets.reader
    dataset = module.train_dataloader().dataset
    sampler = module.patches
    for index, item_id in enumerate(module.labeled_ids()):
        box = parse_patch_id(item_id)
        partial = reader.partial_case(box.case_id)
        region = partial[(..., *box.slices)]
        foreground = foreground_indices((region != UNKNOWN).all(0) & (region > 0).any(0))
        for draw in range(5):
            torch.manual_seed(10 * index + draw)
            item = dataset[index]
            torch.manual_seed(10 * index + draw)
            window = sampler.window(partial.shape[1:], foreground, Window(box.start, box.size))
            np.testing.assert_array_equal(item["label"].numpy(), _reference(partial, window, (4, 4, 4)))
            assert (item["label"] != UNKNOWN).any()  # the patch holds labelled voxels
            centre = _centre(window)  # inside the box, unless moved inside the volume
            assert all(
                b <= c < b + n or c in (2, d - 2)
                for c, b, n, d in zip(centre, box.start, box.size, partial.shape[1:], strict=True)
            )
