"""The benchmark grid: strategies × overrides × seeds, expanded into ``alseg-train`` cells and validated up front.

Grid file (YAML; every key optional on the file, ``strategies`` required in the end)::

    strategies:                    # registered short names, class paths, or mappings
      - random
      - entropy
      - name: power_bald_b5        # optional label (directory and legend); derived from the class otherwise
        class_path: power_bald
        init_args: {power: 5}
    seeds: 3                       # a count (seeds 0, 1, 2; the default) or a list such as [0, 1, 2]
    overrides:                     # optional named sets of dotted alseg-train options; each strategy runs under each
      budget_5: {active_learning.items_to_label: 5}
      budget_20: {active_learning.items_to_label: 20}

A cell runs in ``BENCH/<strategy>/seed_<s>/``, or ``BENCH/<strategy>/<override>/seed_<s>/`` when there are
overrides. The grid owns the ``strategy``, ``seed`` and ``output_dir`` options of every cell, and turns on
``active_learning.test_each_round`` (test metrics in every round) unless the base config sets it.

A grid *extends* a recorded one when it keeps the recorded overrides, strategies (same label, class path and
``init_args``) and seeds, and adds strategies or seeds; an existing benchmark folder accepts only such a grid.
"""

from __future__ import annotations

import json
import re
from argparse import ArgumentError
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alseg.core import cli
from alseg.core.errors import ConfigError
from alseg.core.registry import resolve_class_path
from alseg.core.run_directory import config_differences

DEFAULT_SEEDS = 3
#: Options every cell sets itself; the base config's values of these are dropped and overrides may not set them.
GRID_OWNED = ("strategy", "seed", "output_dir")
_LABEL = re.compile(r"^[A-Za-z0-9][\w.+=-]*$")


@dataclass(frozen=True)
class StrategySpec:
    """One strategy of the grid: its label, class path (or short name) and constructor arguments."""

    name: str
    class_path: str
    init_args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Grid:
    """A validated grid: strategies, seeds and named overrides (dotted option → value)."""

    strategies: tuple[StrategySpec, ...]
    seeds: tuple[int, ...]
    overrides: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """Returns the grid as plain data, as recorded in ``bench.yaml``."""
        return {
            "strategies": [asdict(s) for s in self.strategies],
            "seeds": list(self.seeds),
            "overrides": self.overrides,
        }

    def extension_problems(self, recorded: Grid) -> list[str]:
        """Lists what keeps this grid from extending ``recorded`` (nothing if it does).

        Returns:
            One entry per changed override option, changed strategy (by label), dropped strategy, and one for the
            dropped seeds.
        """
        strategies = {spec.name: spec for spec in self.strategies}
        problems = config_differences(recorded.overrides, self.overrides, "overrides")
        for old in recorded.strategies:
            if old.name in strategies:
                problems += config_differences(asdict(old), asdict(strategies[old.name]), f"strategies.{old.name}")
            else:
                problems.append(f"strategy {old.name!r} dropped")
        dropped = [seed for seed in recorded.seeds if seed not in self.seeds]
        return problems + ([f"seed(s) {dropped} dropped"] if dropped else [])


@dataclass(frozen=True)
class Cell:
    """One ``alseg-train`` run of the benchmark.

    Attributes:
        bench_dir: The benchmark folder.
        strategy: The strategy's label.
        override: The override's name, or None.
        seed: The run's seed.
        args: The cell's own ``alseg-train`` arguments (strategy, override options, seed).
    """

    bench_dir: Path
    strategy: str
    override: str | None
    seed: int
    args: tuple[str, ...]

    @property
    def name(self) -> str:
        """Returns the cell's path relative to the benchmark folder, e.g. ``entropy/seed_0``."""
        return "/".join([self.strategy, *([self.override] if self.override else []), f"seed_{self.seed}"])

    @property
    def output_dir(self) -> Path:
        """Returns the cell's run directory."""
        return self.bench_dir / self.name

    @property
    def base_config(self) -> Path:
        """Returns the benchmark's base config file, shared by all cells."""
        return self.bench_dir / "base_config.yaml"

    @property
    def log_path(self) -> Path:
        """Returns the file that receives the cell's output (outside the run directory)."""
        return self.bench_dir / "logs" / f"{self.name}.log"

    def train_args(self, base_config: Path | None = None) -> list[str]:
        """Returns the ``alseg-train`` arguments: base config (default :attr:`base_config`), own args, run dir."""
        config = base_config or self.base_config
        return ["--config", str(config), *self.args, "--output_dir", str(self.output_dir)]


def parse_grid(spec: dict[str, Any]) -> Grid:
    """Checks a grid specification (the grid file's content, with command-line values merged in).

    Raises:
        ConfigError: A key, strategy, seed or override is malformed, or two strategies share a label.
    """
    unknown = sorted(set(spec) - {"strategies", "seeds", "overrides"})
    if unknown:
        raise ConfigError(f"Unknown grid key(s) {unknown}. Valid: overrides, seeds, strategies.")
    strategies = tuple(_strategy(entry) for entry in _list("strategies", spec.get("strategies")))
    if not strategies:
        raise ConfigError("The grid needs at least one strategy (grid key 'strategies' or --strategies).")
    labels = [s.name for s in strategies]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(f"Grid strategies share the label(s) {duplicates}; give each a distinct 'name'.")
    return Grid(strategies, _seeds(spec.get("seeds", DEFAULT_SEEDS)), _overrides(spec.get("overrides") or {}))


def expand(grid: Grid, bench_dir: Path) -> list[Cell]:
    """Returns the cells of the grid in the order strategy, override, seed.

    Raises:
        ConfigError: A strategy's short name is not registered.
    """
    cells = []
    for spec in grid.strategies:
        strategy = {"class_path": resolve_class_path("strategy", spec.class_path)}
        strategy |= {"init_args": spec.init_args} if spec.init_args else {}
        for override, options in (grid.overrides or {None: {}}).items():
            option_args = [f"--{key}={_arg_value(value)}" for key, value in options.items()]
            for seed in grid.seeds:
                args = ("--strategy", json.dumps(strategy), *option_args, "--seed", str(seed))
                cells.append(Cell(bench_dir, spec.name, override, seed, args))
    return cells


def cell_base_config(base: dict[str, Any]) -> dict[str, Any]:
    """Returns the base config every cell reads (``base_config.yaml``).

    That is ``base`` without the :data:`GRID_OWNED` options, testing every round (``active_learning.test_each_round:
    true``) unless ``base`` sets ``test_each_round`` itself.
    """
    config = {key: value for key, value in base.items() if key not in GRID_OWNED}
    section = config.get("active_learning") or {}
    if isinstance(section, dict):  # anything else fails the cells' validation
        config["active_learning"] = {"test_each_round": True, **section}
    return config


def validate_cells(cells: list[Cell], base_config: Path) -> None:
    """Parses every cell's arguments with the ``alseg-train`` parser, without instantiating or running anything.

    Raises:
        ConfigError: The first cell whose arguments do not validate, with the parser's message.
    """
    for cell in cells:
        try:
            cli.parse_args(cell.train_args(base_config))
        except (ArgumentError, ConfigError) as error:
            raise ConfigError(f"Cell {cell.name} does not validate: {error}") from error


def _list(key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"Grid key '{key}' must be a list. Got {value!r}.")
    return value


def _strategy(entry: Any) -> StrategySpec:
    if isinstance(entry, str):
        return StrategySpec(_label(entry.rsplit(".", 1)[-1]), entry)
    if not isinstance(entry, dict) or not isinstance(entry.get("class_path"), str):
        raise ConfigError(f"A grid strategy must be a name or a mapping with a 'class_path'. Got {entry!r}.")
    unknown = sorted(set(entry) - {"name", "class_path", "init_args"})
    init_args = entry.get("init_args") or {}
    if unknown or not isinstance(init_args, dict):
        raise ConfigError(f"Grid strategy {entry!r}: valid keys are class_path, init_args (a mapping) and name.")
    derived = entry["class_path"].rsplit(".", 1)[-1] + "".join(f"_{k}={v}" for k, v in sorted(init_args.items()))
    return StrategySpec(_label(str(entry.get("name", derived))), entry["class_path"], init_args)


def _label(text: str) -> str:
    if not _LABEL.match(text) or text.startswith("seed_"):
        raise ConfigError(
            f"Grid label {text!r} is not usable as a directory name: use letters, digits and _ . + = - "
            "(not starting with 'seed_'); set 'name' to choose one."
        )
    return text


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    integers = isinstance(value, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    if integers and value and len(set(value)) == len(value):
        return tuple(value)
    raise ConfigError(f"Grid key 'seeds' must be a count >= 1 or a list of distinct integers. Got {value!r}.")


def _overrides(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict) or not all(isinstance(options, dict) and options for options in value.values()):
        raise ConfigError(f"Grid key 'overrides' must map names to non-empty mappings of options. Got {value!r}.")
    for name, options in value.items():
        _label(str(name))
        owned = sorted(key for key in options if str(key).split(".")[0] in GRID_OWNED)
        if owned:
            raise ConfigError(f"Override {name!r} sets {owned}; the grid sets {', '.join(GRID_OWNED)} per cell.")
    return {str(name): dict(options) for name, options in value.items()}


def _arg_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
