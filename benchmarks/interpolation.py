"""Interpolated pseudo-labels on the synthetic BraTS data, and the query time of the strategies of issue 12.

1. **Quality.** Synthetic BraTS cases with a tumour (``--shape``, by default 64 x 64 x 155: BraTS's 155 axial
   slices, so that a tumour spans about as many slices as a real one) are cut into consecutive blocks of
   ``--thickness`` axial slices (each block's bottom slice is the next one's top). The inner slices of each block are
   interpolated from the ground truth of its two end slices, as the ``interpolation`` strategy's pseudo labels are,
   and compared with their own ground truth (:func:`alseg.core.metrics.label_dice`, mean over the TC/WT/ET regions),
   over the inner slices whose ground truth holds tumour. For comparison: copying the nearer end's label.
2. **Time.** One query of each strategy (median of ``--repeats`` after a warm-up) on the pool of the built-in
   synthetic benchmark (the data of ``benchmarks/strategy_overhead.py``) with the reference U-Net, as a ratio to
   entropy's.

Usage: ``uv run python benchmarks/interpolation.py [--thickness 5] [--repeats 3]``.
"""

import argparse
import importlib
import statistics
import tempfile

import torch
from timing import median_seconds

from alseg.core.metrics import label_dice
from alseg.core.query_view import QueryView
from alseg.core.registry import registered
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.synthetic import SyntheticBraTS
from alseg.models.unet import UNet
from alseg.strategies.blocks import Block, runs
from alseg.strategies.interpolation import InterpolatedBlock

#: Strategy short name → constructor options, timed against entropy.
TIMED = {
    "entropy": {},
    "interpolation": {},
    "interpolation-random": {"block_selection": "random"},
    "representativeness": {"features": "image", "method": "distance"},
    "representativeness-clustering": {"features": "image", "method": "clustering"},
    "representativeness-cases": {"method": "cases"},
    "uncertainty_representativeness": {"features": "image"},
}


def blocks_of_every_case(data: BraTSDataModule, thickness: int) -> list[Block]:
    """Consecutive blocks of ``thickness`` slices of every training case, sharing their end slices."""
    ids = data.labeled_ids() + data.unlabeled_ids()
    positions = {i: (m["case_id"], m["slice_index"]) for i, m in zip(ids, data.item_metadata(ids), strict=True)}
    blocks = []
    for run in runs(positions):  # skip_empty_slices=False: a case's slices are one run
        blocks += [Block(tuple(run[s : s + thickness])) for s in range(0, len(run) - thickness + 1, thickness - 1)]
    return blocks


def pseudo_label_dice(data: BraTSDataModule, blocks: list[Block], method: str | None) -> list[float]:
    """The Dice of the inner slices with tumour: interpolated by ``method``, or (None) the nearer end's label."""
    dice = []
    classes, multi_label = data.num_classes(), data.multi_label()
    for block in blocks:
        truth = data.ground_truth(list(block.ids))
        if method is None:
            half = len(block.inner) / 2
            derived = {i: truth[block.ids[0] if n < half else block.ids[-1]] for n, i in enumerate(block.inner)}
        else:
            derived = InterpolatedBlock(block, multi_label, classes, method).derive(truth)
        dice += [label_dice(label, truth[i], classes, multi_label) for i, label in derived.items() if truth[i].any()]
    return dice


def strategy(name: str) -> object:
    """A strategy of :data:`TIMED` by its name there."""
    module, cls = registered("strategy")[name.split("-")[0]].rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)(**TIMED[name])


def main() -> None:
    """Prints the pseudo-label Dice of each interpolation method and the query time of each strategy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thickness", type=int, default=5)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 155], help="of the quality's synthetic cases")
    parser.add_argument("--cases", type=int, default=4, help="synthetic cases of the quality measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--items", type=int, default=16, help="items_to_label of the timed queries")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as cache:
        options = SyntheticBraTS(cases=args.cases, shape=tuple(args.shape), tumour_fraction=1.0)
        data = BraTSDataModule(
            cache_dir=cache, synthetic=options, skip_empty_slices=False, val_fraction=0.0, test_fraction=0.0
        )
        data.setup()
        blocks = blocks_of_every_case(data, args.thickness)
        print(f"{len(blocks)} blocks of {args.thickness} slices of {args.cases} cases of {args.shape}")
        for method in ("signed_distance", "morphological_contour", None):
            dice = pseudo_label_dice(data, blocks, method)
            name = method or "nearer end copied"
            print(
                f"  {name}: mean pseudo-label Dice {statistics.mean(dice):.3f} ({len(dice)} inner slices with tumour)"
            )
        data = BraTSDataModule(cache_dir=cache, pool_batch_size=32)
        data.setup()
        model = UNet()
        model.bind_data(data)
        view = QueryView(data)
        seconds = {
            name: median_seconds(
                lambda n=name: strategy(n).select_items_to_label(model, view, args.items), args.repeats
            )
            for name in TIMED
        }
        print(f"query of {args.items} items, pool of {data.unlabeled_set_size()}, {torch.get_num_threads()} threads:")
        for name, value in seconds.items():
            print(f"  {name}: {value:.3f} s, {value / seconds['entropy']:.2f} x entropy")


if __name__ == "__main__":
    main()
