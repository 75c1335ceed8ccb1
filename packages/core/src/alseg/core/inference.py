"""Inference streaming: the one place that runs a model over the unlabelled pool for a strategy.

Strategies consume batches as they stream and reduce them at once (to per-item scores or embeddings), so the pool's
probability maps are never held in memory together. Under ``torch.distributed`` (e.g. after a Lightning DDP fit)
each rank runs over a disjoint, strided shard of the pool (every item exactly once, no padding duplicates), and
:func:`gather` merges the per-item results so that every rank sees the whole pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import PluginError
from alseg.core.mc_dropout import mc_dropout
from alseg.core.model import PytorchModel


def stream_probabilities(
    model: PytorchModel, data_module: ActiveLearningDataModule, mc_samples: int | None = None, seed: int = 0
) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
    """Yields ``(batch, probabilities)`` over this rank's share of the pool.

    Args:
        model: The model; it runs on its own device, in eval mode (restored afterwards).
        data_module: The data module whose unlabelled pool is streamed.
        mc_samples: None for one deterministic pass (``[B, C, *spatial]``); K for K MC-dropout samples
            (``[K, B, C, *spatial]``), with only dropout layers switched to sampling.
        seed: Seed of the dropout masks. Each batch draws from its own generator state, derived from ``seed`` and
            the batch's index in the whole pool, so the samples do not depend on how the pool is split across ranks.

    Yields:
        The batch (tensors on the model's device) and float32 probabilities.
    """
    if mc_samples is not None and mc_samples < 1:
        raise PluginError(f"mc_samples must be >= 1. Got {mc_samples}.")
    for index, batch in _batches(model, data_module):
        with _evaluating(model):
            if mc_samples is None:
                probabilities = model.predict_step(batch, index).float()
            else:
                with mc_dropout(model), _seeded(model, seed, index):
                    probabilities = torch.stack([model.predict_step(batch, index).float() for _ in range(mc_samples)])
        yield batch, probabilities


def stream_embeddings(
    model: PytorchModel, data_module: ActiveLearningDataModule, loader: DataLoader | None = None, requested_by: str = ""
) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
    """Yields ``(batch, embeddings [B, D])`` from ``model.embedding_step`` over the pool (or ``loader``).

    Raises:
        PluginError: The model does not implement ``embedding_step`` (naming the model and ``requested_by``).
    """
    if type(model).embedding_step is PytorchModel.embedding_step:
        raise PluginError(
            f"Strategy {requested_by or 'this strategy'} needs feature vectors, but {type(model).__name__} does not "
            "implement embedding_step(batch, batch_idx) -> Tensor[B, D]."
        )
    for index, batch in _batches(model, data_module, loader):
        with _evaluating(model):
            embeddings = model.embedding_step(batch, index).float()
        yield batch, embeddings


def _batches(
    model: PytorchModel, data_module: ActiveLearningDataModule, loader: DataLoader | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    device = next(model.parameters()).device
    loader = _shard(loader or data_module.unlabeled_dataloader())
    sampler = loader.batch_sampler
    indices = sampler.global_indices if isinstance(sampler, _IndexedBatches) else None
    for position, batch in enumerate(loader):
        index = position if indices is None else indices[position]
        yield index, {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@contextmanager
def _seeded(model: PytorchModel, seed: int, batch_index: int) -> Iterator[None]:
    """Seeds torch's global RNG (on the model's device too) for one batch and restores it afterwards."""
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        torch.manual_seed(int(np.random.SeedSequence([seed, batch_index]).generate_state(1)[0]))
        yield


@contextmanager
def _evaluating(model: PytorchModel) -> Iterator[None]:
    """Eval mode and inference mode for one batch; the model's previous modes are restored afterwards.

    Entered per batch, not around the generator, so that neither mode leaks into the consumer between yields.
    """
    modes = [module.training for module in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for module, mode in zip(model.modules(), modes, strict=True):
            module.training = mode


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _shard(loader: DataLoader) -> DataLoader:
    """Restricts a loader to this rank's share of its batches (unchanged outside distributed runs).

    Whole batches are dealt out round-robin, so every item is seen exactly once (no padding duplicates) and every
    batch holds the same items as in a single-process run, keeping its index (and so its MC-dropout seed).
    """
    if not _distributed():
        return loader
    rank, world = dist.get_rank(), dist.get_world_size()
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


def gather(local: dict[str, Any]) -> dict[str, Any]:
    """Merges per-item results ``{id: value}`` of all ranks (identity outside distributed runs)."""
    if not _distributed():
        return local
    parts: list[dict[str, Any]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(parts, local)
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged
