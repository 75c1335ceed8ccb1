"""Wall time and peak memory of chunked k-center greedy versus a dense distance matrix.

Peak memory is the growth of the process's peak resident set size (VmHWM in /proc/self/status,
Linux only) over its resident size just before the call, after resetting the peak by writing 5
to /proc/self/clear_refs. It counts every allocation (torch's CPU allocator bypasses tracemalloc),
including the allocator's own caching; the embedding matrix exists before the call and is not
counted. Usage: ``uv run python benchmarks/coreset_memory.py [--n 100000 --d 128 --k 1000]``.
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from alseg.strategies.k_center import k_center_greedy

MIB = 2**20


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def measure(run: Callable[[], list[int]]) -> tuple[list[int], float, int]:
    """Run once; return its picks, wall time in seconds and peak RSS growth in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kib("VmRSS")
    start = time.perf_counter()
    picks = run()
    elapsed = time.perf_counter() - start
    return picks, elapsed, (_rss_kib("VmHWM") - before) * 1024


def dense_k_center(features: torch.Tensor, labelled: torch.Tensor, k: int) -> list[int]:
    """The textbook version: full N x N squared distance matrix, same rules as the chunked one."""
    dist = torch.cdist(features, features).square_()
    if labelled.any():
        min_dist, picks = dist[:, labelled].amin(dim=1), []
    else:
        to_mean = (features - features.mean(dim=0)).square().sum(dim=1)
        picks = [int(to_mean.argmax())]
        min_dist = dist[picks[0]].clone()
    min_dist[labelled] = -torch.inf
    min_dist[picks] = -torch.inf
    while len(picks) < min(k, int((~labelled).sum())):
        picks.append(int(min_dist.argmax()))
        min_dist = torch.minimum(min_dist, dist[picks[-1]])
        min_dist[picks[-1]] = -torch.inf
    return picks


def report(name: str, n: int, d: int, elapsed: float, peak: int) -> None:
    size = n * d * 4
    print(
        f"{name:8s} N={n:>7d} time {elapsed:7.2f} s  peak growth {peak / MIB:8.1f} MiB  "
        f"embeddings {size / MIB:6.1f} MiB  growth/emb {peak / size:6.2f}  "
        f"(emb+growth)/emb {(size + peak) / size:6.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="embeddings for the chunked run")
    parser.add_argument("--d", type=int, default=128, help="embedding dimension")
    parser.add_argument("--k", type=int, default=1000, help="points to pick")
    parser.add_argument("--labelled", type=int, default=0, help="labelled points (first rows)")
    parser.add_argument("--dense-n", type=int, default=20_000, help="N for the dense comparison")
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    features = torch.randn(args.n, args.d, generator=torch.Generator().manual_seed(0))
    labelled = torch.zeros(args.n, dtype=torch.bool)
    labelled[: args.labelled] = True

    def chunked(x: torch.Tensor, mask: torch.Tensor) -> list[int]:
        return k_center_greedy(x, mask, args.k, chunk_size=args.chunk_size, seed=0).indices

    warm = torch.ones(64, dtype=torch.bool)  # first calls page in code and lazy library state
    (
        chunked(features[:64], ~warm),
        chunked(features[:64], warm),
        dense_k_center(features[:64], ~warm, 2),
    )
    _, elapsed, peak = measure(lambda: chunked(features, labelled))
    report("chunked", args.n, args.d, elapsed, peak)
    n = min(args.dense_n, args.n)
    small, small_mask = features[:n].clone(), labelled[:n].clone()
    picks, elapsed, peak = measure(lambda: chunked(small, small_mask))
    report("chunked", n, args.d, elapsed, peak)
    dense_picks, elapsed, peak = measure(lambda: dense_k_center(small, small_mask, args.k))
    report("dense", n, args.d, elapsed, peak)
    print(f"same picks at N={n}: {picks == dense_picks}")


if __name__ == "__main__":
    main()
