"""Inference streaming: the one place that runs a model over the unlabelled pool for a strategy.

The model runs where the pipeline's Trainer trains it: the pipeline enters :func:`placement` with the Trainer's root
device and precision around every query (Lightning moves a module back to the CPU after ``fit``, so the model's own
device says nothing). Outside a pipeline (a strategy called directly) the model runs on its own device in float32.

Strategies consume batches as they stream and reduce them at once (to per-item scores or embeddings), so the pool's
probability maps are never held in memory together; :func:`stream_images` streams the images alone, for features that
need no model. On a terminal every stream shows a bar of the items done, in items per second with an ETA
(:func:`alseg.core.progress.bar`; rank 0 only, counted from the batches' ids, so without a host synchronisation).
Under ``torch.distributed`` (e.g. after a Lightning DDP fit)
each rank runs over a disjoint, strided shard of the pool (every item exactly once, no padding duplicates), and
:func:`map_pool` reduces each batch to per-item values and gathers them, so that every rank sees the whole pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from alseg.core import distributed, progress
from alseg.core.errors import PluginError
from alseg.core.mc_dropout import mc_dropout
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView


@dataclass(frozen=True)
class Placement:
    """Where and how pool inference runs.

    Attributes:
        device: The device the model and batches are moved to (the Trainer's root device).
        forward_context: Returns the context of a forward pass (the Trainer's precision, e.g. autocast for
            ``16-mixed``).
        convert_input: Converts a batch for the precision (e.g. to half for ``16-true``).
    """

    device: torch.device
    forward_context: Callable[[], AbstractContextManager[Any]] = nullcontext
    convert_input: Callable[[Any], Any] = lambda batch: batch


_PLACEMENT: ContextVar[Placement | None] = ContextVar("alseg_inference_placement", default=None)


@contextmanager
def placement(where: Placement) -> Iterator[None]:
    """Runs pool inference inside the block on ``where.device`` with its precision (the pipeline enters it)."""
    token = _PLACEMENT.set(where)
    try:
        yield
    finally:
        _PLACEMENT.reset(token)


def current_placement(model: PytorchModel) -> Placement:
    """Returns the placement of pool inference: the pipeline's, or the model's own device in float32."""
    return _PLACEMENT.get() or Placement(next(model.parameters()).device)


def stream_probabilities(
    model: PytorchModel, data_module: QueryView, mc_samples: int | None = None, seed: int = 0
) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
    """Yields ``(batch, probabilities)`` over this rank's share of the pool.

    Args:
        model: The model; it runs in eval mode (restored afterwards) on the device and with the precision of
            :func:`current_placement`.
        data_module: The data module whose unlabelled pool is streamed.
        mc_samples: None for one deterministic pass (``[B, C, *spatial]``); K for K MC-dropout samples
            (``[K, B, C, *spatial]``), with only dropout layers switched to sampling.
        seed: Seed of the dropout masks. Each batch draws from its own generator state, derived from ``seed`` and
            the batch's index in the whole pool, so the samples do not depend on how the pool is split across ranks.

    Yields:
        The batch (tensors on the placement's device) and float32 probabilities.
    """
    if mc_samples is not None and mc_samples < 1:
        raise PluginError(f"mc_samples must be >= 1. Got {mc_samples}.")
    where = current_placement(model)
    description = "pool scoring" if mc_samples is None else f"pool scoring ({mc_samples} MC samples)"
    for index, batch in _batches(model, data_module.unlabeled_dataloader(), where, description):
        yield batch, batch_probabilities(model, batch, where, mc_samples, seed, index)


def batch_probabilities(
    model: PytorchModel,
    batch: dict[str, Any],
    where: Placement,
    mc_samples: int | None = None,
    seed: int = 0,
    index: int = 0,
) -> torch.Tensor:
    """Float32 probabilities of one batch (already on ``where.device``), in eval and inference mode (restored after).

    Args:
        model: The model, on ``where.device``.
        batch: The batch, ``image [B, C, *S]``.
        where: Device and precision.
        mc_samples: None for one deterministic pass, ``[B, C, *S]``; K for K MC-dropout samples, ``[K, B, C, *S]``
            (only dropout layers sample).
        seed: Seed of the dropout masks, which derive from ``(seed, index)``.
        index: The batch's index (in the whole pool, when streaming it), passed to ``predict_step``.
    """
    with _evaluating(model, where):
        if mc_samples is None:
            return model.predict_step(batch, index).float()
        with mc_dropout(model), _seeded(where.device, seed, index):
            return torch.stack([model.predict_step(batch, index).float() for _ in range(mc_samples)])


def stream_embeddings(
    model: PytorchModel, data_module: QueryView, loader: DataLoader | None = None, requested_by: str = ""
) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
    """Yields ``(batch, embeddings [B, D])`` from ``model.embedding_step`` over the pool (or ``loader``).

    The model runs as in :func:`stream_probabilities`; embeddings are float32.

    Raises:
        PluginError: The model does not implement ``embedding_step`` (naming the model and ``requested_by``).
    """
    if type(model).embedding_step is PytorchModel.embedding_step:
        raise PluginError(
            f"Strategy {requested_by or 'this strategy'} needs feature vectors, but {type(model).__name__} does not "
            "implement embedding_step(batch, batch_idx) -> Tensor[B, D]."
        )
    where = current_placement(model)
    for index, batch in _batches(model, loader or data_module.unlabeled_dataloader(), where, "embeddings"):
        with _evaluating(model, where):
            embeddings = model.embedding_step(batch, index).float()
        yield batch, embeddings


def stream_images(
    loader: DataLoader, device: torch.device | None = None
) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
    """Yields ``(batch, images [B, C, *S])`` over this rank's share of ``loader``'s batches, for :func:`map_pool`.

    For strategies whose features come from the images themselves rather than from a model (no model runs). The
    batches are dealt out over the ranks as in :func:`stream_probabilities`, so that :func:`map_pool` gathers one
    value per item of the whole loader on every rank.

    Args:
        loader: E.g. ``data_module.unlabeled_dataloader()`` or ``data_module.labeled_dataloader()``.
        device: Where the images go; by default the device of the pipeline's :func:`placement` (the Trainer's root
            device), or the CPU outside a pipeline.

    Yields:
        The batch as the loader gives it (its other tensors stay where they are) and its ``image`` as float32 on
        ``device``.
    """
    where = _PLACEMENT.get()
    target = device or (where.device if where else torch.device("cpu"))
    for batch in _counted(_shard(loader), "images"):
        yield batch, batch["image"].to(target, torch.float32)


def _batches(
    model: PytorchModel, loader: DataLoader, where: Placement, description: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields this rank's batches with their index in the whole pool, on the placement's device."""
    model.to(where.device)
    loader = _shard(loader)
    sampler = loader.batch_sampler
    indices = sampler.global_indices if isinstance(sampler, _IndexedBatches) else None
    for position, batch in enumerate(_counted(loader, description)):
        index = position if indices is None else indices[position]
        moved = {
            k: v.to(where.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
        }
        yield index, where.convert_input(moved)


def _counted(loader: DataLoader, description: str) -> Iterator[dict[str, Any]]:
    """Yields ``loader``'s batches, counting each batch's items on a progress bar once its consumer is done with it."""
    batches = loader.batch_sampler
    if isinstance(batches, _IndexedBatches):
        total: int | None = sum(map(len, batches))
        description += f" (rank 0's share of {distributed.world_size()} ranks)"
    else:
        try:
            total = len(batches.sampler if isinstance(batches, BatchSampler) else loader.dataset)
        except TypeError:  # an iterable dataset: no ETA
            total = None
    with progress.bar(total, description) as items:
        for batch in loader:
            yield batch
            items.update(len(batch["id"]))


@contextmanager
def _seeded(device: torch.device, seed: int, batch_index: int) -> Iterator[None]:
    """Seeds torch's global RNG (on ``device`` too) for one batch and restores it afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        torch.manual_seed(int(np.random.SeedSequence([seed, batch_index]).generate_state(1)[0]))
        yield


@contextmanager
def _evaluating(model: PytorchModel, where: Placement) -> Iterator[None]:
    """Eval mode, inference mode and the placement's precision for one batch; previous modes are restored after.

    Entered per batch, not around the generator, so that neither mode leaks into the consumer between yields.
    """
    modes = [module.training for module in model.modules()]
    model.eval()
    try:
        with torch.inference_mode(), where.forward_context():
            yield
    finally:
        for module, mode in zip(model.modules(), modes, strict=True):
            module.training = mode


def _shard(loader: DataLoader) -> DataLoader:
    """Restricts a loader to this rank's share of its batches (unchanged outside distributed runs).

    Whole batches are dealt out round-robin, so every item is seen exactly once (no padding duplicates) and every
    batch holds the same items as in a single-process run, keeping its index (and so its MC-dropout seed).
    """
    if not distributed.is_distributed():
        return loader
    rank, world = distributed.rank(), distributed.world_size()
    batches = list(BatchSampler(SequentialSampler(loader.dataset), loader.batch_size, drop_last=False))
    return DataLoader(
        loader.dataset,
        batch_sampler=_IndexedBatches(batches, rank, world),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
    )


class _IndexedBatches(list):
    """Every ``world``-th batch starting at ``rank``; remembers the global index of each."""

    def __init__(self, batches: list[list[int]], rank: int, world: int) -> None:
        super().__init__(batches[rank::world])
        self.global_indices = list(range(len(batches)))[rank::world]


def map_pool(
    stream: Iterator[tuple[dict[str, Any], torch.Tensor]],
    fn: Callable[[dict[str, Any], torch.Tensor], Sequence[Any]],
) -> dict[str, Any]:
    """Maps ``fn`` over a stream's batches and returns one value per item of the whole pool, gathered over the ranks.

    The one way a strategy turns pool inference into per-item results: every rank streams its share, and every rank
    gets the values of all items.

    Args:
        stream: :func:`stream_probabilities`, :func:`stream_embeddings` or :func:`stream_images` (``(batch, tensor)``
            pairs).
        fn: Maps a batch and its tensor (probabilities ``[B, C, *S]`` / ``[K, B, C, *S]``, embeddings ``[B, D]``
            or images ``[B, C, *S]``) to ``B`` picklable per-item values (e.g. ``scores.tolist()``), reduced at once
            so that no probability map is kept.

    Returns:
        ``{id: value}`` over the pool.

    Raises:
        PluginError: ``fn`` returned another number of values than the batch has items.
    """
    local: dict[str, Any] = {}
    for batch, tensor in stream:
        values = list(fn(batch, tensor))
        if len(values) != len(batch["id"]):
            raise PluginError(
                f"map_pool: the function returned {len(values)} values for a batch of {len(batch['id'])}."
            )
        local.update(zip(batch["id"], values, strict=True))
    return gather_pool(local)


def gather_pool(local: dict[str, Any]) -> dict[str, Any]:
    """Returns, on every rank, the per-item values of the whole pool from each rank's share ``local`` (picklable)."""
    merged: dict[str, Any] = {}
    for part in distributed.all_gather_objects(local):
        merged.update(part)
    return merged
