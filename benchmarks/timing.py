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
