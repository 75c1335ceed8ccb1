"""``alseg-train``: run (or resume) one active-learning experiment from a configuration.

Configuration sections: ``seed``, ``output_dir``, ``model``, ``data``, ``strategy``, ``oracle`` (each a
``class_path`` with ``init_args``, or a registered short name; ``oracle`` defaults to ``simulated``, and
``--oracle folder --oracle.dir DIR`` asks a person), ``active_learning`` (the options of
:class:`~alseg.core.pipeline.ActiveLearningPipeline`) and ``trainer`` (Lightning ``Trainer`` options). With no
arguments it runs the built-in default experiment.

Output: on a terminal, live bars (training with the round, epoch and batch; pool scoring in items per second; each
with an ETA) and one line per round; otherwise the round lines only; with ``--quiet`` nothing but errors (see
:mod:`alseg.core.progress`).
"""

from __future__ import annotations

import errno
import logging
import re
import sys
import warnings
from argparse import ArgumentError
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from alseg.core import progress
from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import AlsegError, ConfigError
from alseg.core.model import PytorchModel
from alseg.core.oracle import LabelsPending, Oracle, SimulatedOracle
from alseg.core.pipeline import ActiveLearningPipeline
from alseg.core.registry import SECTIONS, registered, resolve_class_path
from alseg.core.round_trainer import OWNED_TRAINER_OPTIONS
from alseg.core.strategy import QueryStrategy

_BASES = {"model": PytorchModel, "data": ActiveLearningDataModule, "strategy": QueryStrategy}
_PIPELINE_OWN = {
    "data_module",
    "model",
    "strategy",
    "output_dir",
    "seed",
    "trainer_options",
    "config",
    "oracle",
}
_SHORT_NAME = re.compile(r"^[A-Za-z_][\w-]*$")
#: The built-in default experiment: registered short names, used where the command line is silent (when the reference
#: packages are installed): a 2D U-Net on the synthetic BraTS-like data with entropy sampling.
DEFAULT_EXPERIMENT: dict[str, Any] = {
    "model": {"class_path": "unet"},
    "data": {"class_path": "brats"},
    "strategy": {"class_path": "entropy"},
    "oracle": {"class_path": "simulated"},
}
#: Defaults of the active_learning section (the pipeline's own defaults are for one quick round).
DEFAULT_ACTIVE_LEARNING: dict[str, Any] = {"items_to_label": 16, "iterations": 4, "epochs": 10}
#: Errors of the file system that a user fixes (permissions, a read-only or full disk): one message and exit 2.
_USER_OS_ERRORS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def build_parser() -> ArgumentParser:
    """Returns the jsonargparse parser of ``alseg-train``."""
    parser = ArgumentParser(
        prog="alseg-train",
        description=__doc__.split("\n\n")[0],
        env_prefix="ALSEG",
        exit_on_error=False,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="A YAML configuration file.")
    parser.add_argument("--debug", action="store_true", help="Show tracebacks of errors.")
    parser.add_argument("--quiet", action="store_true", help="Print nothing but errors (no bars, lines or warnings).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every random choice of the run.")
    parser.add_argument("--output_dir", type=str, default="runs/default", help="The run directory.")
    for section, base in _BASES.items():
        parser.add_subclass_arguments(base, section, required=True, help=f"The {SECTIONS[section][1]}.")
    parser.add_subclass_arguments(Oracle, "oracle", required=False, help="Who labels the selected items.")
    parser.add_class_arguments(ActiveLearningPipeline, "active_learning", skip=_PIPELINE_OWN, instantiate=False)
    parser.add_class_arguments(Trainer, "trainer", skip=set(OWNED_TRAINER_OPTIONS), instantiate=False)
    parser.set_defaults({f"active_learning.{key}": value for key, value in DEFAULT_ACTIVE_LEARNING.items()})
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``alseg-train``; exits with status 2 and one message on bad input."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except LabelsPending as pending:  # a person labels the round; the same command continues
        print(pending.message, flush=True)
    except (AlsegError, ArgumentError) as error:
        if "--debug" in args:
            raise
        print(f"alseg-train: error: {error}", file=sys.stderr)
        if isinstance(error, ArgumentError):
            print("Run 'alseg-train --help' for the accepted options.", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        if "--debug" in args or error.errno not in _USER_OS_ERRORS:
            raise
        print(f"alseg-train: error: cannot write {error.filename or 'a file'}: {error.strerror}.", file=sys.stderr)
        sys.exit(2)


def run(args: list[str]) -> dict[str, Any]:
    """Parses ``args``, runs the experiment and returns its summary.

    The progress mode is decided once, from ``--quiet`` and whether standard output is a terminal, and holds for
    building the objects and the whole run.
    """
    parser, cfg = parse_args(args)
    for name in ("lightning.pytorch", "lightning.fabric"):  # hardware and process-group banners, tips
        logging.getLogger(name).setLevel(logging.WARNING)
    with progress.using(progress.decide(quiet=cfg.quiet)):
        pipeline = _build(parser, cfg)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PossibleUserWarning)  # few batches/workers on tiny data
            warnings.filterwarnings("ignore", module="lightning.pytorch.utilities._pytree")
            summary = pipeline.run()
        if pipeline.is_writer:
            progress.say(f"Run directory: {pipeline.run_dir.path}\nSummary: {pipeline.run_dir.summary_path}")
    return summary


def build_pipeline(args: list[str]) -> ActiveLearningPipeline:
    """Returns the pipeline that ``alseg-train args`` runs (the Python API of a configuration).

    The global RNGs are seeded with the run's seed before the model, data module and strategy are built, so that
    weights a plugin creates in its ``__init__`` are the same in every run of the configuration.
    """
    return _build(*parse_args(args))


def _build(parser: ArgumentParser, cfg: Namespace) -> ActiveLearningPipeline:
    """Builds the pipeline of parsed arguments (see :func:`build_pipeline`)."""
    data_args = cfg.data.get("init_args")
    if data_args is not None and "seed" in data_args and data_args.seed is None:
        data_args.seed = cfg.seed  # a data module's unset seed follows the run's seed
    config = _resolved_config(parser, cfg)
    seed_everything(cfg.seed, verbose=False)
    objects = _instantiate(parser, cfg)
    return ActiveLearningPipeline(
        objects.data,
        objects.model,
        objects.strategy,
        output_dir=cfg.output_dir,
        seed=cfg.seed,
        trainer_options=_trainer_options(cfg.trainer),
        config=config,
        oracle=objects.get("oracle"),
        **cfg.active_learning.as_dict(),
    )


def _instantiate(parser: ArgumentParser, cfg: Namespace) -> Namespace:
    """Builds the configured objects; a constructor's own :class:`AlsegError` (a bad option) is raised as it is.

    jsonargparse reports a failed constructor as a ``ValueError`` about the section's union type, with the
    constructor's error only as its cause: the one message that names the option would be lost in a traceback.
    """
    try:
        return parser.instantiate(cfg)
    except (TypeError, ValueError) as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, AlsegError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


def parse_args(args: list[str]) -> tuple[ArgumentParser, Namespace]:
    """Parses ``alseg-train`` arguments; the default experiment fills the model, data and strategy they leave out.

    The default experiment's classes are added as arguments, not as parser defaults: jsonargparse would carry a
    default class's arguments over to the class given on the command line (``power: null`` of ``entropy`` into
    ``power_bald``).
    """
    parser = build_parser()
    resolved = resolve_short_names(args)
    return parser, parser.parse_args([*_default_sections(resolved), *resolved])


def _default_sections(resolved: list[str]) -> list[str]:
    """Returns ``--section class_path`` of the default experiment for every section ``resolved`` does not give."""
    given = set()
    for index, arg in enumerate(resolved):
        flag = arg.partition("=")[0]
        given |= {s for s in SECTIONS if flag in (f"--{s}", f"--{s}.class_path")}
        if flag == "--config" and index + 1 < len(resolved):
            content = yaml.safe_load(resolved[index + 1])
            if isinstance(content, dict):
                given |= {
                    s for s in SECTIONS if isinstance(content.get(s), str) or "class_path" in (content.get(s) or {})
                }
    return [
        arg for section, path in _default_experiment().items() if section not in given for arg in (f"--{section}", path)
    ]


def resolve_short_names(args: list[str]) -> list[str]:
    """Returns ``args`` with registered short names replaced in ``--model/--data/--strategy`` and ``--config`` files.

    Raises:
        ConfigError: A short name is not registered.
    """
    resolved = []
    flags = {f"--{section}": section for section in SECTIONS}
    flags |= {f"--{section}.class_path": section for section in SECTIONS}
    index = 0
    while index < len(args):
        arg = args[index]
        flag, eq, value = arg.partition("=")
        if flag in flags and not eq and index + 1 < len(args):
            resolved += [arg, _resolve_value(flags[flag], args[index + 1])]
            index += 2
            continue
        if flag in flags and eq:
            resolved.append(f"{flag}={_resolve_value(flags[flag], value)}")
        elif flag == "--config" and index + 1 < len(args) and Path(args[index + 1]).is_file():
            resolved += [arg, _resolved_config_file(Path(args[index + 1]))]
            index += 2
            continue
        else:
            resolved.append(arg)
        index += 1
    return resolved


def _resolve_value(section: str, value: str) -> str:
    return resolve_class_path(section, value) if _SHORT_NAME.match(value) else value


def _resolved_config_file(path: Path) -> str:
    """Returns the content of a config file with short names replaced by class paths."""
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"Config file {path} is not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of sections. Got {type(content).__name__}.")
    for section in SECTIONS:
        value = content.get(section)
        if isinstance(value, str) and _SHORT_NAME.match(value):
            content[section] = {"class_path": resolve_class_path(section, value)}
        elif isinstance(value, dict) and isinstance(value.get("class_path"), str):
            value["class_path"] = _resolve_value(section, value["class_path"])
    return yaml.safe_dump(content, sort_keys=False)


def _default_experiment() -> dict[str, str]:
    """Returns the class paths of the default experiment's sections whose short names are registered."""
    return {
        section: registered(section)[value["class_path"]]
        for section, value in DEFAULT_EXPERIMENT.items()
        if value["class_path"] in registered(section)
    }


def _resolved_config(parser: ArgumentParser, cfg: Namespace) -> dict[str, Any]:
    """Returns the resolved configuration as plain data, without the command-line-only keys."""
    config = yaml.safe_load(parser.dump(cfg, skip_unset=False))
    for key in ("config", "debug", "quiet", "__path__"):
        config.pop(key, None)
    oracle = config.get("oracle")
    if oracle is None or oracle.get("class_path") == f"{SimulatedOracle.__module__}.{SimulatedOracle.__name__}":
        config.pop("oracle", None)  # the default: config.yaml as before oracles existed, so older runs resume
    return config


def _trainer_options(trainer: Namespace) -> dict[str, Any]:
    return {key: value for key, value in trainer.as_dict().items() if value is not None}


if __name__ == "__main__":
    main()
