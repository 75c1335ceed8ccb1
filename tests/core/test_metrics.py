import math
import random

import pytest
import torch
from monai.metrics import ConfusionMatrixMetric, DiceMetric, HausdorffDistanceMetric

from alseg.core.errors import ConfigError, DataError
from alseg.core.metric_accumulator import VolumeMetricAccumulator
from alseg.core.metrics import (
    hd95,
    label_dice,
    labels_to_masks,
    probabilities_to_masks,
    volume_metrics,
)
from alseg.core.partial_labels import UNKNOWN

DIAG_4x4 = math.sqrt(3**2 + 3**2)  # largest voxel-centre distance in a 4x4 image


def _masks(c: int = 1, shape: tuple[int, ...] = (4, 4)) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(c, *shape, dtype=torch.bool), torch.zeros(c, *shape, dtype=torch.bool)


def _values(metrics: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {k: [round(float(x), 4) for x in v] for k, v in metrics.items()}


def test_hand_computed_partial_overlap_and_both_empty():
    pred, target = _masks(2)
    target[0, :2] = True  # 8 pixels
    pred[0, 0] = True  # 4 of them: TP 4, FN 4, FP 0, TN 8
    got = _values(volume_metrics(pred, target, spacing=(2.0, 1.0)))
    # channel 1 is empty in both: Dice 1, sensitivity 1, HD95 0
    assert got["dice"] == [0.6667, 1.0]
    assert got["sensitivity"] == [0.5, 1.0]
    assert got["specificity"] == [1.0, 1.0]
    # gt-edge row 1 is 1 voxel (2 mm along axis 0) from the prediction; all others at 0
    assert got["hd95"] == [1.0, 0.0]
    assert got["hd95_mm"] == [2.0, 0.0]


def test_hand_computed_disjoint_columns_and_anisotropic_spacing():
    pred, target = _masks()
    target[0, :, 0] = True
    pred[0, :, 2] = True
    got = _values(volume_metrics(pred, target, spacing=(1.0, 3.0)))
    assert got == {
        "dice": [0.0],
        "sensitivity": [0.0],
        "specificity": [round(8 / 12, 4)],
        "hd95": [2.0],
        "hd95_mm": [6.0],
    }


def test_empty_ground_truth_with_prediction_and_the_reverse():
    pred, target = _masks(2)
    pred[0, 1, 1] = True  # false positive, empty ground truth
    target[1, 2, 2] = True  # missed object, empty prediction
    got = volume_metrics(pred, target, spacing=(2.0, 1.0))
    assert got["dice"].tolist() == [0.0, 0.0]
    assert got["sensitivity"].tolist() == [1.0, 0.0]  # nothing to miss / all missed
    assert got["specificity"].tolist() == pytest.approx([15 / 16, 1.0])
    assert got["hd95"].tolist() == pytest.approx([DIAG_4x4] * 2)
    assert got["hd95_mm"].tolist() == pytest.approx([math.sqrt(6**2 + 3**2)] * 2)


def test_full_ground_truth_specificity_is_one_and_no_nan():
    pred, target = _masks(1, (3, 3, 3))
    target[:] = True
    pred[0, 0] = True
    got = volume_metrics(pred, target)
    assert got["specificity"].item() == 1.0
    assert got["sensitivity"].item() == pytest.approx(9 / 27)
    assert "hd95_mm" not in got
    assert all(torch.isfinite(v).all() for v in got.values())


def _blobs(seed: int, c: int = 3, shape=(10, 10, 8)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, c, *shape, generator=g)
    smooth = torch.nn.functional.avg_pool3d(noise, 3, stride=1, padding=1)
    return smooth[0] > smooth.mean()


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_matches_monai_on_a_non_trivial_case():
    pred, target = _blobs(1), _blobs(2)
    spacing = (0.8, 1.0, 2.5)
    got = volume_metrics(pred, target, spacing)
    p, t = pred[None].float(), target[None].float()
    dice = DiceMetric(include_background=True, reduction="none")(p, t)[0]
    hd = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")
    confusion = ConfusionMatrixMetric(
        include_background=True, metric_name=("sensitivity", "specificity"), reduction="none"
    )
    confusion(p, t)
    sensitivity, specificity = confusion.aggregate()
    torch.testing.assert_close(got["dice"], dice)
    torch.testing.assert_close(got["hd95"], hd(p, t)[0])
    torch.testing.assert_close(got["hd95_mm"], hd(p, t, spacing=spacing)[0])
    torch.testing.assert_close(got["sensitivity"], sensitivity[0])
    torch.testing.assert_close(got["specificity"], specificity[0])
    assert 0 < got["dice"].min() < got["dice"].max() < 1


def test_hd95_mm_scales_with_spacing():
    pred, target = _blobs(3, c=2), _blobs(4, c=2)
    voxels = hd95(pred, target)
    assert voxels.min() > 0
    torch.testing.assert_close(hd95(pred, target, (2.5, 2.5, 2.5)), 2.5 * voxels)
    assert not torch.allclose(hd95(pred, target, (1.0, 1.0, 4.0)), voxels)
    # volume_metrics scales voxel distances for isotropic spacing instead of a second pass
    iso = volume_metrics(pred, target, (2.5, 2.5, 2.5))["hd95_mm"]
    torch.testing.assert_close(iso, hd95(pred, target, (2.5, 2.5, 2.5)))
    with pytest.raises(DataError, match="one value per spatial axis"):
        hd95(pred, target, (1.0, 1.0))


def test_probabilities_to_masks():
    probs = torch.tensor([[0.2, 0.5, 0.7], [0.8, 0.5, 0.3]])[:, :, None]  # [C=2, 3, 1]
    assert probabilities_to_masks(probs, False).tolist() == [
        [[False], [True], [True]],
        [[True], [False], [False]],
    ]
    assert probabilities_to_masks(probs, True)[:, :, 0].tolist() == [
        [False, False, True],
        [True, False, False],
    ]
    assert probabilities_to_masks(probs, True, 0.25)[:, :, 0].tolist() == [
        [False, True, True],
        [True, True, True],
    ]
    onehot = labels_to_masks(torch.tensor([[[0, 2], [1, 1]]]), 3, multi_label=False)
    assert onehot.shape == (3, 2, 2) and onehot.sum(0).eq(1).all()
    assert onehot[2].tolist() == [[False, True], [False, False]]
    with pytest.raises(DataError, match=r"in \[0, 2\]\. Got values \[0, 3\]"):
        labels_to_masks(torch.tensor([[[0, 3]]]), 3, multi_label=False)


def _case(seed: int, c: int = 3, shape=(6, 6, 5)) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities [C, *shape] and labels [1, *shape]; the last two slices tumour-free."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (1, *shape), generator=g)
    labels[..., 3:] = 0
    logits = torch.randn(c, *shape, generator=g) + 2.5 * torch.nn.functional.one_hot(labels[0], c).movedim(-1, 0)
    return logits.softmax(0), labels


@pytest.mark.parametrize("hausdorff", [True, False])
def test_slices_gathered_per_volume_equal_the_volume(hausdorff):
    names = {0: "background", 1: "edema", 2: "tumour"}
    cases = {"A": _case(0), "B": _case(1)}
    spacing = (1.0, 1.0, 3.0)
    volume_acc = VolumeMetricAccumulator(names, multi_label=False, hausdorff=hausdorff)
    for case, (probs, labels) in cases.items():
        volume_acc.update(probs[None], labels[None], [case], spacing=[spacing])
    expected = volume_acc.compute()

    items = [(case, k) for case in cases for k in range(5)]
    random.Random(0).shuffle(items)
    slice_acc = VolumeMetricAccumulator(names, multi_label=False, hausdorff=hausdorff)
    for start in range(0, len(items), 3):
        batch = items[start : start + 3]
        slice_acc.update(
            torch.stack([cases[c][0][..., k] for c, k in batch]),
            torch.stack([cases[c][1][0, ..., k] for c, k in batch]),  # [B, H, W] form
            [c for c, _ in batch],
            [k for _, k in batch],
            [spacing] * len(batch),
        )
    got = slice_acc.compute()
    assert got.keys() == expected.keys() and ("mean_hd95" in got) == hausdorff
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    if not hausdorff:  # a waiting slice holds its confusion counts [T=1, C=3, 4], not its masks
        assert all(len(entry) == 12 for entry in slice_acc.state().slices["A"].values())

    # The naive mean of per-slice Dice differs: tumour-free slices with a false positive score 0.
    probs, labels = cases["A"]
    per_slice = [
        volume_metrics(probabilities_to_masks(probs[..., k], False), labels_to_masks(labels[..., k], 3, False))
        for k in range(5)
    ]
    naive = sum(float(m["dice"][1:].mean()) for m in per_slice) / 5
    one_case = VolumeMetricAccumulator(names, multi_label=False)
    one_case.update(probs[None], labels[None], ["A"])
    assert abs(naive - one_case.compute()["mean_dice"]) > 0.05


def test_single_label_keys_exclude_background():
    acc = VolumeMetricAccumulator({0: "bg", 1: "fg"}, multi_label=False)
    probs, labels = _case(2, c=2)
    acc.update(probs[None], labels[None], ["A"])
    got = acc.compute()
    assert set(got) == {
        "dice_fg", "sensitivity_fg", "specificity_fg", "hd95_fg",
        "mean_dice", "mean_sensitivity", "mean_specificity", "mean_hd95",
    }  # fmt: skip
    assert got["mean_dice"] == got["dice_fg"]


def test_multi_label_thresholds_and_names():
    probs = torch.zeros(1, 2, 4, 4)
    probs[0, 0, :2] = 0.6  # above 0.5, below 0.75
    probs[0, 0, 0] = 0.9
    probs[0, 1, 3] = 0.8
    labels = torch.zeros(1, 2, 4, 4)
    labels[0, 0, :2] = 1
    labels[0, 1, 3] = 1
    acc = VolumeMetricAccumulator({0: "TC", 1: "ET"}, multi_label=True, thresholds=(0.5, 0.75))
    acc.update(probs, labels, ["A"], spacing=[(1.0, 1.0)])
    got = acc.compute()
    assert got["dice_TC"] == pytest.approx(1.0)
    assert got["dice_TC_t0.75"] == pytest.approx(2 * 4 / 12)
    assert got["sensitivity_TC_t0.75"] == pytest.approx(0.5)
    assert got["dice_ET"] == got["dice_ET_t0.75"] == pytest.approx(1.0)
    assert got["mean_dice_t0.75"] == pytest.approx((2 / 3 + 1) / 2)
    assert got["hd95_mm_TC_t0.75"] == pytest.approx(1.0)
    assert len(got) == 2 * (5 * 2 + 5)  # thresholds x (metrics x classes + means)


def test_without_hausdorff():
    acc = VolumeMetricAccumulator({0: "TC"}, multi_label=True, hausdorff=False)
    acc.update(torch.rand(1, 1, 4, 4), torch.ones(1, 1, 4, 4), ["A"], spacing=[(1.0, 2.0)])
    metrics = ("dice", "sensitivity", "specificity")
    assert set(acc.compute()) == {f"{m}_TC" for m in metrics} | {f"mean_{m}" for m in metrics}


def test_empty_cases_average_without_nan():
    acc = VolumeMetricAccumulator({0: "TC", 1: "ET"}, multi_label=True)
    probs = torch.zeros(2, 2, 4, 4)
    probs[1, 0, 0, 0] = 0.9  # false positive in case B, channel TC
    acc.update(probs, torch.zeros(2, 2, 4, 4), ["A", "B"])
    got = acc.compute()
    assert all(math.isfinite(v) for v in got.values())
    assert got["dice_TC"] == pytest.approx(0.5)  # 1 (both empty) and 0 (false positive)
    assert got["dice_ET"] == 1.0
    assert got["hd95_TC"] == pytest.approx(DIAG_4x4 / 2)
    assert "hd95_mm_TC" not in got


def test_compute_is_repeatable_and_reset_clears():
    acc = VolumeMetricAccumulator({0: "bg", 1: "fg"}, multi_label=False)
    assert acc.compute() == {}
    probs, labels = _case(3, c=2, shape=(4, 4))
    acc.update(probs[None], labels[None], ["A:0"], [0])
    assert acc.compute() == acc.compute() != {}
    acc.reset()
    assert acc.compute() == {}
    acc.update(probs[None], labels[None], ["A:0"], [0])  # no duplicate error after reset


def test_accumulator_errors():
    acc = VolumeMetricAccumulator({0: "bg", 1: "fg"}, multi_label=False)
    probs, labels = _case(4, c=2, shape=(4, 4))
    acc.update(probs[None], labels[None], ["A"], [0], [(1.0, 1.0, 2.0)])
    with pytest.raises(DataError, match="slice 0 was added to the metrics twice"):
        acc.update(probs[None], labels[None], ["A"], [0], [(1.0, 1.0, 2.0)])
    with pytest.raises(DataError, match="different spacings"):
        acc.update(probs[None], labels[None], ["A"], [1], [(1.0, 1.0, 3.0)])
    with pytest.raises(DataError, match="added to the metrics twice"):
        acc.update(probs[None], labels[None], ["A"])
    with pytest.raises(DataError, match=r"C=2"):
        acc.update(torch.rand(1, 3, 4, 4), labels[None], ["B"])
    with pytest.raises(DataError, match=r"B case ids .* Got \(1, 2, 4, 4\) and \[1, 2\]"):
        acc.update(probs[None], labels[None], ["B"], [0, 1])
    acc.update(probs[None], labels[None], ["C"], [0])
    with pytest.raises(DataError, match="voxel spacing and others not"):
        acc.compute()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"class_names": {1: "a", 2: "b"}, "multi_label": False}, "every index 0..C-1"),
        ({"class_names": {0: "bg"}, "multi_label": False}, r"C >= 2"),
        ({"class_names": {0: "a", 1: "a"}, "multi_label": True}, "unique"),
        (
            {"class_names": {0: "bg", 1: "fg"}, "multi_label": False, "thresholds": (0.5,)},
            "only to multi-label",
        ),
        ({"class_names": {0: "TC"}, "multi_label": True, "thresholds": (0.5, 1.0)}, r"in \(0, 1\)"),
        ({"class_names": {0: "TC"}, "multi_label": True, "thresholds": (0.5, 0.5)}, "distinct"),
        ({"class_names": {0: "TC"}, "multi_label": True, "thresholds": ()}, "one or more"),
    ],
)
def test_accumulator_config_errors(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        VolumeMetricAccumulator(**kwargs)


def _slice_batch(cases, items):
    """Arguments of ``update`` for the slices ``items`` [(case, index)] of ``cases`` {case: (probs, labels)}."""
    return (
        torch.stack([cases[c][0][..., k] for c, k in items]),
        torch.stack([cases[c][1][..., k] for c, k in items]),
        [c for c, _ in items],
        [k for _, k in items],
        [(1.0, 1.0, 3.0)] * len(items),
    )


@pytest.mark.parametrize("hausdorff", [True, False])
def test_merge_of_rank_shares_with_padding_duplicates_equals_one_accumulator(hausdorff):
    names = {0: "background", 1: "edema", 2: "tumour"}
    cases = {"A": _case(5), "B": _case(6), "C": _case(7)}
    items = [(case, k) for case in cases for k in range(5)]  # 15 slices: rank 1 repeats the first one
    shares = [items[0::2], [*items[1::2], items[0]]]
    ranks = [VolumeMetricAccumulator(names, multi_label=False, hausdorff=hausdorff) for _ in shares]
    for accumulator, share in zip(ranks, shares, strict=True):
        accumulator.update(*_slice_batch(cases, share))
    single = VolumeMetricAccumulator(names, multi_label=False, hausdorff=hausdorff)
    single.update(*_slice_batch(cases, items))
    expected = single.compute()
    assert ranks[0].compute() != expected  # a rank alone sees parts of every case
    ranks[0].merge([r.state() for r in ranks])
    assert ranks[0].compute() == expected
    if not hausdorff:
        return

    volumes = [VolumeMetricAccumulator(names, multi_label=False) for _ in range(3)]
    for accumulator, share in zip(volumes, (["A", "C"], ["B", "A"], ["C"]), strict=True):
        for case in share:
            accumulator.update(cases[case][0][None], cases[case][1][None], [case])
    volumes[2].merge([v.state() for v in volumes])
    single.reset()
    for case in ("B", "C", "A"):
        single.update(cases[case][0][None], cases[case][1][None], [case])
    assert volumes[2].compute() == single.compute() != {}


def test_merge_rejects_conflicting_states():
    names = {0: "bg", 1: "fg"}
    probs, labels = _case(8, c=2, shape=(4, 4))
    first, second = (VolumeMetricAccumulator(names, multi_label=False) for _ in range(2))
    first.update(probs[None], labels[None], ["A"], [0], [(1.0, 1.0, 2.0)])
    second.update(1 - probs[None], labels[None], ["A"], [0], [(1.0, 1.0, 2.0)])
    with pytest.raises(DataError, match="Case A: slice 0 was added to the metrics twice with different predictions"):
        first.merge([first.state(), second.state()])
    second.reset()
    second.update(probs[None], labels[None], ["A"], [1], [(1.0, 1.0, 3.0)])
    with pytest.raises(DataError, match="different spacings"):
        first.merge([first.state(), second.state()])
    second.reset()
    second.update(probs[None], labels[None], ["A"])
    with pytest.raises(DataError, match=r"Case A was added to the metrics twice \(as a volume and as slices\)"):
        first.merge([first.state(), second.state()])
    second.reset()
    second.update(1 - probs[None], labels[None], ["B"])
    volumes = VolumeMetricAccumulator(names, multi_label=False)
    volumes.update(probs[None], labels[None], ["B"])
    with pytest.raises(DataError, match="Case B was added to the metrics twice with different"):
        volumes.merge([volumes.state(), second.state()])


@pytest.mark.parametrize("multi_label", [False, True])
def test_unknown_voxels_count_in_no_metric(multi_label):
    """A prediction wrong only where the label is unknown scores as a perfect one, on volumes and gathered slices."""
    truth = torch.zeros(8, 8, 4, dtype=torch.long)
    truth[2:6, 2:6] = 1
    wrong = truth.clone()
    wrong[:, :2] = 1  # wrong on the two first rows, which the label leaves unknown
    probabilities = torch.stack([1.0 - wrong.float(), wrong.float()]) if not multi_label else wrong.float()[None]
    label = truth[None].clone() if not multi_label else truth[None].to(torch.uint8)
    label[:, :, :2] = UNKNOWN
    names = {0: "background", 1: "disc"} if not multi_label else {0: "disc"}
    for slices in (None, [0, 1, 2, 3]):
        accumulator = VolumeMetricAccumulator(names, multi_label=multi_label)
        if slices is None:
            accumulator.update(probabilities[None], label[None], ["c"])
        else:
            accumulator.update(probabilities.permute(3, 0, 1, 2), label.permute(3, 0, 1, 2), ["c"] * 4, slices)
        values = accumulator.compute()
        assert values["dice_disc"] == 1.0 and values["hd95_disc"] == 0.0
    full = VolumeMetricAccumulator(names, multi_label=multi_label)
    full.update(probabilities[None], truth[None, None].to(label.dtype), ["c"])
    assert full.compute()["dice_disc"] < 1.0  # the same prediction against the full label


def test_label_dice_leaves_unknown_voxels_out():
    truth = torch.zeros(1, 4, 4, dtype=torch.long)
    truth[0, :2] = 1
    pseudo = truth.clone()
    pseudo[0, 3] = 1  # wrong on a row the ground truth leaves unknown
    assert label_dice(pseudo, truth, 2, False) < 1.0
    truth[0, 3] = UNKNOWN
    assert label_dice(pseudo, truth, 2, False) == 1.0
