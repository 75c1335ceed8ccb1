import math

import pytest
import torch

from alseg.core.errors import ConfigError
from alseg.strategies.scoring import (
    binary_entropy,
    entropy,
    foreground_mask,
    mutual_information,
    predictive_entropy,
    reduce_scores,
)


def _random_probs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(shape, generator=g), dim=1)


def test_entropy_uniform_is_log_c_and_one_hot_is_zero():
    uniform = torch.full((2, 4, 3, 5), 0.25)
    assert torch.allclose(entropy(uniform), torch.full((2, 3, 5), math.log(4)))
    one_hot = torch.nn.functional.one_hot(torch.tensor([[0, 3], [1, 2]]), 4).permute(0, 2, 1)
    result = entropy(one_hot.float())
    assert result.shape == (2, 2)
    assert torch.equal(result, torch.zeros(2, 2))


def test_entropy_matches_explicit_formula_on_random_probs():
    probs = _random_probs((3, 5, 4, 4))
    expected = -(probs * probs.log()).sum(dim=1)
    torch.testing.assert_close(entropy(probs), expected)


def test_binary_entropy_half_is_c_log_2_and_certain_is_zero():
    assert torch.allclose(binary_entropy(torch.full((2, 3, 4), 0.5)), torch.full((2, 4), 3 * math.log(2)))
    certain = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    assert torch.equal(binary_entropy(certain), torch.zeros(1, 2))


def test_softmax_and_sigmoid_entropy_differ_on_same_tensor():
    # Two channels at p=0.5: softmax reads one fair coin (log 2), sigmoid two coins (2 log 2).
    probs = torch.full((1, 2, 3), 0.5)
    assert torch.allclose(predictive_entropy(probs, multi_label=False), torch.full((1, 3), math.log(2)))
    assert torch.allclose(predictive_entropy(probs, multi_label=True), torch.full((1, 3), 2 * math.log(2)))


def test_half_precision_input_gives_float32_without_nan():
    probs = torch.tensor([[[0.0, 1.0, 0.5], [1.0, 0.0, 0.5]]], dtype=torch.float16)
    for result in (entropy(probs), binary_entropy(probs), mutual_information(probs[None], False)):
        assert result.dtype == torch.float32
        assert not torch.isnan(result).any()
    assert torch.allclose(entropy(probs), torch.tensor([[0.0, 0.0, math.log(2)]]))


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_identical_samples_have_exactly_zero_mutual_information(multi_label, k):
    probs = _random_probs((2, 3, 5, 5), seed=k)
    samples = probs.expand(k, *probs.shape)
    result = mutual_information(samples, multi_label)
    assert result.shape == (2, 5, 5)
    assert torch.equal(result, torch.zeros(2, 5, 5))


def test_mutual_information_two_samples_hand_computed():
    # Softmax, 2 classes, samples p1=(1, 0) and p2=(0.5, 0.5): mean (0.75, 0.25).
    # H(mean) = -(0.75 ln 0.75 + 0.25 ln 0.25); E H = (0 + ln 2) / 2.
    samples = torch.tensor([[1.0, 0.0], [0.5, 0.5]]).reshape(2, 1, 2, 1)
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) - math.log(2) / 2
    assert torch.allclose(mutual_information(samples, False), torch.tensor([[expected]]))
    # Multi-label: same tensor read as two independent channels with p=(1, .5) and (0, .5).
    # Per channel, mean is 0.75 and 0.25; both have H_b(mean) - (0 + ln 2)/2 = expected.
    assert torch.allclose(mutual_information(samples, True), torch.tensor([[2 * expected]]))


def test_mutual_information_disagreeing_confident_samples_is_log_2():
    samples = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(2, 1, 2, 1)
    assert torch.allclose(mutual_information(samples, False), torch.tensor([[math.log(2)]]))


def test_mutual_information_is_nonnegative_and_bounded_by_entropy():
    g = torch.Generator().manual_seed(1)
    samples = torch.softmax(torch.randn(6, 2, 4, 8, 8, generator=g), dim=2)
    mi = mutual_information(samples, False)
    assert (mi >= 0).all()
    assert (mi <= entropy(samples.mean(0)) + 1e-6).all()
    assert mi.max() > 0.01


def test_foreground_mask_is_argmax_not_background():
    probs = torch.tensor([[[0.6, 0.2, 0.1], [0.3, 0.7, 0.1], [0.1, 0.1, 0.8]]])  # (1, C=3, 3)
    assert torch.equal(foreground_mask(probs), torch.tensor([[False, True, True]]))
    with pytest.raises(ValueError, match="C>=2"):
        foreground_mask(torch.ones(1, 1, 3))


def test_reductions_without_mask():
    scores = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 4.0]]).reshape(2, 2, 2)
    assert torch.allclose(reduce_scores(scores), torch.tensor([3.0, 1.0]))
    assert torch.allclose(reduce_scores(scores, "sum"), torch.tensor([12.0, 4.0]))
    assert torch.allclose(reduce_scores(scores, "max"), torch.tensor([6.0, 4.0]))
    assert torch.allclose(reduce_scores(scores, "top_q", top_q=0.5), torch.tensor([4.5, 2.0]))
    assert torch.allclose(reduce_scores(scores, "top_q", top_q=1.0), torch.tensor([3.0, 1.0]))
    # ceil(0.3 * 4) = 2 voxels; a tiny fraction still takes one voxel.
    assert torch.allclose(reduce_scores(scores, "top_q", top_q=0.3), torch.tensor([4.5, 2.0]))
    assert torch.allclose(reduce_scores(scores, "top_q", top_q=1e-9), torch.tensor([6.0, 4.0]))


def test_top_q_counts_exact_fraction_despite_float_round_off():
    scores = torch.arange(10.0).reshape(1, 10)  # 0.3 * 10 is 3.0000000000000004 in floats
    assert torch.allclose(reduce_scores(scores, "top_q", top_q=0.3), torch.tensor([8.0]))


def test_reductions_with_mask_and_empty_mask():
    scores = torch.tensor([[1.0, 2.0, 3.0, 6.0], [5.0, 1.0, 1.0, 4.0], [7.0, 7.0, 7.0, 7.0]])
    mask = torch.tensor([[True, True, True, False], [True, False, False, True], [False] * 4])
    assert torch.allclose(reduce_scores(scores, "mean", mask=mask), torch.tensor([2.0, 4.5, 0.0]))
    assert torch.allclose(reduce_scores(scores, "sum", mask=mask), torch.tensor([6.0, 9.0, 0.0]))
    assert torch.allclose(reduce_scores(scores, "max", mask=mask), torch.tensor([3.0, 5.0, 0.0]))
    top = reduce_scores(scores, "top_q", top_q=0.5, mask=mask)
    # Item 0: 3 masked voxels -> ceil(1.5) = 2 -> mean(3, 2); item 1: 2 -> 1 -> 5.
    assert torch.allclose(top, torch.tensor([2.5, 5.0, 0.0]))


def test_reduction_with_foreground_mask_ignores_background():
    probs = torch.tensor([[[0.99, 0.01], [0.4, 0.6]]]).permute(0, 2, 1)  # voxel 0 bg, voxel 1 fg
    ent = entropy(probs)
    masked = reduce_scores(ent, mask=foreground_mask(probs))
    assert torch.allclose(masked, ent[:, 1])
    assert not torch.allclose(masked, reduce_scores(ent))


@pytest.mark.parametrize(
    ("how", "top_q", "match"),
    [
        ("median", None, r"Unknown score reduction 'median'\. Available: max, mean, sum, top_q\."),
        ("top_q", None, r"'top_q' option must be a number in \(0, 1\]\. Got None"),
        ("top_q", 0.0, r"Got 0\.0"),
        ("top_q", 1.5, r"Got 1\.5"),
        ("mean", 0.5, r"only used with how='top_q'\. Got how='mean'"),
    ],
)
def test_bad_reduction_options_raise_config_error(how, top_q, match):
    with pytest.raises(ConfigError, match=match):
        reduce_scores(torch.ones(1, 4), how, top_q=top_q)


def test_mask_shape_mismatch_raises():
    with pytest.raises(ValueError, match="mask shape"):
        reduce_scores(torch.ones(2, 4), mask=torch.ones(2, 3, dtype=torch.bool))
