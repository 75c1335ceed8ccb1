"""Patch items of the volume data modules: ids, the candidate grid, the box-only oracle, partial-label training
patches, voxel costs after overlap and the bad-input messages."""

import numpy as np
import pytest
import torch

from alseg.core.errors import ConfigError
from alseg.core.partial_labels import UNKNOWN
from alseg.core.patch_pool import Box
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.patch_items import format_patch_id, grid_boxes, grid_starts, parse_patch_id
from alseg.datasets.synthetic import write_brats

SHAPE = (16, 16, 8)


@pytest.fixture(scope="module")
def brats(tmp_path_factory):
    return write_brats(tmp_path_factory.mktemp("data") / "brats", n_cases=6, shape=SHAPE, tumour_fraction=1.0)


@pytest.fixture
def make(brats, tmp_path):
    def build(**options):
        defaults = {"dim": 3, "annotation_unit": "patch", "query_patch_size": (8, 8, 4), "patch_size": (8, 8, 8)}
        module = BraTSDataModule(data_dir=str(brats), cache_dir=str(tmp_path / "cache"), **(defaults | options))
        module.setup("fit")
        return module

    return build


def test_patch_ids_round_trip_and_other_ids_are_not_patches():
    box = Box("BraTS2021_00042", (16, 0, 8), (32, 32, 16))
    assert format_patch_id(box) == "BraTS2021_00042:16-0-8:32-32-16"
    assert parse_patch_id(format_patch_id(box)) == box
    assert parse_patch_id("BraTS2021_00042") is None and parse_patch_id("BraTS2021_00042:77") is None
    with pytest.raises(ValueError, match="Malformed patch id"):
        parse_patch_id("case:1-2:3-3-3")


def test_the_grid_covers_every_voxel_and_ends_at_the_border():
    assert grid_starts(16, 8, 8) == [0, 8]
    assert grid_starts(10, 4, 4) == [0, 4, 6]
    assert grid_starts(8, 8, 3) == [0]
    boxes = grid_boxes("c", (10, 8, 4), (4, 8, 4), (4, 8, 4))
    covered = torch.zeros(10, 8, 4, dtype=torch.bool)
    for box in boxes:
        covered[box.slices] = True
    assert covered.all() and len(boxes) == 3


def test_the_pool_is_every_box_of_every_training_case_without_labels(make):
    module = make(initial_training_set_size=2)
    train_cases = module.split.train
    assert len(module.unlabeled_ids()) + 2 == len(train_cases) * 2 * 2 * 2
    assert {parse_patch_id(i).case_id for i in module.unlabeled_ids()} <= set(train_cases)
    item = module.unlabeled_dataloader().dataset[0]
    assert "label" not in item and item["image"].shape == (4, 8, 8, 4)


def test_label_items_reveals_the_box_only_and_boxes_of_a_case_union(make):
    module = make(initial_training_set_size=0)
    case = module.split.train[0]
    first, second = f"{case}:0-0-0:8-8-4", f"{case}:8-8-4:8-8-4"
    module.label_items([first])
    reader = module._item_sets().reader
    truth = module.volume_cache.label(case)
    partial = reader.partial_case(case)
    inside = (slice(None), slice(0, 8), slice(0, 8), slice(0, 4))
    assert np.array_equal(partial[inside], truth[inside])
    assert (partial == UNKNOWN).sum() == partial.size - partial[inside].size
    module.label_items([second])
    partial = reader.partial_case(case)
    assert (partial != UNKNOWN).sum() == 2 * partial[inside].size
    assert np.array_equal(partial[:, 8:, 8:, 4:], truth[:, 8:, 8:, 4:])


def test_a_box_labelled_by_a_person_carries_their_label_not_the_ground_truth(make):
    module = make(initial_training_set_size=0)
    case = module.split.train[0]
    box = f"{case}:0-0-0:8-8-4"
    truth = module.volume_cache.label(case)[:, :8, :8, :4]
    drawn = torch.as_tensor(1 - truth, dtype=torch.uint8)  # the complement of the ground truth: differs everywhere
    module.label_items([box], labels={box: drawn})
    partial = module._item_sets().reader.partial_case(case)
    assert np.array_equal(partial[:, :8, :8, :4], drawn.numpy())
    assert (partial == UNKNOWN).sum() == partial.size - drawn.numel()
    foreground = int(drawn.numpy().any(0).sum())  # the person's foreground, not the ground truth's
    assert module.annotation_cost([box])["foreground_voxels"] == foreground != int(truth.any(0).sum())


def test_training_patches_are_centred_in_labelled_boxes(make):
    module = make(initial_training_set_size=3, patch_size=(4, 4, 4))
    torch.manual_seed(0)
    for _ in range(5):
        for batch in module.train_dataloader():
            known = (batch["label"] != UNKNOWN).all(1).flatten(1)
            assert known.any(1).all()  # every patch holds labelled voxels
            assert batch["image"].shape[2:] == (4, 4, 4)


def test_voxel_costs_count_overlapping_boxes_once_and_the_pool_keeps_the_overlap_rule(make):
    module = make(initial_training_set_size=0, query_stride=(4, 8, 4), max_overlap=0.5)
    case = module.split.train[0]
    first, half = f"{case}:0-0-0:8-8-4", f"{case}:4-0-0:8-8-4"
    assert half in module.unlabeled_ids()
    module.label_items([first])
    assert half in module.unlabeled_ids()  # covered by half: allowed with max_overlap 0.5
    module.label_items([half])
    cost = module.annotation_cost([half])
    assert cost["voxels"] == 256 and cost["new_voxels"] == 128
    both = module.annotation_cost([first, half])
    assert both["new_voxels"] == 384
    total = len(module.split.train) * np.prod(SHAPE)
    assert both["labelled_fraction"] == pytest.approx(384 / total)


def test_boxes_the_overlap_rule_excludes_leave_the_pool(make):
    module = make(initial_training_set_size=0, query_stride=(4, 8, 4), max_overlap=0.0)
    case = module.split.train[0]
    module.label_items([f"{case}:0-0-0:8-8-4"])
    pool = set(module.unlabeled_ids())
    assert f"{case}:4-0-0:8-8-4" not in pool and f"{case}:8-0-0:8-8-4" in pool


def test_slice_and_volume_units_keep_their_ids_and_count_new_voxels(make):
    volumes = make(annotation_unit=None, initial_training_set_size=1)
    assert volumes.annotation_unit == "volume" and ":" not in volumes.labeled_ids()[0]
    cost = volumes.annotation_cost(volumes.labeled_ids())
    assert cost["new_voxels"] == cost["voxels"] == np.prod(SHAPE)
    assert make(dim=2, annotation_unit="slice").annotation_unit == "slice"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"query_patch_size": (32, 8, 4)}, "The 'query_patch_size' option .* must fit .* Got \\[32, 8, 4\\]"),
        ({"query_patch_size": (8, 8)}, "The 'query_patch_size' option .* 3 integers >= 1. Got \\(8, 8\\)"),
        ({"query_stride": (0, 8, 4)}, "The 'query_stride' option .* Got \\(0, 8, 4\\)"),
        ({"max_overlap": 1.0}, "The 'max_overlap' option .* in \\[0, 1\\). Got 1.0"),
        ({"max_overlap": -0.1}, "The 'max_overlap' option .* Got -0.1"),
        ({"dim": 2}, "The 'annotation_unit' option 'patch' needs dim=3 .* Got dim=2"),
        ({"annotation_unit": "box"}, "The 'annotation_unit' option .* one of: slice, volume, patch. Got 'box'"),
        ({"initial_training_set_size": 1000}, "'initial_training_set_size' .* 32 candidate boxes .* Got 1000"),
    ],
)
def test_bad_patch_options_are_one_config_error_naming_option_and_value(make, options, message):
    with pytest.raises(ConfigError, match=message):
        make(**options)
