"""Pool-scoring overhead of entropy and BALD over the bare forward passes they cannot avoid.

Scores the synthetic BraTS-like pool (2D slices) with the reference U-Net and prints:

* entropy time / time of one bare pass over the pool (target <= 1.10),
* BALD time with T MC samples / T bare passes (target <= 1.10).

A bare pass is the same data loading and ``predict_step`` calls under ``inference_mode``, with no scoring. Each
timing is the median of ``--repeats`` runs. Usage: ``uv run python benchmarks/strategy_overhead.py [--samples 10]``.
"""

import argparse
import tempfile

import torch
from timing import median_seconds

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
    """Prints the two overhead ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10, help="MC samples T of BALD")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pool_batch_size", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as cache:
        data = BraTSDataModule(cache_dir=cache, pool_batch_size=args.pool_batch_size)
        data.prepare_data()
        data.setup()
        model = UNet()
        model.bind_data(data)
        view = QueryView(data)
        pool = data.unlabeled_set_size()
        forward = median_seconds(lambda: bare_passes(model, view, 1), args.repeats)
        entropy = median_seconds(lambda: EntropyStrategy().select_items_to_label(model, view, 16), args.repeats)
        forward_t = median_seconds(lambda: bare_passes(model, view, args.samples), args.repeats)
        bald = BALDStrategy(mc_samples=args.samples)
        bald_s = median_seconds(lambda: bald.select_items_to_label(model, view, 16), args.repeats)
    print(f"pool: {pool} slices, threads: {torch.get_num_threads()}")
    print(f"bare pass {forward:.3f} s, entropy {entropy:.3f} s, ratio {entropy / forward:.3f} (target <= 1.10)")
    print(
        f"{args.samples} bare passes {forward_t:.3f} s, BALD(T={args.samples}) {bald_s:.3f} s, "
        f"ratio {bald_s / forward_t:.3f} (target <= 1.10)"
    )


if __name__ == "__main__":
    main()
