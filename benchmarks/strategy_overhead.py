"""Pool-scoring overhead of entropy and BALD over the bare forward passes they cannot avoid.

Scores the synthetic BraTS-like pool (2D slices) with the reference U-Net and prints:

* entropy time / time of one bare pass over the pool (target <= 1.10),
* entropy with ``exclude_background`` (mean over predicted-foreground voxels) / one bare pass (target <= 1.10),
* BALD time with T MC samples / T bare passes (target <= 1.10).

A bare pass is the same data loading and ``predict_step`` calls under ``inference_mode``, with no scoring. Each query
and its bare passes run in turn ``--repeats`` times and each timing is the minimum, in CPU seconds of this process
(``--clock wall`` for wall time): on a shared machine load from other processes only adds time. ``--base_channels``
sizes the network (fewer channels: cheaper passes, so the scoring weighs more).
Usage: ``uv run python benchmarks/strategy_overhead.py [--samples 10] [--base_channels 8]``.
"""

import argparse
import tempfile
import time

import torch
from timing import alternating_minimum_seconds

from alseg.core.inference import stream_probabilities
from alseg.core.query_view import QueryView
from alseg.datasets.brats import BraTSDataModule
from alseg.models.unet import UNet
from alseg.strategies.bald import BALDStrategy
from alseg.strategies.entropy import EntropyStrategy


def bare_passes(model: UNet, data: QueryView, passes: int) -> None:
    """Runs ``passes`` forward passes over every pool batch, discarding the probabilities."""
    for _batch, probabilities in stream_probabilities(model, data, mc_samples=passes if passes > 1 else None):
        del probabilities


def main() -> None:
    """Prints the three overhead ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10, help="MC samples T of BALD")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pool_batch_size", type=int, default=32)
    parser.add_argument("--base_channels", type=int, default=16, help="channels of the U-Net's top level")
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu", help="CPU seconds of this process (default) or wall time"
    )
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as cache:
        data = BraTSDataModule(cache_dir=cache, pool_batch_size=args.pool_batch_size)
        data.prepare_data()
        data.setup()
        model = UNet(base_channels=args.base_channels)
        model.bind_data(data)
        view = QueryView(data)
        pool = data.unlabeled_set_size()
        forward, entropy, foreground = alternating_minimum_seconds(
            [
                lambda: bare_passes(model, view, 1),
                lambda: EntropyStrategy().select_items_to_label(model, view, 16),
                lambda: EntropyStrategy(exclude_background=True).select_items_to_label(model, view, 16),
            ],
            args.repeats,
            clock,
        )
        bald = BALDStrategy(mc_samples=args.samples)
        forward_t, bald_s = alternating_minimum_seconds(
            [lambda: bare_passes(model, view, args.samples), lambda: bald.select_items_to_label(model, view, 16)],
            args.repeats,
            clock,
        )
    print(f"pool: {pool} slices, base_channels {args.base_channels}, threads: {torch.get_num_threads()}")
    print(f"bare pass {forward:.3f} s, entropy {entropy:.3f} s, ratio {entropy / forward:.3f} (target <= 1.10)")
    print(
        f"bare pass {forward:.3f} s, entropy (exclude_background) {foreground:.3f} s, ratio {foreground / forward:.3f} "
        "(target <= 1.10)"
    )
    print(
        f"{args.samples} bare passes {forward_t:.3f} s, BALD(T={args.samples}) {bald_s:.3f} s, "
        f"ratio {bald_s / forward_t:.3f} (target <= 1.10)"
    )


if __name__ == "__main__":
    main()
