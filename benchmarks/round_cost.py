"""A round at the compute floor (issue 10): an active-learning run's fit, query and validation against bare compute.

Runs ``ActiveLearningPipeline`` (round 0 and one entropy query round, ``--epochs`` per round) on synthetic BraTS-like
data, as ``alseg-train`` would, and the same network's bare compute over the same items, and prints per network (the
default ``UNet()`` and a wider one, ``base_channels=--wide``):

* **fit** ÷ bare forward + loss + backward + optimizer steps over the same number of training batches (target
  <= 1.15). Fit is the time from the start of a training epoch to its last ``on_train_batch_end``, summed;
* **query** (the entropy strategy) ÷ bare forward passes over the same pool (target <= 1.10);
* **validation** (every validation epoch of the run: sanity checks, the epoch-end validation of ``fit`` and any
  validation of the best checkpoint) ÷ bare forward + loss + metrics over the validation set once per epoch (target
  <= 1.15). Metrics: per-case confusion counts and their Dice, sensitivity and specificity (no HD95, as ``val_hd95``
  is off by default);
* **framework share**: the run's time outside those (start-up, data set-up, Trainer construction, checkpoints,
  ledger and summary writes) as a share of the run.

Bare compute runs the data module's own loaders (the data path has its own benchmark, ``data_path.py``), in train or
eval mode as the framework does. Times are CPU seconds of this process, the minimum of ``--repeats`` alternating
runs, with torch on ``--threads`` threads (1 by default: steady on a shared machine). Usage: ``uv run python
benchmarks/round_cost.py [--dim 2|3] [--repeats 3] [--epochs 1] [--wide 32]``. ``--dim 3`` trains on 32³ patches and
scores and validates whole volumes (slow; use a small ``--shape``).
"""

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from monai.metrics import get_confusion_matrix
from timing import alternating_minimum_seconds

from alseg.core.metrics import count_metrics, labels_to_masks, probabilities_to_masks
from alseg.core.pipeline import ActiveLearningPipeline
from alseg.core.progress import using
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.synthetic import SyntheticBraTS
from alseg.models.unet import UNet
from alseg.strategies.entropy import EntropyStrategy

TARGETS = {"fit": 1.15, "query": 1.10, "validation": 1.15}


class TimedUNet(UNet):
    """The U-Net with process-time marks at its Lightning hooks (its computation is UNet's, unchanged)."""

    def __init__(self, clock: dict[str, float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self._mark = 0.0

    def on_train_epoch_start(self) -> None:
        self._mark = time.process_time()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.process_time()
        self.clock["fit"] += now - self._mark
        self._mark = now

    def on_validation_epoch_start(self) -> None:
        self._mark = time.process_time()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.clock["validation"] += time.process_time() - self._mark


class TimedEntropy(EntropyStrategy):
    """Entropy sampling that adds its process time to ``clock["query"]``."""

    def __init__(self, clock: dict[str, float]) -> None:
        super().__init__()
        self.clock = clock

    def select_items_to_label(self, *args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return super().select_items_to_label(*args, **kwargs)
        finally:
            self.clock["query"] += time.process_time() - start


def data_module(args: argparse.Namespace, cache: str) -> BraTSDataModule:
    """The synthetic BraTS data module of every run (no test set: the run ends with training, not testing)."""
    return BraTSDataModule(
        cache_dir=cache,
        synthetic=SyntheticBraTS(cases=args.cases, shape=tuple(args.shape)),
        dim=args.dim,
        test_fraction=0.0,
        initial_training_set_size=args.initial,
        batch_size=args.batch_size,
        pool_batch_size=args.pool_batch_size,
    )


def run_round(args: argparse.Namespace, cache: str, network: dict[str, Any], clock: dict[str, float]) -> None:
    """One pipeline run from scratch: round 0 and one entropy query round, in a fresh run directory."""
    with tempfile.TemporaryDirectory() as output:
        torch.manual_seed(0)
        pipeline = ActiveLearningPipeline(
            data_module(args, cache),
            TimedUNet(clock, dim=args.dim, **network),
            TimedEntropy(clock),
            output_dir=Path(output) / "run",
            items_to_label=args.items_to_label,
            iterations=1,
            epochs=args.epochs,
        )
        pipeline.run()


class BareCompute:
    """The network's bare compute over the items of a run (its batches from the data module's loaders)."""

    def __init__(self, args: argparse.Namespace, cache: str, network: dict[str, Any]) -> None:
        self.data = data_module(args, cache)  # round 1's state before labelling: its pool, round 0's training set
        self.data.setup()
        self.labelled = data_module(args, cache)  # round 1's training set
        self.labelled.setup()
        self.labelled.label_items(self.labelled.unlabeled_ids()[: args.items_to_label])
        torch.manual_seed(0)
        self.model = UNet(dim=args.dim, **network)
        self.model.bind_data(self.data)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.model.learning_rate)
        self.epochs = args.epochs

    def fit(self) -> None:
        """Forward, loss, backward and optimizer step over every training batch of both rounds' epochs."""
        self.model.train()
        for data in (self.data, self.labelled):
            for _ in range(self.epochs):
                for batch in data.train_dataloader():
                    loss = self.model.compute_loss(self.model(batch["image"]), batch)
                    loss.backward()
                    self.optimizer.step()
                    self.optimizer.zero_grad()

    @torch.inference_mode()
    def query(self) -> None:
        """One forward pass over the pool (of round 1: the items not in the initial set)."""
        self.model.eval()
        for batch in self.data.unlabeled_dataloader():
            self.model(batch["image"])

    @torch.inference_mode()
    def validation(self) -> None:
        """Forward, loss and per-case confusion counts and metrics over the validation set, once per epoch."""
        self.model.eval()
        multi_label, classes = self.model.multi_label, self.model.num_classes
        for _ in range(2 * self.epochs):  # two rounds
            counts: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros(classes, 4))
            for batch in self.data.val_dataloader():
                logits = self.model(batch["image"])
                float(self.model.compute_loss(logits, batch))
                probabilities = self.model.probabilities(logits)
                for i, case in enumerate(batch.get("case_id", batch["id"])):
                    pred = probabilities_to_masks(probabilities[i], multi_label)
                    target = labels_to_masks(batch["label"][i], classes, multi_label)
                    counts[case] += get_confusion_matrix(pred[None].float(), target[None].float())[0]
            for case_counts in counts.values():
                count_metrics(case_counts)


def measure(args: argparse.Namespace, cache: str, name: str, network: dict[str, Any]) -> None:
    """Prints the ratios of one network."""
    bare = BareCompute(args, cache, network)
    clocks: list[dict[str, float]] = []

    def framework() -> None:
        clocks.append(defaultdict(float))
        start = time.process_time()
        run_round(args, cache, network, clocks[-1])
        clocks[-1]["run"] = time.process_time() - start

    runs = [framework, bare.fit, bare.query, bare.validation]
    _, fit, query, validation = alternating_minimum_seconds(runs, args.repeats, time.process_time)
    measured = clocks[1:]  # the first call warmed up
    best = {key: min(c[key] for c in measured) for key in ("fit", "query", "validation")}
    outside = min(c["run"] - c["fit"] - c["query"] - c["validation"] for c in measured)
    run = min(c["run"] for c in measured)
    params = sum(p.numel() for p in bare.model.parameters())
    print(f"{name} ({params / 1e6:.2f} M parameters):")
    for key, floor in (("fit", fit), ("query", query), ("validation", validation)):
        ratio = best[key] / floor
        print(f"  {key:<10} {best[key]:7.3f} s / bare {floor:7.3f} s = {ratio:.3f} (target <= {TARGETS[key]:.2f})")
    print(f"  framework outside them {outside:.3f} s of the run's {run:.3f} s: share {outside / run:.3f}")


def main() -> None:
    """Prints the ratios for the default and the wide network."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, choices=(2, 3), default=2)
    parser.add_argument("--cases", type=int, default=30, help="24 training and 6 validation cases by default")
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 64, 32))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--initial", type=int, default=64, help="initial training items")
    parser.add_argument("--items_to_label", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--pool_batch_size", type=int, default=16)
    parser.add_argument("--wide", type=int, default=32, help="base_channels of the larger network")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as cache, using("quiet"):
        print(f"dim {args.dim}, {args.cases} synthetic cases of {args.shape}, torch threads {torch.get_num_threads()}")
        for name, network in (("UNet()", {}), (f"UNet(base_channels={args.wide})", {"base_channels": args.wide})):
            measure(args, cache, name, network)


if __name__ == "__main__":
    main()
