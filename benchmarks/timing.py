"""The timing helper of the benchmark scripts (run as ``python benchmarks/<script>.py``, which puts this folder on
``sys.path``)."""

import statistics
import time
from collections.abc import Callable


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Returns the median wall time of ``repeats`` calls of ``run`` (after one warm-up call)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternating_minimum_seconds(
    runs: list[Callable[[], object]], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    """Returns the minimum time of each of ``runs`` over ``repeats`` rounds that call them in turn (A, B, A, B …).

    On a machine that other processes share, the minimum of alternating calls estimates each run's own cost better
    than the median: load from elsewhere only ever adds time, and alternation spreads it over all runs. ``clock`` is
    wall time by default; ``time.process_time`` (CPU seconds of this process, all threads) is steadier under load.
    """
    for run in runs:
        run()
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            start = clock()
            run()
            best[index] = min(best[index], clock() - start)
    return best
