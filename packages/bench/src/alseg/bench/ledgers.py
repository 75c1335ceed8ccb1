"""The runs of a benchmark folder, read from their ledgers ``<strategy>[/<override>]/seed_<s>/rounds.jsonl``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alseg.core.errors import ConfigError
from alseg.core.round_record import RoundRecord
from alseg.core.run_directory import RunDirectory

#: Written by ``alseg-bench`` in the benchmark folder: cell name → ``{"error": str | None, "seconds": float}``.
STATUS_FILE = "status.json"
#: The metric name that asks :func:`resolve_metric` to choose the split.
AUTO_METRIC = "auto"
#: What :data:`AUTO_METRIC` resolves to: the held-out test metric where every round recorded it, else validation.
TEST_METRIC, VALIDATION_METRIC = "test/mean_dice", "val/mean_dice"
#: Annotation-cost units in the order figures show them; other units a data module counts come after, sorted.
COST_UNITS = ("items", "slices", "voxels", "new_voxels", "labelled_fraction", "foreground_voxels")


@dataclass(frozen=True)
class Run:
    """One cell's completed rounds (ledger records, see :mod:`alseg.core.pipeline`)."""

    strategy: str
    override: str | None
    seed: int
    records: tuple[RoundRecord, ...]

    @property
    def name(self) -> str:
        """Returns the cell's path in the benchmark folder, e.g. ``entropy/seed_0``."""
        return "/".join([self.strategy, *([self.override] if self.override else []), f"seed_{self.seed}"])

    @property
    def oracle_informed(self) -> bool:
        """Whether the strategy asked for ground truth of pool items in any round (``ground_truth_revealed``)."""
        return any(record.ground_truth_revealed > 0 for record in self.records)

    def num_labeled(self, rounds: int) -> np.ndarray:
        """Returns the labelled items after each of the first ``rounds`` rounds, ``[rounds]``."""
        return np.array([record.num_labeled for record in self.records[:rounds]], dtype=float)

    def cost_units(self) -> set[str]:
        """Returns the annotation-cost units every round recorded, and ``items`` (always known)."""
        return {"items"} | set.intersection(*(set(record.annotation_cost) for record in self.records))

    def cost(self, unit: str, rounds: int) -> np.ndarray:
        """Returns the cumulative annotation cost after each of the first ``rounds`` rounds, ``[rounds]``.

        ``items`` is ``num_labeled`` (the oracle labels, also in ledgers without ``annotation_cost``); other units
        come from ``annotation_cost`` (see :meth:`cost_units`).
        """
        if unit == "items":
            return self.num_labeled(rounds)
        return np.array([record.annotation_cost[unit] for record in self.records[:rounds]], dtype=float)

    def metric(self, name: str, rounds: int) -> np.ndarray:
        """Returns a ledger metric (``val/...`` or ``test/...``) after each of the first ``rounds`` rounds."""
        return np.array([record.metrics[name] for record in self.records[:rounds]], dtype=float)

    def pool_size(self) -> int:
        """Returns the items that can be labelled: labelled plus unlabelled at round 0."""
        return int(self.records[0].num_labeled + self.records[0].num_unlabeled)


def load_runs(bench_dir: Path) -> list[Run]:
    """Returns the runs of a benchmark folder that completed at least one round, sorted by name.

    Raises:
        ConfigError: ``bench_dir`` is not a directory, or a ledger is inconsistent.
    """
    if not bench_dir.is_dir():
        raise ConfigError(f"Benchmark folder {bench_dir} does not exist or is not a directory.")
    runs = []
    for pattern in ("*/seed_*/rounds.jsonl", "*/*/seed_*/rounds.jsonl"):
        for ledger in bench_dir.glob(pattern):
            parts = ledger.parent.relative_to(bench_dir).parts
            seed = parts[-1].removeprefix("seed_")
            records = RunDirectory(ledger.parent).read_rounds()
            if records and seed.lstrip("-").isdigit():
                override = parts[1] if len(parts) == 3 else None
                runs.append(Run(parts[0], override, int(seed), tuple(records)))
    return sorted(runs, key=lambda run: (run.override or "", run.strategy, run.seed))


def resolve_metric(runs: list[Run], metric: str) -> str:
    """Returns ``metric``, or for :data:`AUTO_METRIC` the test metric if every round recorded it, else validation."""
    if metric != AUTO_METRIC:
        return metric
    recorded = all(TEST_METRIC in record.metrics for run in runs for record in run.records)
    return TEST_METRIC if runs and recorded else VALIDATION_METRIC


def check_metric(runs: list[Run], metric: str) -> None:
    """Checks that every round of every run recorded ``metric``.

    Raises:
        ConfigError: The metric is missing somewhere (the message lists the metrics recorded everywhere).
    """
    recorded = [set(record.metrics) for run in runs for record in run.records]
    if recorded and all(metric in names for names in recorded):
        return
    available = ", ".join(sorted(set.intersection(*recorded))) if recorded else "none"
    raise ConfigError(f"Metric {metric!r} is not recorded in every round of the ledgers. Available: {available}.")


def result_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """Returns one flat row per (strategy, override, seed, round), with every metric and cost unit any run recorded.

    Cost columns are ``cost_<unit>`` as the ledger recorded them (empty in ledgers without ``annotation_cost``);
    ``pseudo_label_dice`` is the mean Dice of the round's pseudo labels (empty without any).
    """
    metrics = sorted({name for run in runs for record in run.records for name in record.metrics})
    units = sorted({unit for run in runs for record in run.records for unit in record.annotation_cost})
    rows = []
    for run in runs:
        for record in run.records:
            timing = record.timing_s
            rows.append(
                {
                    "strategy": run.strategy,
                    "override": run.override or "",
                    "seed": run.seed,
                    "round": record.round,
                    "num_labeled": record.num_labeled,
                    "fraction_labeled": record.num_labeled / run.pool_size(),
                    "num_unlabeled": record.num_unlabeled,
                    "num_pseudo_labeled": record.num_pseudo_labeled,
                    "pseudo_label_dice": _mean(record.pseudo_label_dice.values()),
                    "num_selected": len(record.selected_ids),
                    "selected_with_foreground": record.selected_with_foreground,
                    "ground_truth_revealed": record.ground_truth_revealed,
                    **{f"cost_{unit}": record.annotation_cost.get(unit) for unit in units},
                    "epochs": record.epochs,
                    **{name: record.metrics.get(name) for name in metrics},
                    **{f"{phase}_s": timing.get(phase) for phase in ("query", "train", "validate", "test")},
                    "wall_time_s": record.wall_time_s,
                }
            )
    return rows


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def read_failures(bench_dir: Path) -> dict[str, str]:
    """Returns the cells that failed in the last ``alseg-bench`` run (from ``status.json``), name → error."""
    path = bench_dir / STATUS_FILE
    status = json.loads(path.read_text()) if path.exists() else {}
    return {name: entry["error"] for name, entry in sorted(status.items()) if entry.get("error")}
