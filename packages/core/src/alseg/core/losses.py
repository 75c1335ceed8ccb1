"""Segmentation losses (MONAI's and torch's) with per-item weights, and the pseudo-label schedule.

``build_loss(name, multi_label, **params)`` returns a :class:`SegmentationLoss`. Single-label
outputs are softmaxed and targets are class-index maps; multi-label outputs (e.g. BraTS regions
TC/WT/ET, which overlap) go through a per-channel sigmoid and are never softmaxed. ``params`` are
passed to the underlying class:

* ``ce``: ``torch.nn.CrossEntropyLoss`` (single-label), ``torch.nn.BCEWithLogitsLoss`` (multi).
* ``dice``, ``generalized_dice``, ``focal``: ``monai.losses.DiceLoss``, ``GeneralizedDiceLoss``,
  ``FocalLoss`` (e.g. ``include_background``, ``smooth_nr``, ``gamma``).
* ``dice_ce``: ``lambda_dice * dice + lambda_ce * ce``; ``lambda_dice`` and ``lambda_ce`` (default
  1.0) weight the terms, every other parameter goes to ``DiceLoss``. Composed here rather than with
  ``monai.losses.DiceCELoss`` because that class has no ``reduction="none"`` (needed for per-item
  weights) and its cross-entropy term softmaxes multi-channel multi-label targets.

Per-item losses are computed with ``reduction="none"`` and averaged over all non-batch dimensions,
so with equal weights the result equals the MONAI/torch loss with ``reduction="mean"``.

``batch: true`` (``dice``, ``generalized_dice`` and the Dice term of ``dice_ce``) computes the Dice over the whole
batch as one volume, as nnU-Net's batch Dice: MONAI then sums the intersection and the volumes over the items too, so
there is no per-item loss to weigh. alseg computes this term itself as a proper generalisation to item weights: each
item's voxels count in the per-class sums with the item's weight, as if an item of weight k were k copies of it.
Weight 0 leaves an item out, equal weights of 1 give MONAI's value, and pseudo-labelled items count less, as they do
in the per-item losses. (Rejecting weights instead would only fail mid-run, at the first batch holding a
pseudo-labelled item.) MONAI's ``ignore_index`` is not available with ``batch: true``.

Partial labels (:mod:`alseg.core.partial_labels`): voxels whose label is ``UNKNOWN`` count in no term. Voxel-wise
terms (``ce``, ``focal``) average each item over its known voxels; overlap terms (``dice``, ``generalized_dice``, the
batch Dice) zero the probabilities and the one-hot target at unknown voxels before the overlaps are summed, as
MONAI's ``mask_loss_inputs`` does; an item without a known voxel gets weight 0. The gradient at an unknown voxel is
exactly 0. MONAI's own ``ignore_index`` is not used for this: it exists for ``DiceLoss`` and ``FocalLoss`` only and, on
multi-label (one-hot-shaped) targets, treats every voxel with no foreground channel as ignored, which is background.
"""

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from monai.losses import DiceLoss, FocalLoss, GeneralizedDiceLoss
from monai.losses.utils import compute_tp_fp_fn
from monai.networks.utils import one_hot
from torch import Tensor, nn

from alseg.core.errors import ConfigError, DataError
from alseg.core.partial_labels import known_voxels, with_unknown_as


class _CrossEntropy(nn.CrossEntropyLoss):
    """torch's cross-entropy taking MONAI-style ``[B, 1, *spatial]`` class-index targets."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy of logits ``[B, C, *spatial]`` and class indices ``[B, 1, *spatial]``."""
        return super().forward(input, target[:, 0])


# name -> {multi_label: (class, arguments fixed by alseg)}
_SPECS: dict[str, dict[bool, tuple[type[nn.Module], dict[str, Any]]]] = {
    "ce": {False: (_CrossEntropy, {}), True: (nn.BCEWithLogitsLoss, {})},
    # Overlap losses get probabilities and one-hot targets (see _Overlap), so that unknown voxels can be masked.
    "dice": {False: (DiceLoss, {}), True: (DiceLoss, {})},
    "generalized_dice": {False: (GeneralizedDiceLoss, {}), True: (GeneralizedDiceLoss, {})},
    "focal": {
        False: (FocalLoss, {"use_softmax": True, "to_onehot_y": True}),
        True: (FocalLoss, {"use_softmax": False}),
    },
}
LOSS_NAMES: tuple[str, ...] = tuple(sorted([*_SPECS, "dice_ce"]))
# Set by alseg from ``multi_label``, or deprecated by torch: never user parameters.
_RESERVED = {"reduction", "softmax", "sigmoid", "other_act", "to_onehot_y", "use_softmax"}
_RESERVED |= {"size_average", "reduce"}
_TENSOR_PARAMS = {"weight", "pos_weight"}  # torch wants tensors; configs give lists
_RESERVED |= {"ignore_index"}  # unknown voxels are masked by alseg (module docstring)


def _build_term(
    kind: str,
    multi_label: bool,
    params: dict[str, Any],
    name: str,
    extra: frozenset[str] = frozenset(),
) -> nn.Module:
    """Instantiate the ``kind`` term of loss ``name``; the caller consumes the ``extra`` names."""
    cls, fixed = _SPECS[kind][multi_label]
    names = set(inspect.signature(cls).parameters)
    batch = "batch" in names and bool(params.get("batch", False))
    accepted = (names - _RESERVED) | extra
    for key in sorted(params):
        if key not in accepted:
            hint = "it is set by alseg" if key in _RESERVED else "unknown name"
            subject = f"Loss '{name}' with 'batch: true'" if batch else f"Loss '{name}'"
            raise ConfigError(
                f"{subject} does not accept the parameter '{key}' ({hint}). Accepted: {', '.join(sorted(accepted))}."
            )
    try:
        kwargs = {
            k: torch.as_tensor(v, dtype=torch.float32) if k in _TENSOR_PARAMS else v
            for k, v in params.items()
            if k not in extra
        }
        loss = cls(reduction="none", **fixed, **kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Invalid parameters {params} for loss '{name}': {error}") from error
    if batch:
        return _BatchDice(loss, multi_label)
    return _Overlap(loss, multi_label) if kind in ("dice", "generalized_dice") else _VoxelMean(loss)


def _probabilities(logits: Tensor, target: Tensor, known: Tensor, multi_label: bool) -> tuple[Tensor, Tensor]:
    """Probabilities and (one-hot) targets ``[B, C, *spatial]``, both 0 at unknown voxels."""
    if multi_label:
        probabilities, target = torch.sigmoid(logits), target.to(logits.dtype)
    else:
        probabilities, target = torch.softmax(logits, 1), one_hot(target, logits.shape[1])
    return torch.where(known, probabilities, 0.0), torch.where(known, target, 0.0)


class _ItemMean(nn.Module, ABC):
    """A loss of every item, averaged over the batch with item weights."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    @abstractmethod
    def per_item(self, logits: Tensor, target: Tensor, known: Tensor) -> Tensor:
        """Losses ``[B]`` of logits ``[B, C, *spatial]``, a prepared target and its known voxels ``[B, 1, *S]``."""

    def forward(self, logits: Tensor, target: Tensor, weights: Tensor, known: Tensor) -> Tensor:
        """``sum(w * l) / sum(w)`` over the items with a known voxel; 0 (zero gradient) when no weight is left."""
        weights = torch.where(known.flatten(1).any(1), weights, 0.0)
        total = weights.sum()
        # All-zero weights: divide 0 by 1 rather than 0 by 0, so neither value nor gradient is NaN.
        per_item = self.per_item(logits, target, known)
        return (weights * per_item).sum() / torch.where(total > 0, total, torch.ones_like(total))


class _VoxelMean(_ItemMean):
    """A voxel-wise loss (``reduction="none"``) averaged over each item's known voxels (and channels)."""

    def per_item(self, logits: Tensor, target: Tensor, known: Tensor) -> Tensor:
        """Losses ``[B]``: the mean of the loss map over the known voxels."""
        values = self.loss(logits, target)
        values = values.unsqueeze(1) if values.ndim == logits.ndim - 1 else values  # cross-entropy: [B, *spatial]
        mask = known.expand_as(values)
        count = mask.flatten(1).sum(1).clamp_min(1)
        return torch.where(mask, values, 0.0).flatten(1).sum(1) / count


class _Overlap(_ItemMean):
    """MONAI's ``DiceLoss`` or ``GeneralizedDiceLoss`` of each item, on probabilities masked to the known voxels."""

    def __init__(self, loss: nn.Module, multi_label: bool) -> None:
        super().__init__(loss)
        self.multi_label = multi_label

    def per_item(self, logits: Tensor, target: Tensor, known: Tensor) -> Tensor:
        """Losses ``[B]``: the mean over classes of the item's overlap loss."""
        return self.loss(*_probabilities(logits, target, known, self.multi_label)).flatten(1).mean(1)


class _BatchDice(nn.Module):
    """MONAI's ``DiceLoss`` or ``GeneralizedDiceLoss`` with ``batch=True``, generalised to item weights.

    The per-class sums over the batch (intersection, predicted and true volume) count every item's voxels with the
    item's weight. Reads its options from the MONAI loss it wraps, whose own forward is not used.
    """

    def __init__(self, loss: DiceLoss | GeneralizedDiceLoss, multi_label: bool) -> None:
        super().__init__()
        self.loss = loss
        self.multi_label = multi_label

    def forward(self, logits: Tensor, target: Tensor, weights: Tensor, known: Tensor) -> Tensor:
        """Weighted batch Dice loss of logits ``[B, C, *S]``, a target, weights ``[B]`` and known voxels ``[B, 1, *S]``.

        Returns:
            Scalar loss; 0 (with zero gradient) when all weights are 0.
        """
        loss = self.loss
        probabilities, target = _probabilities(logits, target, known, self.multi_label)
        if not loss.include_background and logits.shape[1] > 1:
            probabilities, target = probabilities[:, 1:], target[:, 1:]
        axes = list(range(2, logits.ndim))
        order = 2 if isinstance(loss, DiceLoss) and loss.squared_pred else 1
        # Per item and class [B, C], then summed over the items with their weights: [C].
        tp, fp, fn = (
            weights @ s.to(weights) for s in compute_tp_fp_fn(probabilities, target, axes, order, loss.soft_label)
        )
        jaccard = isinstance(loss, DiceLoss) and loss.jaccard
        denominator = 2 * tp + (2 if jaccard else 1) * (fp + fn)
        if isinstance(loss, DiceLoss):
            per_class = 1 - (2 * tp + loss.smooth_nr) / (denominator + loss.smooth_dr)
            if loss.class_weight is not None and per_class.numel() > 1:
                per_class = per_class * loss.class_weight.to(per_class)
            value = per_class.mean()
        else:
            class_weight = loss.w_func((weights @ target.sum(axes).to(weights)).float())
            infinite = torch.isinf(class_weight)  # classes absent from the batch get the largest finite weight
            class_weight = torch.where(infinite, 0, class_weight)
            class_weight = class_weight + infinite * class_weight.max()
            numerator = 2 * (tp * class_weight).sum() + loss.smooth_nr
            value = 1 - numerator / ((denominator * class_weight).sum() + loss.smooth_dr)
        return torch.where(weights.sum() > 0, value, torch.zeros_like(value))


class SegmentationLoss(nn.Module):
    """Weighted sum of loss terms, each a weighted mean over the items or a weighted batch Dice."""

    def __init__(self, terms: list[tuple[float, nn.Module]], multi_label: bool) -> None:
        super().__init__()
        self.lambdas = [weight for weight, _ in terms]
        self.terms = nn.ModuleList(term for _, term in terms)
        self.multi_label = multi_label

    def _prepare_target(self, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """The target with unknown voxels set to 0 (multi-label: as float), and the known voxels."""
        if self.multi_label:
            if target.shape != logits.shape:
                raise DataError(
                    f"A multi-label target must have the logits' shape {tuple(logits.shape)} "
                    f"(binary [B, C, *spatial]). Got {tuple(target.shape)}."
                )
            known = known_voxels(target)
            return with_unknown_as(target, known).to(logits.dtype), known
        if logits.shape[1] < 2:
            raise DataError(f"Single-label logits [B, C, *spatial] need >= 2 channels. Got {tuple(logits.shape)}.")
        if target.ndim == logits.ndim - 1:
            target = target.unsqueeze(1)
        expected = (logits.shape[0], 1, *logits.shape[2:])
        if tuple(target.shape) != expected:
            raise DataError(
                f"A single-label target must be a class-index map of shape {expected} "
                f"or {(expected[0], *expected[2:])}. Got {tuple(target.shape)}."
            )
        known = known_voxels(target)
        return with_unknown_as(target, known).long(), known

    def per_item(self, logits: Tensor, target: Tensor) -> Tensor:
        """Unweighted loss of every item.

        Args:
            logits: Raw network outputs ``[B, C, *spatial]``.
            target: Single-label: class indices ``[B, 1, *spatial]`` or ``[B, *spatial]``;
                multi-label: binary ``[B, C, *spatial]``; ``UNKNOWN`` (255) where nobody labelled a voxel.

        Returns:
            Losses ``[B]`` (0 for an item without a known voxel).

        Raises:
            DataError: The loss has a batch Dice term, which has no per-item value.
        """
        if any(isinstance(term, _BatchDice) for term in self.terms):
            raise DataError("A loss with 'batch: true' has no per-item loss: its Dice is computed over the batch.")
        target, known = self._prepare_target(logits, target)
        losses = [
            lam * term.per_item(logits, target, known) for lam, term in zip(self.lambdas, self.terms, strict=True)
        ]
        return torch.stack(losses).sum(0)

    def forward(self, logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        """Weighted loss of a batch.

        Args:
            logits: Raw network outputs ``[B, C, *spatial]``.
            target: See :meth:`per_item`.
            weights: Optional non-negative per-item weights ``[B]`` (e.g. lower for
                pseudo-labelled items); None weighs all items equally.

        Returns:
            Scalar loss: per-item terms give ``sum(w * l) / sum(w)``, batch Dice terms their weighted batch
            value (module docstring); 0 (with zero gradient) when all weights are 0.
        """
        target, known = self._prepare_target(logits, target)
        batch_size = logits.shape[0]
        if weights is None:
            weights = torch.ones(batch_size, device=logits.device)
        elif weights.shape != (batch_size,):
            raise DataError(f"Loss weights must have shape [B] = ({batch_size},). Got {tuple(weights.shape)}.")
        weights = weights.to(device=logits.device, dtype=torch.float32)
        terms = [lam * term(logits, target, weights, known) for lam, term in zip(self.lambdas, self.terms, strict=True)]
        return torch.stack(terms).sum()


def build_loss(name: str, multi_label: bool, **params: Any) -> SegmentationLoss:
    """Build a segmentation loss by name.

    Args:
        name: One of :data:`LOSS_NAMES` (``ce``, ``dice``, ``dice_ce``, ``focal``,
            ``generalized_dice``).
        multi_label: True for sigmoid outputs with binary ``[B, C, *spatial]`` targets, False for
            softmax outputs with class-index targets.
        **params: Parameters of the underlying MONAI/torch class (see the module docstring).

    Returns:
        The loss module.

    Raises:
        ConfigError: For an unknown name, an unknown or reserved parameter, or an invalid value.
    """
    if name not in LOSS_NAMES:
        raise ConfigError(f"Unknown loss '{name}'. Available: {', '.join(LOSS_NAMES)}.")
    if name != "dice_ce":
        return SegmentationLoss([(1.0, _build_term(name, multi_label, params, name))], multi_label)
    lambdas = {
        "lambda_dice": params.get("lambda_dice", 1.0),
        "lambda_ce": params.get("lambda_ce", 1.0),
    }
    for key, value in lambdas.items():
        if not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"The '{key}' parameter of loss 'dice_ce' must be a number >= 0. Got {value!r}.")
    dice = _build_term("dice", multi_label, params, name, frozenset(lambdas))
    ce = _build_term("ce", multi_label, {}, name)
    return SegmentationLoss([(float(lambdas["lambda_dice"]), dice), (float(lambdas["lambda_ce"]), ce)], multi_label)


@dataclass(frozen=True)
class LinearSchedule:
    """Linear schedule of the weight of pseudo-labelled items over active-learning rounds.

    The value is ``start`` at round 0, moves linearly to ``end`` at round ``rounds`` and stays at
    ``end`` afterwards (the predecessor framework decayed 0.9 -> 0.1).

    Attributes:
        start: Value at round 0, in [0, 1].
        end: Value from round ``rounds`` on, in [0, 1].
        rounds: Number of rounds to go from ``start`` to ``end``, >= 1.
    """

    start: float = 0.9
    end: float = 0.1
    rounds: int = 10

    def __post_init__(self) -> None:
        for key in ("start", "end"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(f"The '{key}' of a LinearSchedule must be a number in [0, 1]. Got {value!r}.")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"The 'rounds' of a LinearSchedule must be an integer >= 1. Got {self.rounds!r}.")

    def __call__(self, round_index: int) -> float:
        """Value at ``round_index`` (>= 0)."""
        if round_index < 0:
            raise ConfigError(f"A LinearSchedule round index must be >= 0. Got {round_index}.")
        fraction = min(round_index / self.rounds, 1.0)
        return float(self.start + (self.end - self.start) * fraction)
