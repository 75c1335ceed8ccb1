"""Model outputs → label maps in the dataset's own label values (the inverse of a :class:`LabelScheme`).

Single-label outputs (softmax) give each voxel the class of the largest probability, written as the label value of
that class (:attr:`LabelScheme.class_values`): BraTS ``multiclass`` 0/1/2/4 (2023: 0/1/2/3), a Decathlon task its
``dataset.json`` values, ``binary`` 0/1.

Multi-label outputs (sigmoids) switch a region on where its probability exceeds the threshold, and the regions are
*painted* into one label map, from the region covering the most label values to the one covering the fewest (in
declared order among equals). Each region paints its own value: the one label value it covers that no region painted
after it covers; so where several regions are on, the most specific one wins. For the BraTS regions
(TC = {1, ET}, WT = {1, 2, ET}, ET) that is::

    WT ∖ TC → 2 (edema),  TC ∖ ET → 1 (necrotic core),  ET → 4 (enhancing; 3 in BraTS 2023),  elsewhere 0

and for the Decathlon's BrainTumour regions (TC = {2, 3}, WT = {1, 2, 3}, ET = {3}): WT ∖ TC → 1, TC ∖ ET → 2, ET → 3.
An ET voxel outside TC or WT (regions the model got inconsistent) is still 4: ET implies the others. Regions whose
own values are not exactly one (e.g. a single region {1, 2}) cannot be written back; the rule then raises a
:class:`~alseg.core.errors.ConfigError`. Labels that belong to no region cannot be predicted and are never written.
With exactly-one own values, regions made from a label map (:meth:`LabelScheme.convert`) paint that map back.
"""

from __future__ import annotations

import numpy as np
import torch

from alseg.core.errors import ConfigError
from alseg.core.metrics import probabilities_to_masks
from alseg.datasets.labels import LabelScheme


def painting_order(regions: tuple[tuple[int, ...], ...], names: tuple[str, ...]) -> list[tuple[int, int]]:
    """The regions in painting order with the label value each paints, ``[(channel, value), ...]``.

    Raises:
        ConfigError: A region does not own exactly one label value (the message names it).
    """
    order = sorted(range(len(regions)), key=lambda channel: -len(regions[channel]))  # stable: declared order
    painted = []
    for position, channel in enumerate(order):
        later = set().union(*(regions[other] for other in order[position + 1 :]))
        own = sorted(set(regions[channel]) - later)
        if len(own) != 1:
            raise ConfigError(
                f"Region {names[channel]!r} (label values {list(regions[channel])}) owns the label values {own} "
                "after the more specific regions; writing regions back as labels needs exactly one. "
                f"Regions: {dict(zip(names, map(list, regions), strict=True))}."
            )
        painted.append((channel, own[0]))
    return painted


class LabelMapWriter:
    """Turns per-voxel probabilities ``[C, *spatial]`` into a label map ``[*spatial]`` of the scheme's values.

    Args:
        scheme: The label scheme the model was trained on.
        threshold: Multi-label outputs: a region is on where its probability exceeds it (``probs > threshold``,
            as the metrics binarise).

    Raises:
        ConfigError: The scheme does not say which label values its outputs stand for, or its regions cannot be
            written back (see the module doc), or the threshold is outside (0, 1).
    """

    def __init__(self, scheme: LabelScheme, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"The threshold of multi-label outputs must be in (0, 1). Got {threshold!r}.")
        self.scheme, self.threshold = scheme, threshold
        values = scheme.regions if scheme.multilabel else scheme.class_values
        if values is None or len(values) != len(scheme.class_names):
            raise ConfigError(
                f"The label scheme {scheme.name!r} does not declare the label value of each of its outputs "
                f"{list(scheme.class_names)}, so its predictions cannot be written as label maps."
            )
        self.order = painting_order(scheme.regions, scheme.class_names) if scheme.multilabel else None
        written = [value for _, value in self.order] if self.order else list(scheme.class_values)
        self.dtype = np.uint8 if max(written) <= np.iinfo(np.uint8).max else np.uint16

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        """The label map of one case.

        Args:
            probabilities: ``float [C, *spatial]``, ``C`` = the scheme's outputs.

        Returns:
            ``uint8 [*spatial]`` (``uint16`` if a label value exceeds 255) of the scheme's label values.
        """
        if self.order is None:  # the class of the largest probability, as the metrics take it
            values = np.asarray(self.scheme.class_values, self.dtype)
            return values[np.asarray(probabilities).argmax(0)]
        masks = probabilities_to_masks(torch.as_tensor(probabilities), True, self.threshold).numpy()
        label = np.zeros(masks.shape[1:], self.dtype)
        for channel, value in self.order:
            label[masks[channel]] = value
        return label
