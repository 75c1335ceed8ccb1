"""Block selection with interpolated pseudo-labels ("Less Is More", Burmeister et al., 2022).

The annotator labels the top and bottom slice of a block of adjacent slices; the slices between get pseudo labels
interpolated from those two (:mod:`alseg.strategies.label_interpolation`), so that one annotated slice pays for
several training slices. The strategy never sees a label: it returns the end slices as its selection and, for the
inner slices, an :class:`InterpolatedBlock` request that the pipeline resolves with the oracle's labels of the ends
(:mod:`alseg.core.derived_labels`).
"""

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from alseg.core.derived_labels import DerivedLabels
from alseg.core.errors import ConfigError
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView
from alseg.core.strategy import QueryStrategy
from alseg.strategies.blocks import Block, check_thickness, select_blocks
from alseg.strategies.label_interpolation import METHODS, interpolate_labels
from alseg.strategies.pool_scores import score_pool
from alseg.strategies.score_based import score_based

BLOCK_SELECTIONS = ("uncertainty", "random")


class InterpolatedBlock(DerivedLabels):
    """The pseudo labels of a block's inner slices, interpolated between the oracle's labels of its two ends.

    Args:
        block: The block (at least 3 slices).
        multi_label: Whether labels are binary channels ``[C, H, W]`` rather than class indices ``[1, H, W]``.
        num_classes: Channels or classes.
        method: One of :data:`~alseg.strategies.label_interpolation.METHODS`.
    """

    def __init__(self, block: Block, multi_label: bool, num_classes: int, method: str) -> None:
        super().__init__(sources=block.ends, targets=block.inner)
        self.multi_label, self.num_classes, self.method = multi_label, num_classes, method

    def derive(self, labels: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Returns the interpolated label of every inner slice, shaped and typed like the end labels."""
        top, bottom = (labels[i].cpu().numpy() for i in self.sources)
        inner = interpolate_labels(
            top,
            bottom,
            len(self.targets),
            multi_label=self.multi_label,
            num_classes=self.num_classes,
            method=self.method,
        )
        return {i: torch.from_numpy(label) for i, label in zip(self.targets, inner, strict=True)}


class InterpolationStrategy(QueryStrategy):
    """Selects blocks of adjacent pool slices; the oracle labels their ends, the slices between are interpolated.

    Only the end slices count against ``items_to_label`` (a block of two or more slices costs 2, a single slice 1;
    an odd budget ends with a single slice). Blocks never overlap, and all their slices are still unlabelled. When no
    full block fits any more, thinner ones follow, down to single slices (:mod:`alseg.strategies.blocks`). The
    thickness of every block taken is recorded as ``strategy_notes.block_slices``.

    Args:
        block_thickness: Slices per block, ``>= 2``, along the data module's slicing axis.
        block_selection: ``uncertainty`` ranks blocks by the mean score of their slices (each pool slice scored once
            per round); ``random`` draws them with the round's seed.
        uncertainty: The score that ranks the slices: ``entropy`` (mean over the slice) or ``bald``.
        mc_samples: MC-dropout samples of ``bald``.
        pseudo_labels: Interpolate the inner slices; False gives plain strided block selection (only the end slices
            are labelled, the inner ones stay in the pool).
        label_interpolation: ``signed_distance`` or ``morphological_contour`` (ITK; the ``itk`` extra).
    """

    def __init__(
        self,
        block_thickness: int = 5,
        block_selection: str = "uncertainty",
        uncertainty: str = "entropy",
        mc_samples: int = 10,
        pseudo_labels: bool = True,
        label_interpolation: str = "signed_distance",
    ) -> None:
        check_thickness(block_thickness)
        for name, value, options in (
            ("block_selection", block_selection, BLOCK_SELECTIONS),
            ("label_interpolation", label_interpolation, METHODS),
        ):
            if value not in options:
                raise ConfigError(
                    f"Unknown {name} {value!r} of the interpolation strategy. Available: {', '.join(options)}."
                )
        self.block_thickness = block_thickness
        self.block_selection = block_selection
        self._scorer = score_based(uncertainty, mc_samples)
        self.uncertainty, self.mc_samples = uncertainty, mc_samples
        self.pseudo_labels = pseudo_labels
        self.label_interpolation = label_interpolation

    def select_items_to_label(
        self,
        models: PytorchModel | list[PytorchModel],
        data_module: QueryView,
        items_to_label: int,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Returns the end slices of the chosen blocks and, with ``pseudo_labels``, requests for the inner ones."""
        positions = _slice_positions(data_module)
        scores = None
        if self.block_selection == "uncertainty":
            pool = score_pool(models, data_module, self._scorer.item_scores, self._scorer.mc_samples, seed)
            scores = dict(zip(pool.ids, pool.scores.tolist(), strict=True))
        blocks = select_blocks(positions, scores, items_to_label, self.block_thickness, seed)
        data_module.record("block_slices", [len(block.ids) for block in blocks])
        selected = [i for block in blocks for i in block.ends]
        if not self.pseudo_labels:
            return selected, None
        multi_label, classes = data_module.multi_label(), data_module.num_classes()
        requests = [InterpolatedBlock(b, multi_label, classes, self.label_interpolation) for b in blocks if b.inner]
        return selected, {i: request for request in requests for i in request.targets} or None


def _slice_positions(data_module: QueryView) -> dict[str, tuple[str, int]]:
    """Every pool slice's ``(case id, slice index)``, from the item metadata."""
    ids = data_module.unlabeled_ids()
    positions = {}
    for item_id, meta in zip(ids, data_module.item_metadata(ids), strict=True):
        if "slice_index" not in meta:
            raise ConfigError(
                f"The interpolation strategy selects blocks of adjacent slices, but pool item {item_id!r} is not a "
                "slice of a volume (its metadata has no slice_index). It needs slice items, e.g. dim: 2 of the brats "
                "and decathlon data modules."
            )
        positions[item_id] = (str(meta["case_id"]), int(meta["slice_index"]))
    return positions
