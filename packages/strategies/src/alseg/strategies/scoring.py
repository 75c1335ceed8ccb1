"""Scoring math of the query strategies: per-voxel uncertainty maps and per-item reductions.

Pure torch: no I/O, no device choice, no logging; results live on the input's device.
Conventions: a batch of probabilities is ``(B, C, *S)`` (channel-first, ``*S`` the spatial
dimensions), MC-dropout or ensemble samples are ``(K, B, C, *S)`` (samples first). All maps are
in nats (natural log), computed in float32 (half-precision inputs are cast up) with safe logs
(``0 * log 0 = 0``). Scores follow one sign convention: higher = label first.

Softmax outputs (one class per voxel) use :func:`entropy`; sigmoid / multi-label outputs (one
independent probability per channel, e.g. the BraTS regions TC, WT, ET) use
:func:`binary_entropy`, the sum over channels of per-channel binary entropies. Never softmax
sigmoid outputs to reuse the softmax formulas.
"""

import math

import torch
from torch import Tensor

from alseg.core.errors import ConfigError

REDUCTIONS = ("max", "mean", "sum", "top_q")


def _as_float32(probs: Tensor, min_ndim: int, shape_name: str) -> Tensor:
    if probs.ndim < min_ndim:
        raise ValueError(f"Expected probabilities of shape {shape_name}, got {tuple(probs.shape)}.")
    return probs.to(torch.float32)


def _xlogx(p: Tensor) -> Tensor:
    """``p · log p`` with ``0 · log 0 = 0``, for probabilities in [0, 1].

    The log of ``p`` clamped to the smallest positive normal float32 gives exactly 0 at ``p = 0`` and ``p · log p``
    elsewhere (below that value the product is itself below 1e-36); several times faster on CPU than
    ``torch.special.xlogy``, which matters when every voxel of a volume is scored.
    """
    return p.clamp_min(torch.finfo(torch.float32).tiny).log_().mul_(p)  # in place: one temporary, not three


def entropy(probs: Tensor) -> Tensor:
    """Shannon entropy over classes of softmax outputs, per voxel.

    Args:
        probs: Class probabilities ``(B, C, *S)`` summing to 1 over ``C``.

    Returns:
        Entropy in nats ``(B, *S)``, float32, in ``[0, log C]``.
    """
    p = _as_float32(probs, 2, "(B, C, *S)")
    return -_xlogx(p).sum(dim=1)


def binary_entropy(probs: Tensor) -> Tensor:
    """Sum over channels of per-channel binary entropies of sigmoid (multi-label) outputs.

    Args:
        probs: Independent per-channel foreground probabilities ``(B, C, *S)``.

    Returns:
        Entropy in nats ``(B, *S)``, float32, in ``[0, C log 2]``.
    """
    p = _as_float32(probs, 2, "(B, C, *S)")
    terms = _xlogx(p)
    terms += _xlogx(1.0 - p)
    return terms.sum(dim=1).neg_()


def predictive_entropy(probs: Tensor, multi_label: bool) -> Tensor:
    """Entropy per voxel: :func:`binary_entropy` if ``multi_label`` else :func:`entropy`.

    Args:
        probs: Probabilities ``(B, C, *S)``; sigmoid outputs if ``multi_label``, else softmax.
        multi_label: Whether channels are independent (sigmoid) rather than exclusive (softmax).

    Returns:
        Entropy in nats ``(B, *S)``, float32.
    """
    return binary_entropy(probs) if multi_label else entropy(probs)


def mutual_information(samples: Tensor, multi_label: bool) -> Tensor:
    """BALD mutual information ``H[E_k p] - E_k H[p]`` between prediction and model, per voxel.

    For multi-label outputs this is the sum over channels of the binary mutual information.
    Round-off below 0 is clamped to 0.

    Args:
        samples: Probabilities of ``K`` MC-dropout or ensemble samples ``(K, B, C, *S)``.
        multi_label: Whether channels are independent (sigmoid) rather than exclusive (softmax).

    Returns:
        Mutual information in nats ``(B, *S)``, float32.
    """
    p = _as_float32(samples, 3, "(K, B, C, *S)")
    # One sample at a time: the entropies of a [B, C, *S] sample stay in cache, where those of all K samples at once
    # make several passes over K-times larger temporaries. Both means over K accumulate in float64: the mean of K
    # identical float32 values is then exact, so identical samples (no model uncertainty) give exactly 0 rather than
    # round-off.
    mean_probs = torch.zeros(p.shape[1:], dtype=torch.float64, device=p.device)
    expected = torch.zeros((p.shape[1], *p.shape[3:]), dtype=torch.float64, device=p.device)
    for sample in p:
        mean_probs += sample
        expected += predictive_entropy(sample, multi_label)
    k = p.shape[0]
    mean_entropy = predictive_entropy(mean_probs.div_(k).to(torch.float32), multi_label)
    return (mean_entropy - expected.div_(k).to(torch.float32)).clamp_min_(0.0)


def foreground_mask(probs: Tensor) -> Tensor:
    """Voxels the model predicts as foreground: argmax over classes is not class 0.

    This is what ``exclude_background`` means for softmax outputs: scores are reduced only over
    voxels predicted as foreground, so a large confident background does not dilute them.

    Args:
        probs: Softmax probabilities ``(B, C, *S)`` with background as class 0, ``C >= 2``.

    Returns:
        Boolean mask ``(B, *S)``, usable as ``mask`` of :func:`reduce_scores`.
    """
    if probs.ndim < 2 or probs.shape[1] < 2:
        raise ValueError(f"foreground_mask needs softmax probabilities (B, C>=2, *S), got {tuple(probs.shape)}.")
    return probs.argmax(dim=1) != 0


def reduce_scores(
    voxel_scores: Tensor,
    how: str = "mean",
    top_q: float | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Reduce per-voxel scores to one score per item.

    Args:
        voxel_scores: Per-voxel scores ``(B, *S)``.
        how: ``mean``, ``sum``, ``max`` or ``top_q`` (mean of the ``ceil(q * n)`` highest of the
            ``n`` voxels considered, at least one).
        top_q: The fraction ``q`` in ``(0, 1]``; required for ``how="top_q"``, else must be None.
        mask: Optional boolean ``(B, *S)``: only voxels where it is true count. An item whose
            mask is empty scores 0.

    Returns:
        Scores ``(B,)``, float32; higher = label first.

    Raises:
        ConfigError: ``how`` is unknown or ``top_q`` does not fit ``how``.
    """
    _check_reduction(how, top_q)
    values = voxel_scores.to(torch.float32).flatten(1)
    if mask is None:
        keep = torch.ones_like(values, dtype=torch.bool)
    elif mask.shape != voxel_scores.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from scores {tuple(voxel_scores.shape)}.")
    else:
        keep = mask.to(torch.bool).flatten(1)
    count = keep.sum(dim=1)
    total = torch.where(keep, values, 0.0).sum(dim=1)
    if how == "sum":
        return total
    if how == "mean":
        return total / count.clamp_min(1)
    if how == "max":
        peak = torch.where(keep, values, -math.inf).amax(dim=1)
        return torch.where(count > 0, peak, 0.0)
    return _top_q_mean(values, keep, count, top_q)


def _check_reduction(how: str, top_q: float | None) -> None:
    if how not in REDUCTIONS:
        raise ConfigError(f"Unknown score reduction {how!r}. Available: {', '.join(REDUCTIONS)}.")
    if how != "top_q" and top_q is not None:
        raise ConfigError(f"The 'top_q' option is only used with how='top_q'. Got how={how!r}.")
    if how == "top_q" and (top_q is None or not 0.0 < top_q <= 1.0):
        raise ConfigError(f"The 'top_q' option must be a number in (0, 1]. Got {top_q!r}.")


def _top_q_mean(values: Tensor, keep: Tensor, count: Tensor, q: float) -> Tensor:
    # Rounding q * n to 6 decimals first makes e.g. 0.3 * 10 count 3 voxels, not ceil(3.0000004).
    n_top = torch.round(count.to(torch.float64) * q, decimals=6).ceil().clamp_min(1)
    ranked = torch.where(keep, values, -math.inf).sort(dim=1, descending=True).values
    rank = torch.arange(values.shape[1], device=values.device)
    in_top = rank[None, :] < n_top[:, None]
    means = torch.where(in_top, ranked, 0.0).sum(dim=1) / n_top.to(torch.float32)
    return torch.where(count > 0, means, 0.0)
