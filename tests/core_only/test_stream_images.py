"""stream_images: a loader's images, on the placement's device, sharded over the ranks so that map_pool gathers them."""

import torch

from alseg.core import distributed
from alseg.core.inference import Placement, map_pool, placement, stream_images
from alseg.core.query_view import QueryView
from alseg.core.testing import InMemoryDataModule


def pool_loader(batch_size=3):
    return QueryView(InMemoryDataModule(pool_batch_size=batch_size)).unlabeled_dataloader()


def test_images_come_as_float32_on_the_placement_device_and_map_pool_gathers_every_item():
    loader = pool_loader()
    batch, images = next(stream_images(loader))
    assert images.device.type == "cpu" and images.dtype == torch.float32
    assert torch.equal(images, batch["image"].float())
    with placement(Placement(torch.device("meta"))):
        _, on_placement = next(stream_images(loader))
    _, on_request = next(stream_images(loader, torch.device("meta")))
    assert on_placement.device.type == "meta" and on_request.device.type == "meta"
    sums = map_pool(stream_images(loader), lambda batch, images: images.flatten(1).sum(1).tolist())
    assert sorted(sums) == sorted(loader.dataset[i]["id"] for i in range(len(loader.dataset)))


def test_each_rank_streams_a_disjoint_share_of_the_batches(monkeypatch):
    loader = pool_loader(batch_size=3)  # 20 pool items: 7 batches
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "is_distributed", lambda: True)
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        monkeypatch.setattr(distributed, "world_size", lambda: 2)
        shares.append([item for batch, _ in stream_images(loader) for item in batch["id"]])
    every = [loader.dataset[i]["id"] for i in range(len(loader.dataset))]
    assert len(shares[0]) == 11 and len(shares[1]) == 9  # batches 0, 2, 4, 6 (the last of 2 items) and 1, 3, 5
    assert sorted(shares[0] + shares[1]) == sorted(every)
