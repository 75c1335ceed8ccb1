"""Runs the pool-scoring and feature-based strategies in one or N gloo processes; writes rank 0's selections as JSON.

Usage: ``python ddp_worker.py OUT.json [WORLD_SIZE]``. The processes meet through a file store in a fresh temporary
folder and talk over the loopback interface only (no rendezvous agent, no ports to pick).
"""

import json
import os
import sys
import tempfile

import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch import seed_everything

from alseg.core.inference import _shard
from alseg.core.query_view import QueryView
from alseg.core.testing import InMemoryDataModule, TinySegmentationModel
from alseg.strategies.bald import BALDStrategy
from alseg.strategies.coreset import CoresetStrategy
from alseg.strategies.entropy import EntropyStrategy
from alseg.strategies.interpolation import InterpolationStrategy
from alseg.strategies.representativeness import RepresentativenessStrategy, UncertaintyRepresentativenessStrategy


def select(rank: int, world: int, store: str, out: str) -> None:
    """Selects with every pool-scoring strategy on one rank; rank 0 writes the result."""
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    seed_everything(0, verbose=False)
    data = InMemoryDataModule(num_cases=8, pool_batch_size=5)  # 5 does not divide the pool: uneven shards
    model = TinySegmentationModel()
    model.bind_data(data)
    selections = {
        type(strategy).__name__: strategy.select_items_to_label(model, QueryView(data), 6, seed=3, round=1)[0]
        for strategy in (
            EntropyStrategy(),
            BALDStrategy(mc_samples=4),
            CoresetStrategy(chunk_size=7),
            RepresentativenessStrategy(features="image", feature_dimensionality=4, chunk_size=7),
            UncertaintyRepresentativenessStrategy(method="clustering", clusters=3),
            InterpolationStrategy(block_thickness=3),
        )
    }
    if world > 1:  # each rank streamed only its share of the pool's batches
        assert 0 < len(_shard(data.unlabeled_dataloader())) < len(data.unlabeled_dataloader()), "pool not split"
        dist.destroy_process_group()
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(selections, handle)


if __name__ == "__main__":
    out, world = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory() as folder:
        # fork: the ranks inherit the imported modules (CPU-only gloo, no CUDA state to corrupt)
        mp.start_processes(select, args=(world, os.path.join(folder, "store"), out), nprocs=world, start_method="fork")
