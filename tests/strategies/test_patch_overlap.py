"""Every built-in strategy on a patch pool keeps the overlap rule, or refuses the pool with a ConfigError."""

import itertools
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from alseg.core.errors import ConfigError
from alseg.core.patch_pool import Box, PatchPool
from alseg.core.query_view import QueryView
from alseg.core.registry import registered
from alseg.strategies.patch_query import shuffled

STRATEGIES = registered("strategy")
OBEYING = ("random", "fg_random", "oracle_fg", "fg_aware_random", "entropy", "power_entropy", "bald", "power_bald")
REFUSING = ("coreset", "representativeness", "uncertainty_representativeness")
SHAPE = (8, 8, 8)
SIZE = (4, 4, 4)


def _box_id(start: tuple[int, ...]) -> str:
    return "case:" + "-".join(map(str, start))


class PatchData:
    """A data module of one 8³ volume whose pool is every 4³ box on a stride-2 grid but the labelled one at 0."""

    def __init__(self) -> None:
        starts = list(itertools.product((0, 2, 4), repeat=3))
        boxes = {_box_id(s): Box("case", s, SIZE) for s in starts}
        labelled = _box_id((0, 0, 0))
        generator = torch.Generator().manual_seed(0)
        self.volume = torch.rand(1, *SHAPE, generator=generator)
        self.pool = PatchPool(
            patch_size=SIZE,
            window=SHAPE,
            max_overlap=0.0,
            case_shapes={"case": SHAPE},
            pool={i: b for i, b in boxes.items() if i != labelled},
            labelled={labelled: boxes[labelled]},
        )

    def patch_pool(self) -> PatchPool:
        return self.pool

    def unlabeled_ids(self) -> list[str]:
        return sorted(self.pool.pool)

    def unlabeled_set_size(self) -> int:
        return len(self.pool.pool)

    def labeled_ids(self) -> list[str]:
        return sorted(self.pool.labelled)

    def training_set_size(self) -> int:
        return len(self.pool.labelled)

    def multi_label(self) -> bool:
        return False

    def num_classes(self) -> int:
        return 2

    def item_metadata(self, ids: list[str]) -> list[dict[str, Any]]:
        return [{"case_id": "case"} for _ in ids]

    def items_with_foreground(self, ids: list[str]) -> list[bool]:
        return [True] * len(ids)

    def _crops(self, boxes: dict[str, Box]) -> DataLoader:
        items = [{"id": i, "case_id": "case", "image": self.volume[(slice(None), *b.slices)]} for i, b in boxes.items()]
        return DataLoader(items, batch_size=4)

    def unlabeled_dataloader(self) -> DataLoader:
        return self._crops(dict(sorted(self.pool.pool.items())))

    def labeled_dataloader(self) -> DataLoader:
        return self._crops(dict(self.pool.labelled))

    def pool_case_dataloader(self) -> DataLoader:
        return DataLoader([{"id": "case", "case_id": "case", "image": self.volume}], batch_size=1)


class VoxelModel(nn.Module):
    """A 3D per-voxel softmax model with dropout (for BALD) that predicts foreground somewhere in every box."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(1, 2, 1)
        self.dropout = nn.Dropout(0.5)

    def input_dimensionality(self) -> int:
        return 3

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self.dropout(self.conv(batch["image"]))
        return torch.cat([logits[:, :1], logits[:, 1:] + 10 * (batch["image"] - 0.5)], dim=1).softmax(dim=1)


def _overlap(a: Box, b: Box) -> bool:
    ends = zip(a.start, a.size, b.start, b.size, strict=True)
    return a.case_id == b.case_id and all(s < t + m and t < s + n for s, n, t, m in ends)


def _load(name: str) -> type:
    module, attribute = STRATEGIES[name].rsplit(".", 1)
    return getattr(__import__(module, fromlist=[attribute]), attribute)


def test_the_pool_forces_skips_under_the_rule():
    """Most boxes touch the labelled one or each other: taking the first three of a random order would overlap."""
    data = PatchData()
    first = [data.pool.pool[i] for i in shuffled(list(data.pool.pool), 0)[:3]]
    boxes = first + list(data.pool.labelled.values())
    assert any(_overlap(a, b) for a, b in itertools.combinations(boxes, 2))


@pytest.mark.parametrize("name", OBEYING)
def test_selected_boxes_overlap_neither_labelled_nor_each_other(name):
    data = PatchData()
    selected, _ = _load(name)().select_items_to_label(VoxelModel(), QueryView(data, name), 3, seed=0)
    assert len(selected) == 3
    boxes = [data.pool.pool[i] for i in selected] + list(data.pool.labelled.values())
    assert not any(_overlap(a, b) for a, b in itertools.combinations(boxes, 2))


@pytest.mark.parametrize("name", REFUSING)
def test_strategies_without_the_rule_refuse_patch_pools(name):
    with pytest.raises(ConfigError, match=rf"{_load(name).__name__}.*'max_overlap'"):
        _load(name)().select_items_to_label(VoxelModel(), QueryView(PatchData(), name), 3, seed=0)


def test_every_registered_strategy_is_covered():
    assert set(STRATEGIES) == {*OBEYING, *REFUSING, "interpolation"}


def test_interpolation_refuses_patch_pools():
    with pytest.raises(ConfigError, match="slice"):
        _load("interpolation")().select_items_to_label(VoxelModel(), QueryView(PatchData()), 3, seed=0)
