"""The data path at BraTS size (issue 10): each cost as a ratio to the bare operation it cannot avoid.

Writes ``--cases`` synthetic BraTS cases of 240 x 240 x 155 voxels (4 modalities, ``alseg-make-data --shape 240 240
155``) into a temporary folder, unless ``--data`` names such a folder, and prints:

1. **Cache build per case** (1 worker, and ``--workers`` threads) ÷ a bare nibabel decode of the case's five files
   (target <= 1.5).
2. **2D slices through the training DataLoader** (normalised image and label per item, collated; ``num_workers``
   0) ÷ raw memory-mapped reads of the same slices from the cache (target: throughput >= 0.8 of the raw reads,
   i.e. time ratio <= 1.25).
3. **A 3D 96³ training patch** (the data module's training item) ÷ a 96³ crop read straight from the memory-mapped
   cache (target <= 1.5).
4. **Waiting 2D validation state**: bytes the metric accumulator keeps per slice (without HD95) against the
   bit-packed masks it kept before.

Single-thread rows are the minimum CPU seconds of alternating repeats (steady on a shared machine; torch runs one
thread, as it does in DataLoader workers); the threaded cache build is wall time. Process start-up is measured by
``benchmarks/startup.py``. Usage: ``uv run python benchmarks/data_path.py
[--cases 4] [--workers 2] [--repeats 3] [--data DIR]``.
"""

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from timing import alternating_minimum_seconds, median_seconds

from alseg.core.metric_accumulator import VolumeMetricAccumulator
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.brats_layout import discover_brats
from alseg.datasets.cache import PreprocessOptions, VolumeCache
from alseg.datasets.labels import brats_label_scheme

PATCH = (96, 96, 96)
SLICES = 256  # slices read per timing


def make_data(folder: Path, cases: int) -> Path:
    """Writes ``cases`` BraTS-size synthetic cases with ``alseg-make-data``; returns the folder."""
    command = ["alseg-make-data", "--cases", str(cases), "--shape", "240", "240", "155", str(folder)]
    subprocess.run(command, check=True, capture_output=True)
    return folder


def cache_build(data: Path, workers: int, repeats: int) -> tuple[float, float, float]:
    """Seconds per case of a bare decode, of a cache build with 1 worker, and with ``workers`` threads."""
    cases = discover_brats(data)
    options = PreprocessOptions(cases[0].modalities, brats_label_scheme("2021"))

    def bare() -> None:
        for case in cases:
            for path in case.files:
                np.asanyarray(nib.load(path).dataobj)

    def build(threads: int) -> None:
        with tempfile.TemporaryDirectory() as folder:
            VolumeCache(folder, options).ensure_all(cases, workers=threads)

    single = alternating_minimum_seconds([bare, lambda: build(1)], repeats, time.process_time)
    threaded = median_seconds(lambda: build(workers), repeats)
    return tuple(t / len(cases) for t in (*single, threaded))


def slice_loading(module: BraTSDataModule, repeats: int) -> tuple[float, float]:
    """Seconds for :data:`SLICES` training slices through the DataLoader, and as raw memmap reads."""
    cache = module.volume_cache
    ids = module.labeled_ids()[:SLICES]
    positions = [(i.rpartition(":")[0], int(i.rpartition(":")[2])) for i in ids]

    def loader() -> None:
        seen = 0
        for batch in module.train_dataloader():
            seen += len(batch["id"])
            if seen >= len(ids):
                return

    def raw() -> None:
        for case, index in positions:
            np.ascontiguousarray(cache.image(case)[..., index])
            np.ascontiguousarray(cache.label(case)[..., index])

    loaded, read = alternating_minimum_seconds([loader, raw], repeats, time.process_time)
    return loaded, read


def patch_loading(module: BraTSDataModule, repeats: int) -> tuple[float, float]:
    """Seconds per 3D training patch through the training set, and per 96³ crop straight from the memmap."""
    dataset = module.train_dataloader().dataset
    cache = module.volume_cache
    cases = module.labeled_ids()
    shape = module.volume_cache.meta(cases[0]).shape
    rng = np.random.default_rng(0)
    corners = [tuple(int(rng.integers(0, n - p + 1)) for n, p in zip(shape, PATCH, strict=True)) for _ in cases]

    def item() -> None:
        for index in range(len(cases)):
            dataset[index]

    def crop() -> None:
        for case, corner in zip(cases, corners, strict=True):
            box = tuple(slice(c, c + p) for c, p in zip(corner, PATCH, strict=True))
            np.ascontiguousarray(cache.image(case)[(slice(None), *box)])
            np.ascontiguousarray(cache.label(case)[(slice(None), *box)])

    per_item, per_crop = alternating_minimum_seconds([item, crop], repeats, time.process_time)
    return per_item / len(cases), per_crop / len(cases)


def validation_state_bytes() -> tuple[int, int]:
    """Bytes a waiting 240 x 240 slice of 3 regions costs the accumulator now, and as bit-packed masks."""
    accumulator = VolumeMetricAccumulator({0: "TC", 1: "WT", 2: "ET"}, multi_label=True, hausdorff=False)
    probabilities = torch.rand(1, 3, 240, 240)
    accumulator.update(probabilities, (probabilities > 0.7).float(), ["A"], [0])
    entry = accumulator.state().slices["A"][0]
    return sys.getsizeof(entry) + sum(sys.getsizeof(v) for v in entry), math.ceil(2 * 3 * 240 * 240 / 8)


def module(data: Path, cache: str, dim: int, labelled: int) -> BraTSDataModule:
    """A data module over every case of ``data`` (none held out) with ``labelled`` training items."""
    options = {"dim": dim, "val_fraction": 0.0, "test_fraction": 0.0, "cache_dir": cache, "batch_size": 8}
    data_module = BraTSDataModule(str(data), initial_training_set_size=labelled, patch_size=PATCH, **options)
    data_module.prepare_data()
    data_module.setup()
    return data_module


def main() -> None:
    """Prints every row of issue 10's data-path table as a ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        data = args.data or make_data(Path(folder) / "brats", args.cases)
        bare, one, many = cache_build(data, args.workers, args.repeats)
        print(f"cache build per case: bare decode {bare:.2f} s, build {one:.2f} s, ratio {one / bare:.2f} (<= 1.5);")
        print(f"  with {args.workers} threads {many:.2f} s per case, ratio {many / bare:.2f}")
        slices = module(data, str(Path(folder) / "cache"), 2, SLICES)
        loader, raw = slice_loading(slices, args.repeats)
        print(
            f"2D slices: DataLoader {SLICES / loader:.0f}/s, raw memmap reads {SLICES / raw:.0f}/s, "
            f"throughput ratio {raw / loader:.2f} (>= 0.8)"
        )
        patches = module(data, str(Path(folder) / "cache"), 3, len(discover_brats(data)))
        item, crop = patch_loading(patches, args.repeats)
        print(f"3D 96³ patch: training item {item:.3f} s, memmap crop {crop:.3f} s, ratio {item / crop:.2f} (<= 1.5)")
    now, before = validation_state_bytes()
    print(f"waiting 2D validation slice (240², 3 regions): {now} bytes, bit-packed masks {before} bytes")


if __name__ == "__main__":
    main()
