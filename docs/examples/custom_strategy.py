"""A custom query strategy: margin sampling (the smallest gap between the two most likely classes).

Runs as it is: ``tests/docs/test_examples.py`` checks it with the conformance kit and runs it through
``alseg-train`` (see the Extending page of the documentation).
"""

from typing import Any

import numpy as np
import torch

from alseg.core import ConfigError, QueryStrategy
from alseg.core.inference import stream_probabilities


def margin_uncertainty(probabilities: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Per-voxel uncertainty ``1 - (p_first - p_second)`` of probabilities ``[B, C, *S]``; returns ``[B, *S]``.

    Softmax outputs: the gap between the two most likely classes. Sigmoid (multi-label) outputs: each channel's gap
    between foreground and background, ``1 - |2p - 1|``, averaged over the channels.
    """
    if multi_label:
        return (1.0 - (2.0 * probabilities - 1.0).abs()).mean(dim=1)
    top2 = probabilities.topk(2, dim=1).values
    return 1.0 - (top2[:, 0] - top2[:, 1])


class MarginStrategy(QueryStrategy):
    """Labels the items whose mean (or maximum) margin uncertainty is highest.

    Args:
        aggregation: ``mean`` or ``max`` over an item's voxels.
    """

    def __init__(self, aggregation: str = "mean") -> None:
        if aggregation not in ("mean", "max"):
            raise ConfigError(f"The 'aggregation' option of MarginStrategy must be mean or max. Got {aggregation!r}.")
        self.aggregation = aggregation

    def select_items_to_label(
        self, models, data_module, items_to_label: int, *, seed: int = 0, **kwargs: Any
    ) -> tuple[list[str], dict[str, Any] | None]:
        # data_module is a QueryView: the pool without labels, ids, class names, multi_label(), record(...).
        multi_label = data_module.multi_label()
        ids, scores = [], []
        for batch, probabilities in stream_probabilities(models, data_module):  # [B, C, *S], on the Trainer's device
            voxels = margin_uncertainty(probabilities, multi_label).flatten(1)
            item_scores = voxels.mean(dim=1) if self.aggregation == "mean" else voxels.amax(dim=1)
            ids += list(batch["id"])
            scores += item_scores.cpu().tolist()
        # Highest score first; equal scores in the order of a permutation drawn from the round's seed (never by id).
        order = sorted(range(len(ids)), key=lambda i: ids[i])
        tie_break = np.random.default_rng(seed).permutation(len(order))
        ranked = sorted(range(len(order)), key=lambda n: (-scores[order[n]], tie_break[n]))
        selected = [ids[order[n]] for n in ranked[:items_to_label]]
        score_of = dict(zip(ids, scores, strict=True))
        if selected:  # a note in this round's ledger entry (strategy_notes), JSON-serialisable
            data_module.record("mean_selected_margin", float(np.mean([score_of[i] for i in selected])))
        return selected, None  # no pseudo labels
