"""Running benchmark cells: in this process, in parallel local processes, or as one SLURM job array (submitit).

Every executor runs :func:`run_cell`, which never raises for a failing run: the error is returned in the
:class:`CellOutcome` so that the rest of the grid continues. A cell holds an exclusive lock (``<log>.lock``, released
when its process ends, however it ends) while it runs, so two benchmarks on the same folder never write one run.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import as_completed as jobs_as_completed

from alseg.bench.grid import Cell
from alseg.core import cli, progress
from alseg.core.errors import ConfigError

#: SLURM time limit per cell (minutes) unless ``timeout_min`` is given; submitit's own default is 5 minutes.
DEFAULT_TIMEOUT_MIN = 24 * 60


@dataclass(frozen=True)
class CellOutcome:
    """How a cell ended: ``error`` is None when its run completed, else one line naming the cause."""

    cell: Cell
    error: str | None = None
    seconds: float = 0.0


OnDone = Callable[[CellOutcome], None]


def run_cell(cell: Cell) -> CellOutcome:
    """Runs (or resumes) one cell with ``alseg-train``, appending its output to ``cell.log_path``."""
    cell.log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(cell.log_path.with_suffix(".lock"), "a") as lock, open(cell.log_path, "a") as log:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return CellOutcome(cell, f"another process is running this cell (it holds {lock.name})")
        with redirect_stdout(log), redirect_stderr(log):
            try:
                cli.run(cell.train_args())
            except Exception as error:
                traceback.print_exc()
                return CellOutcome(cell, f"{type(error).__name__}: {error}", time.perf_counter() - start)
    return CellOutcome(cell, None, time.perf_counter() - start)


def run_local(cells: Sequence[Cell], jobs: int, on_done: OnDone) -> list[CellOutcome]:
    """Runs ``cells`` one after another in this process (``jobs == 1``) or in ``jobs`` worker processes.

    Workers are forked from a server process that has imported alseg once (``forkserver``), one fresh worker per
    cell, each in this process's working directory and limited to its share of the CPU threads.
    """
    if jobs == 1:
        return [_report(run_cell(cell), on_done) for cell in cells]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["alseg.core.cli"])
    threads = max(1, (os.cpu_count() or 1) // jobs)
    outcomes = []
    with ProcessPoolExecutor(
        jobs, mp_context=context, max_tasks_per_child=1, initializer=_prepare_worker, initargs=(os.getcwd(), threads)
    ) as pool:
        futures = {pool.submit(run_cell, cell): cell for cell in cells}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as error:  # a worker that died (e.g. killed for memory) breaks the pool
                outcome = CellOutcome(futures[future], f"worker process failed: {type(error).__name__}: {error}")
            outcomes.append(_report(outcome, on_done))
    return outcomes


def slurm_executor(folder: Path, parameters: dict[str, Any], jobs: int, cluster: str = "slurm") -> submitit.Executor:
    """Returns a submitit executor for one job array of at most ``jobs`` concurrent cells.

    Args:
        folder: Where submitit keeps its pickles and the jobs' logs.
        parameters: Options of ``submitit.AutoExecutor.update_parameters`` (``timeout_min``, ``gpus_per_node``,
            ``slurm_partition``, …); ``timeout_min`` defaults to :data:`DEFAULT_TIMEOUT_MIN`.
        jobs: The array's parallelism.
        cluster: submitit's cluster (``slurm``; ``debug`` runs the jobs in this process, for tests).

    Raises:
        ConfigError: submitit rejects a parameter.
    """
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    options = {"timeout_min": DEFAULT_TIMEOUT_MIN, "slurm_array_parallelism": jobs, **parameters}
    try:
        executor.update_parameters(**options)
    except (NameError, AssertionError, TypeError) as error:
        raise ConfigError(f"Invalid SLURM option(s) {parameters}: {error}") from error
    return executor


def run_submitit(executor: submitit.Executor, cells: Sequence[Cell], on_done: OnDone) -> list[CellOutcome]:
    """Submits ``cells`` as one job array and waits for them, reporting each as it ends."""
    jobs = executor.map_array(run_cell, list(cells))
    progress.say(f"Submitted {len(jobs)} cells (job ids {jobs[0].job_id} …); logs in {executor.folder}.")
    cell_of = {job.job_id: cell for job, cell in zip(jobs, cells, strict=True)}
    outcomes = []
    for job in jobs_as_completed(jobs, poll_frequency=15):
        try:
            outcome = job.result()
        except Exception as error:  # timeout, pre-emption, node failure: the cell resumes on the next run
            outcome = CellOutcome(cell_of[job.job_id], f"job {job.job_id} did not complete: {error}")
        outcomes.append(_report(outcome, on_done))
    return outcomes


def _report(outcome: CellOutcome, on_done: OnDone) -> CellOutcome:
    on_done(outcome)
    return outcome


def _prepare_worker(cwd: str, threads: int) -> None:
    """Enters the benchmark's working directory (the fork server keeps the one it started in) and limits threads."""
    import torch  # preloaded by the fork server with alseg.core.cli

    os.chdir(cwd)
    torch.set_num_threads(threads)
