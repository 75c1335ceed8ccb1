"""Per-item scores of the whole pool, reduced batch by batch as the model streams over it."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from alseg.core.errors import PluginError
from alseg.core.inference import gather_pool, stream_probabilities
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView


@dataclass(frozen=True)
class PoolScores:
    """Scores of every pool item (gathered over all ranks), in ascending id order.

    Attributes:
        ids: Pool ids, sorted.
        scores: Float64 scores ``(N,)`` aligned with ``ids``; higher = label first.
        case_ids: The volume each id belongs to (``case_id`` metadata, or the id itself).
    """

    ids: list[str]
    scores: Tensor
    case_ids: dict[str, str]


def score_pool(
    models: PytorchModel | list[PytorchModel],
    data_module: QueryView,
    item_scores: Callable[[Tensor, bool], Tensor],
    mc_samples: int | None = None,
    seed: int = 0,
) -> PoolScores:
    """Streams the pool through the model and reduces every batch to per-item scores at once.

    The scores stay on the model's device until the pool is done and then come to the host in one copy: the stream
    never waits for the device (no host synchronisation per batch).

    Args:
        models: The model (or a list whose first model is used); it runs where
            :func:`~alseg.core.inference.current_placement` says (the Trainer's device in a pipeline).
        data_module: The strategy's view of the data module; its unlabelled pool is scored.
        item_scores: Maps a batch's probabilities (``[B, C, *S]``, or ``[K, B, C, *S]`` with MC samples) and the
            data module's ``multi_label()`` to scores ``[B]``.
        mc_samples: Number of MC-dropout samples, or None for one deterministic pass.
        seed: Seed of the MC-dropout masks.

    Returns:
        The pool's scores; only O(pool) numbers are kept, never probability maps.
    """
    model = models[0] if isinstance(models, list) else models
    multi_label = data_module.multi_label()
    local_ids: list[str] = []
    case_ids: list[str] = []
    chunks: list[Tensor] = []  # on the model's device until the stream ends: no host synchronisation per batch
    for batch, probabilities in stream_probabilities(model, data_module, mc_samples, seed):
        chunks.append(item_scores(probabilities, multi_label).detach())
        if chunks[-1].shape != (len(batch["id"]),):
            raise PluginError(
                f"The item scores of a batch of {len(batch['id'])} have shape {tuple(chunks[-1].shape)}; expected "
                f"({len(batch['id'])},)."
            )
        local_ids += [str(i) for i in batch["id"]]
        case_ids += _case_ids(batch)
    scores = torch.cat(chunks).to("cpu", torch.float64).tolist() if chunks else []
    merged = gather_pool(dict(zip(local_ids, zip(scores, case_ids, strict=True), strict=True)))
    ids = sorted(merged)
    if not ids and data_module.unlabeled_set_size() > 0:
        raise PluginError(
            f"The data module's pool loader yielded no items, but unlabeled_set_size() is "
            f"{data_module.unlabeled_set_size()}."
        )
    return PoolScores(
        ids=ids,
        scores=torch.tensor([merged[i][0] for i in ids], dtype=torch.float64),
        case_ids={i: merged[i][1] for i in ids},
    )


def _case_ids(batch: dict[str, Any]) -> list[str]:
    return [str(i) for i in batch.get("case_id", batch["id"])]
