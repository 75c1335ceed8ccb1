import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss, FocalLoss, GeneralizedDiceLoss

from alseg.core.errors import ConfigError, DataError
from alseg.core.losses import LOSS_NAMES, LinearSchedule, build_loss
from alseg.core.partial_labels import UNKNOWN


def _single_label_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 3, 6, 6, generator=g), torch.randint(0, 3, (3, 1, 6, 6), generator=g)


def _multi_label_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 2, 4, 4, 4, generator=g), torch.rand(3, 2, 4, 4, 4, generator=g) > 0.6


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_decreases_when_overfitting(name, multi_label):
    torch.manual_seed(0)
    logits, target = _multi_label_batch() if multi_label else _single_label_batch()
    free = torch.zeros_like(logits, requires_grad=True)
    loss = build_loss(name, multi_label)
    optimiser = torch.optim.Adam([free], lr=0.1)
    values = []
    for _ in range(40):
        optimiser.zero_grad()
        value = loss(free, target)
        value.backward()
        optimiser.step()
        values.append(value.item())
    assert values[-1] < 0.5 * values[0]
    assert all(math.isfinite(v) for v in values)


def test_values_match_monai_and_torch_mean_reduction():
    logits, target = _single_label_batch()
    onehot = {"softmax": True, "to_onehot_y": True}
    expected = {
        "ce": F.cross_entropy(logits, target[:, 0]),
        "dice": DiceLoss(**onehot)(logits, target),
        "generalized_dice": GeneralizedDiceLoss(**onehot)(logits, target),
        "focal": FocalLoss(use_softmax=True, to_onehot_y=True)(logits, target),
        "dice_ce": DiceCELoss(**onehot, lambda_ce=0.5)(logits, target),
    }
    for name, value in expected.items():
        params = {"lambda_ce": 0.5} if name == "dice_ce" else {}
        got = build_loss(name, multi_label=False, **params)(logits, target)
        torch.testing.assert_close(got, value, msg=name)
    # A [B, *spatial] target is accepted too.
    torch.testing.assert_close(build_loss("dice", False)(logits, target[:, 0]), expected["dice"])


def test_multi_label_values_use_sigmoid():
    logits, target = _multi_label_batch()
    t = target.float()
    expected = {
        "ce": F.binary_cross_entropy_with_logits(logits, t),
        "dice": DiceLoss(sigmoid=True)(logits, t),
        "generalized_dice": GeneralizedDiceLoss(sigmoid=True)(logits, t),
        "focal": FocalLoss(gamma=1.5)(logits, t),
        "dice_ce": DiceLoss(sigmoid=True)(logits, t) + F.binary_cross_entropy_with_logits(logits, t),
    }
    for name, value in expected.items():
        params = {"gamma": 1.5} if name == "focal" else {}
        torch.testing.assert_close(build_loss(name, True, **params)(logits, target), value, msg=name)
    softmaxed = DiceLoss(softmax=True)(logits, t)
    assert not torch.isclose(build_loss("dice", True)(logits, target), softmaxed)


def test_params_reach_monai():
    logits, target = _single_label_batch()
    with_bg = build_loss("dice", False)(logits, target)
    without_bg = build_loss("dice", False, include_background=False)(logits, target)
    torch.testing.assert_close(
        without_bg,
        DiceLoss(include_background=False, softmax=True, to_onehot_y=True)(logits, target),
    )
    assert not torch.isclose(with_bg, without_bg)
    weighted_ce = build_loss("ce", False, weight=[1.0, 2.0, 3.0])(logits, target)
    expected = F.cross_entropy(logits, target[:, 0], weight=torch.tensor([1.0, 2.0, 3.0]), reduction="none")
    torch.testing.assert_close(weighted_ce, expected.mean())


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_zero_weight_removes_item(name):
    logits, target = _single_label_batch()
    loss = build_loss(name, multi_label=False)
    weighted = loss(logits, target, torch.tensor([1.0, 0.0, 1.0]))
    alone = loss(logits[[0, 2]], target[[0, 2]])
    torch.testing.assert_close(weighted, alone)


def test_weights_give_weighted_mean_of_items():
    logits, target = _multi_label_batch()
    loss = build_loss("dice_ce", multi_label=True)
    per_item = loss.per_item(logits, target)
    assert per_item.shape == (3,)
    w = torch.tensor([0.9, 0.1, 0.5])
    torch.testing.assert_close(loss(logits, target, w), (w * per_item).sum() / w.sum())
    torch.testing.assert_close(loss(logits, target), per_item.mean())


def test_all_zero_weights_give_zero_without_nan():
    logits, target = _single_label_batch()
    free = logits.clone().requires_grad_(True)
    value = build_loss("dice", False)(free, target, torch.zeros(3))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(free.grad, torch.zeros_like(free))


def test_unknown_name_lists_available():
    with pytest.raises(ConfigError, match=r"Unknown loss 'dcie'\. Available: ce, dice, dice_ce"):
        build_loss("dcie", False)


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("dice", {"gamma": 2.0}, r"'dice' does not accept the parameter 'gamma' \(unknown name\)"),
        ("focal", {"reduction": "sum"}, r"'focal' .* 'reduction' \(it is set by alseg"),
        ("dice_ce", {"softmax": False}, r"'dice_ce' .* 'softmax'"),
        ("dice_ce", {"lambda_ce": -1.0}, r"'lambda_ce' parameter of loss 'dice_ce' .* >= 0"),
        ("dice", {"smooth_nr": "x"}, r"Invalid parameters .* for loss 'dice'"),
        ("ce", {"weight": ["a", "b"]}, r"Invalid parameters .* for loss 'ce'"),
    ],
)
def test_bad_params(name, params, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_loss(name, False, **params)


def test_bad_shapes_raise_data_error():
    logits, target = _single_label_batch()
    with pytest.raises(DataError, match="class-index map"):
        build_loss("dice", False)(logits, target[:, :, :3])
    with pytest.raises(DataError, match="multi-label target"):
        build_loss("dice", True)(logits, target)
    with pytest.raises(DataError, match="weights must have shape"):
        build_loss("dice", False)(logits, target, torch.ones(2))


def test_linear_schedule_values():
    schedule = LinearSchedule()
    assert schedule(0) == pytest.approx(0.9)
    assert schedule(5) == pytest.approx(0.5)
    assert schedule(10) == pytest.approx(0.1)
    assert schedule(25) == pytest.approx(0.1)
    values = [schedule(i) for i in range(11)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert LinearSchedule(0.2, 0.8, 3)(1) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"start": 1.5}, r"'start' .* \[0, 1\]\. Got 1\.5"),
        ({"end": -0.1}, r"'end'"),
        ({"rounds": 0}, r"'rounds' .* >= 1\. Got 0"),
        ({"rounds": 2.5}, r"'rounds'"),
    ],
)
def test_linear_schedule_validation(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        LinearSchedule(**kwargs)
    with pytest.raises(ConfigError, match="round index"):
        LinearSchedule()(-1)


_BATCH_OPTIONS = [
    ("dice", {}),
    ("dice", {"include_background": False, "jaccard": True, "smooth_nr": 0.5}),
    ("dice", {"squared_pred": True, "weight": [1.0, 2.0, 0.5]}),
    ("generalized_dice", {}),
    ("generalized_dice", {"w_type": "simple", "include_background": False, "smooth_dr": 0.1}),
]


def _with_empty_class(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    logits, target = batch  # class 2 absent from the batch: the infinite generalized-dice class weight case
    return logits, torch.where(target == 2, 0, target)


@pytest.mark.parametrize(("name", "params"), _BATCH_OPTIONS)
def test_batch_dice_equals_monai_batch_dice(name, params):
    logits, target = _single_label_batch()
    logits = torch.cat([logits, logits[:1].flip(-1)])  # B=4 != C=3: one value per class is not one per item
    target = torch.cat([target, target[:1]])
    cls = {"dice": DiceLoss, "generalized_dice": GeneralizedDiceLoss}[name]
    for lg, tg in ((logits, target), _with_empty_class((logits, target))):
        expected = cls(softmax=True, to_onehot_y=True, batch=True, **params)(lg, tg)
        torch.testing.assert_close(build_loss(name, False, batch=True, **params)(lg, tg), expected)
        assert not torch.isclose(build_loss(name, False, **params)(lg, tg), expected)  # batch dice differs
    multi_logits, multi_target = _multi_label_batch()
    multi_params = {k: v for k, v in params.items() if k != "weight"}
    expected = cls(sigmoid=True, batch=True, **multi_params)(multi_logits, multi_target.float())
    torch.testing.assert_close(build_loss(name, True, batch=True, **multi_params)(multi_logits, multi_target), expected)
    dice_ce = build_loss("dice_ce", False, batch=True, lambda_ce=0.5)(logits, target)
    torch.testing.assert_close(
        dice_ce, DiceCELoss(softmax=True, to_onehot_y=True, batch=True, lambda_ce=0.5)(logits, target)
    )


@pytest.mark.parametrize("name", ["dice", "dice_ce", "generalized_dice"])
@pytest.mark.parametrize("multi_label", [False, True])
def test_batch_dice_weights_count_items_as_copies(name, multi_label):
    logits, target = _multi_label_batch() if multi_label else _with_empty_class(_single_label_batch())
    loss = build_loss(name, multi_label, batch=True)
    # weight 0 removes an item, weight 2 counts it twice: the item weights scale its voxels' share of the sums
    torch.testing.assert_close(
        loss(logits, target, torch.tensor([1.0, 0.0, 1.0])), loss(logits[[0, 2]], target[[0, 2]])
    )
    twice = loss(logits[[0, 1, 1, 2]], target[[0, 1, 1, 2]])
    torch.testing.assert_close(loss(logits, target, torch.tensor([1.0, 2.0, 1.0])), twice)
    torch.testing.assert_close(loss(logits, target, torch.ones(3)), loss(logits, target))
    free = logits.clone().requires_grad_(True)
    value = loss(free, target, torch.zeros(3))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(free.grad, torch.zeros_like(free))


def test_batch_dice_has_no_per_item_value_and_rejects_what_it_cannot_weigh():
    logits, target = _single_label_batch()
    with pytest.raises(DataError, match=r"'batch: true'.*no per-item loss"):
        build_loss("dice_ce", False, batch=True).per_item(logits, target)
    with pytest.raises(
        ConfigError,
        match=r"'dice' with 'batch: true' does not accept the parameter 'ignore_index' \(it is set by alseg\)",
    ):
        build_loss("dice", False, batch=True, ignore_index=0)
    with pytest.raises(ConfigError, match="'focal' does not accept the parameter 'batch'"):
        build_loss("focal", False, batch=True)


def _options():
    """Every loss, per item and (where it exists) as batch Dice, on single- and multi-label data."""
    for name, multi_label in itertools.product(LOSS_NAMES, (False, True)):
        yield name, multi_label, {}
        if name in ("dice", "dice_ce", "generalized_dice"):
            yield name, multi_label, {"batch": True}


def _batch(multi_label):
    return _multi_label_batch() if multi_label else _single_label_batch()


def _unknown_right_half(target):
    """The target with the right half of the last axis unknown (every channel of a multi-label target)."""
    partial = target.to(torch.uint8 if target.dtype == torch.bool else target.dtype).clone()
    partial[..., partial.shape[-1] // 2 :] = UNKNOWN
    return partial


@pytest.mark.parametrize(("name", "multi_label", "params"), list(_options()))
def test_unknown_voxels_get_exactly_zero_gradient(name, multi_label, params):
    logits, target = _batch(multi_label)
    free = logits.clone().requires_grad_(True)
    build_loss(name, multi_label, **params)(free, _unknown_right_half(target)).backward()
    half = logits.shape[-1] // 2
    assert torch.equal(free.grad[..., half:], torch.zeros_like(free.grad[..., half:]))
    assert free.grad[..., :half].abs().sum() > 0


@pytest.mark.parametrize(("name", "multi_label", "params"), list(_options()))
def test_a_partly_labelled_item_counts_only_its_known_voxels(name, multi_label, params):
    logits, target = _batch(multi_label)
    loss = build_loss(name, multi_label, **params)
    half = logits.shape[-1] // 2
    # Unknown voxels are left out, not background: the loss is that of the known half alone.
    torch.testing.assert_close(loss(logits, _unknown_right_half(target)), loss(logits[..., :half], target[..., :half]))
    assert not torch.isclose(loss(logits, _unknown_right_half(target)), loss(logits, target))


@pytest.mark.parametrize(("name", "multi_label", "params"), list(_options()))
def test_an_item_without_a_known_voxel_counts_for_nothing(name, multi_label, params):
    logits, target = _batch(multi_label)
    loss = build_loss(name, multi_label, **params)
    unknown = target.to(torch.uint8 if target.dtype == torch.bool else target.dtype).clone()
    unknown[1] = UNKNOWN
    torch.testing.assert_close(loss(logits, unknown), loss(logits[[0, 2]], target[[0, 2]]))
