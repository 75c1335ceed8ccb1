"""Runs the pool-scoring strategies once (plain python) or on 2 gloo ranks (torchrun); writes rank 0's selections."""

import json
import os
import sys

import torch.distributed as dist
from lightning.pytorch import seed_everything

from alseg.core.inference import _shard
from alseg.core.testing import InMemoryDataModule, TinySegmentationModel
from alseg.strategies.bald import BALDStrategy
from alseg.strategies.coreset import CoresetStrategy
from alseg.strategies.entropy import EntropyStrategy

if __name__ == "__main__":
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    seed_everything(0, verbose=False)
    data = InMemoryDataModule(num_cases=8, pool_batch_size=5)  # 5 does not divide the pool: uneven shards
    model = TinySegmentationModel()
    model.bind_data(data)
    selections = {
        type(strategy).__name__: strategy.select_items_to_label(model, data, 6, seed=3, round=1)[0]
        for strategy in (EntropyStrategy(), BALDStrategy(mc_samples=4), CoresetStrategy(chunk_size=7))
    }
    if dist.is_initialized():  # each rank streamed only its share of the pool's batches
        shard = _shard(data.unlabeled_dataloader())
        assert 0 < len(shard) < len(data.unlabeled_dataloader()), "the pool was not split across ranks"
    if not dist.is_initialized() or dist.get_rank() == 0:
        with open(sys.argv[1], "w") as handle:
            json.dump(selections, handle)
