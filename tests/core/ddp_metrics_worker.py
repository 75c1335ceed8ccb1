"""Measures volume metrics in one process or in N gloo processes; writes every rank's results as JSON.

Usage: ``python ddp_metrics_worker.py OUT.json [WORLD_SIZE]``. Each rank gets the strided share of the items that
``DistributedSampler(shuffle=False)`` deals it (padded with the first items up to a multiple of the world size), or,
for ``unpadded``, every item exactly once. The processes meet through a file store in a fresh temporary folder and
talk over the loopback interface only.
"""

import json
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch import Trainer, seed_everything
from torch.utils.data import DataLoader

from alseg.core import distributed
from alseg.core.metric_accumulator import VolumeMetricAccumulator
from alseg.core.testing import InMemoryDataModule, TinySegmentationModel

NAMES = {0: "background", 1: "edema", 2: "tumour"}
SPACING = (1.0, 1.0, 3.0)


def _padded_share(num_items: int, rank: int, world: int) -> list[int]:
    """Positions that ``DistributedSampler(shuffle=False)`` gives ``rank``: padding repeats the first items."""
    padded = [*range(num_items), *range(-num_items % world)]
    return padded[rank::world]


def _cases(num_cases: int = 3, shape: tuple[int, ...] = (6, 6, 5)) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Softmax probabilities ``[C, *shape]`` and labels ``[1, *shape]`` of noisy predictions, per case id."""
    generator = torch.Generator().manual_seed(0)
    cases = {}
    for c in range(num_cases):
        labels = torch.randint(0, len(NAMES), (1, *shape), generator=generator)
        onehot = torch.nn.functional.one_hot(labels[0], len(NAMES)).movedim(-1, 0)
        cases[f"case_{c}"] = ((torch.randn(len(NAMES), *shape, generator=generator) + 2 * onehot).softmax(0), labels)
    return cases


def _merged(accumulator: VolumeMetricAccumulator) -> dict[str, float]:
    accumulator.merge(distributed.all_gather_objects(accumulator.state()))
    return accumulator.compute()


def _accumulated(rank: int, world: int) -> dict[str, dict[str, float]]:
    """Metrics of this rank's share of the slices (in batches of 4) and of the volumes, merged over the ranks."""
    cases = _cases()
    slices = [(case, k) for case, (probs, _) in cases.items() for k in range(probs.shape[-1])]
    share = [slices[i] for i in _padded_share(len(slices), rank, world)]
    slice_accumulator = VolumeMetricAccumulator(NAMES, multi_label=False)
    for start in range(0, len(share), 4):
        batch = share[start : start + 4]
        slice_accumulator.update(
            torch.stack([cases[c][0][..., k] for c, k in batch]),
            torch.stack([cases[c][1][..., k] for c, k in batch]),
            [c for c, _ in batch],
            [k for _, k in batch],
            [SPACING] * len(batch),
        )
    volume_accumulator = VolumeMetricAccumulator(NAMES, multi_label=False)
    for case in [list(cases)[i] for i in _padded_share(len(cases), rank, world)]:
        volume_accumulator.update(cases[case][0][None], cases[case][1][None], [case], spacing=[SPACING])
    return {"slices": _merged(slice_accumulator), "volumes": _merged(volume_accumulator)}


def _validated(rank: int, world: int, folder: str) -> dict[str, dict[str, float]]:
    """``val/`` metrics of a Trainer validation, with Lightning's padded sampler and with an unpadded strided one."""
    seed_everything(0, verbose=False)
    data = InMemoryDataModule(num_cases=5, slices_per_case=5, val_cases=3, test_cases=0, batch_size=4)
    model = TinySegmentationModel(val_hd95=True)
    model.bind_data(data)
    options = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    options |= {"enable_checkpointing": False, "default_root_dir": folder, "accelerator": "cpu", "devices": world}
    strategy = "ddp" if world > 1 else "auto"
    padded = Trainer(strategy=strategy, **options).validate(model, datamodule=data, verbose=False)[0]
    loader = data.val_dataloader()  # 15 slices: uneven shards, so a mean of per-rank means would be off
    unpadded = DataLoader(loader.dataset, batch_size=4, sampler=range(rank, len(loader.dataset), world))
    trainer = Trainer(strategy=strategy, use_distributed_sampler=False, **options)
    return {"padded": padded, "unpadded": trainer.validate(model, dataloaders=unpadded, verbose=False)[0]}


def measure(rank: int, world: int, store: str, out: str) -> None:
    """Measures on one rank; rank 0 writes the list of every rank's results."""
    if world > 1:
        os.environ |= {"LOCAL_RANK": str(rank), "NODE_RANK": "0", "WORLD_SIZE": str(world)}  # Lightning joins
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    assert (distributed.rank(), distributed.world_size()) == (rank, world)
    results = _accumulated(rank, world) | _validated(rank, world, os.path.dirname(store))
    gathered = distributed.all_gather_objects(results)
    if world > 1:
        dist.destroy_process_group()
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(gathered, handle)


if __name__ == "__main__":
    out, world = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory() as folder:
        # fork: the ranks inherit the imported modules (CPU-only gloo, no CUDA state to corrupt)
        mp.start_processes(measure, args=(world, os.path.join(folder, "store"), out), nprocs=world, start_method="fork")
