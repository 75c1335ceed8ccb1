"""Patch-query cost per pool case over a bare sliding-window forward pass over that case.

Builds the synthetic BraTS-like data (3D, ``annotation_unit: patch``) and the reference 3D U-Net, then times per pool
case:

* a bare pass: the pool-case loader and MONAI's ``sliding_window_inference`` of ``predict_step`` (softmax or sigmoid
  probabilities, stitched) over the case under ``inference_mode``, with no scoring (T passes: with MC dropout);
* an entropy query: the whole ``select_items_to_label`` of entropy on the patch pool (sliding-window voxel scores,
  box means by ``avg_pool3d``, ranking and greedy selection under the overlap rule).

Prints both per case and their ratio (target <= 1.15); ``--bald T`` adds BALD with T MC samples against T bare
passes. Bare pass and query run in turn ``--repeats`` times and each timing is the minimum, in CPU seconds of this
process by default (``--clock wall`` for wall time): on a shared machine load from other processes only adds time.
Usage: ``uv run python benchmarks/patch_query.py [--repeats 6] [--bald 5]``.
"""

import argparse
import tempfile
import time
from contextlib import nullcontext

import torch
from monai.inferers import sliding_window_inference
from timing import alternating_minimum_seconds

from alseg.core.mc_dropout import mc_dropout
from alseg.core.query_view import QueryView
from alseg.datasets.brats import BraTSDataModule
from alseg.models.unet import UNet
from alseg.strategies.bald import BALDStrategy
from alseg.strategies.entropy import EntropyStrategy


def bare_passes(model: UNet, view: QueryView, window: tuple[int, ...], passes: int) -> None:
    """Runs ``passes`` sliding-window forward passes over every pool case, discarding the probabilities.

    With ``passes > 1`` dropout samples (MC dropout), as BALD's passes must; one pass is deterministic, as entropy's.
    """
    model.eval()
    with torch.inference_mode(), mc_dropout(model) if passes > 1 else nullcontext():
        for batch in view.pool_case_dataloader():
            for _ in range(passes):
                sliding_window_inference(
                    batch["image"], window, 4, lambda w: model.predict_step({"image": w}, 0), overlap=0.25
                )


def main() -> None:
    """Prints the per-case times and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--bald", type=int, default=0, help="also time BALD with this many MC samples")
    parser.add_argument("--query_patch_size", type=int, nargs=3, default=[16, 16, 16])
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu", help="CPU seconds of this process (default) or wall time"
    )
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as cache:
        data = BraTSDataModule(
            cache_dir=cache, dim=3, annotation_unit="patch", query_patch_size=tuple(args.query_patch_size)
        )
        data.prepare_data()
        data.setup()
        model = UNet(dim=3)
        model.bind_data(data)
        view = QueryView(data)
        pool = data.patch_pool()
        cases = len(data.pool_case_dataloader())
        window = pool.window
        bare, query = (
            seconds / cases
            for seconds in alternating_minimum_seconds(
                [
                    lambda: bare_passes(model, view, window, 1),
                    lambda: EntropyStrategy().select_items_to_label(model, view, 8),
                ],
                args.repeats,
                clock,
            )
        )
        print(
            f"pool: {cases} cases, {len(pool.pool)} boxes of {pool.patch_size}, window {window}, "
            f"threads: {torch.get_num_threads()}"
        )
        print(
            f"per case: bare pass {bare:.3f} s, entropy query {query:.3f} s, ratio {query / bare:.3f} (target <= 1.15)"
        )
        if args.bald:
            bald = BALDStrategy(mc_samples=args.bald)
            bare_t, bald_s = (
                seconds / cases
                for seconds in alternating_minimum_seconds(
                    [
                        lambda: bare_passes(model, view, window, args.bald),
                        lambda: bald.select_items_to_label(model, view, 8),
                    ],
                    args.repeats,
                    clock,
                )
            )
            print(
                f"per case: {args.bald} bare passes {bare_t:.3f} s, BALD(T={args.bald}) query {bald_s:.3f} s, "
                f"ratio {bald_s / bare_t:.3f} (target <= 1.15)"
            )


if __name__ == "__main__":
    main()
