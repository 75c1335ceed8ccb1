"""Runs the patch strategies in one or N gloo processes over a patch pool; writes rank 0's selections as JSON.

Usage: ``python patch_ddp_worker.py OUT.json WORLD_SIZE DATA_DIR CACHE_DIR`` (a BraTS folder; its cache is prepared
before the ranks start, so they only read it).
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
from alseg.datasets.brats import BraTSDataModule
from alseg.models.unet import UNet
from alseg.strategies.bald import BALDStrategy
from alseg.strategies.entropy import EntropyStrategy
from alseg.strategies.oracle_fg import ForegroundAwareRandomStrategy
from alseg.strategies.random import RandomStrategy


def data_module(data_dir: str, cache_dir: str) -> BraTSDataModule:
    """The patch pool of the test: 8 x 8 x 4 boxes of the training cases, 2 labelled."""
    options = {"query_patch_size": (8, 8, 4), "patch_size": (8, 8, 8), "initial_training_set_size": 2}
    return BraTSDataModule(data_dir=data_dir, cache_dir=cache_dir, dim=3, annotation_unit="patch", **options)


def select(rank: int, world: int, store: str, out: str, data_dir: str, cache_dir: str) -> None:
    """Selects with every patch strategy on one rank; rank 0 writes the result."""
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    seed_everything(0, verbose=False)
    data = data_module(data_dir, cache_dir)
    data.setup()
    model = UNet(dim=3, base_channels=4, num_levels=2)
    model.bind_data(data)
    strategies = (EntropyStrategy(), BALDStrategy(mc_samples=3), RandomStrategy(), ForegroundAwareRandomStrategy())
    selections = {
        type(strategy).__name__: strategy.select_items_to_label(model, QueryView(data), 4, seed=3, round=1)[0]
        for strategy in strategies
    }
    if world > 1:  # each rank scored only its share of the pool cases
        cases = data.pool_case_dataloader()
        assert 0 < len(_shard(cases)) < len(cases), "pool cases not split"
        dist.destroy_process_group()
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(selections, handle)


if __name__ == "__main__":
    out, world, data_dir, cache_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    data_module(data_dir, cache_dir).prepare_data()
    with tempfile.TemporaryDirectory() as folder:
        args = (world, os.path.join(folder, "store"), out, data_dir, cache_dir)
        mp.start_processes(select, args=args, nprocs=world, start_method="fork")
