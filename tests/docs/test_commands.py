"""Every command of the docs' bash blocks (docs/*.md and README.md) parses against the real command-line parsers.

The blocks marked ``<!-- runs-in-tests -->`` run for real, command by command, in a copy of the repository's docs/
in tmp_path. The others are parsed only: alseg-train's options by its jsonargparse parser (classes, types and
``init_args`` included), those of alseg-bench, alseg-report, alseg-predict and alseg-make-data by their argparse
parsers, and the repository files they name must exist. Commands of other tools are checked against a short list.
"""

import argparse
import contextlib
import itertools
import os
import re
import runpy
import shlex
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from alseg.bench import cli as bench_cli
from alseg.bench import grid
from alseg.bench import report as bench_report
from alseg.core import cli as train_cli
from alseg.datasets import make_data, predict

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
BLOCK = re.compile(r"(<!-- runs-in-tests -->\n)?```bash\n(.*?)```", re.S)
ALSEG_TOOLS = {
    "alseg-train": train_cli.main,
    "alseg-bench": bench_cli.main,
    "alseg-report": bench_report.main,
    "alseg-predict": predict.main,
    "alseg-make-data": make_data.main,
}
# Other tools the docs may show, with what their arguments must satisfy.
OTHER_TOOLS = {"pytest", "mkdocs", "python", "bash", "pip", "tensorboard", "wandb", "mlflow", "srun", "cp"}
SHELL_OPERATORS = {">", ">>", "|", "&&", ";", "&"}


class Parsed(BaseException):  # not an Exception: main() must not catch it
    """Raised instead of running a command once its arguments parsed."""


def commands(text: str) -> list[tuple[list[str], bool]]:
    """The commands of a page's bash blocks as ``(argv, runs)``; ``argv`` without env prefixes and redirections."""
    found = []
    for marker, block in BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found.append((words, bool(marker)))
    return found


def split_env(words: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """Splits ``A=b uv run tool args > file`` into the environment, the command and what follows an operator."""
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    cut = next((n for n, word in enumerate(words) if word in SHELL_OPERATORS), len(words))
    command, rest = words[:cut], words[cut:]
    if command[:1] == ["srun"]:
        command = command[1:]
    if command[:2] == ["uv", "run"]:
        command = command[2:]
    return env, command, rest


ALL = [
    pytest.param(words, runs, id=f"{page.name}:{' '.join(words)[:80]}")
    for page in PAGES
    for words, runs in commands(page.read_text())
]


def test_the_pages_show_commands():
    tools = {split_env(list(param.values[0]))[1][0] for param in ALL}
    assert {"alseg-train", "alseg-bench", "alseg-report", "alseg-make-data", "mkdocs"} <= tools


@contextlib.contextmanager
def parse_only():
    """Within it, an argparse-based ``main`` stops with :class:`Parsed` once its arguments parsed."""
    original = argparse.ArgumentParser.parse_args

    def parse(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    argparse.ArgumentParser.parse_args = parse
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original


def check_repository_files(args: list[str], produced: set[str]) -> None:
    """Files of the repository that a command names (configs, scripts) must exist."""
    for arg in args:
        value = arg.partition("=")[2] if arg.startswith("--") else arg
        if re.fullmatch(r"[\w./-]+\.(yaml|yml|py|toml)", value) and value not in produced:
            assert (ROOT / value).is_file(), f"{value} is not a file of the repository"


@pytest.mark.parametrize(("words", "runs"), [p for p in ALL if not p.values[1]])
def test_command_parses(words, runs, monkeypatch):
    env, command, rest = split_env(list(words))
    tool, args = command[0], command[1:]
    produced = {rest[1]} if rest[:1] in ([">"], [">>"]) else set()
    check_repository_files(args, produced)
    if tool == "alseg-train":
        if "PYTHONPATH" in env:
            monkeypatch.syspath_prepend(str(ROOT / env["PYTHONPATH"]))
        train_cli.parse_args([a for a in args if a not in ("--print_config", "--help")])  # those two print and exit
    elif tool in ALSEG_TOOLS:
        with parse_only(), pytest.raises(Parsed):
            ALSEG_TOOLS[tool](args)
    elif tool == "uv":
        assert args in (["sync"], ["sync", "--locked"]), args
    elif tool == "pip":
        assert args[0] == "install"
        extras = tomllib.loads((ROOT / "packages/core/pyproject.toml").read_text())["project"]["optional-dependencies"]
        for spec in args[1:]:
            match = re.fullmatch(r"alseg-core\[([\w,]+)\]", spec)
            assert match and set(match.group(1).split(",")) <= set(extras), spec
    elif tool == "pytest":
        paths = [a for a in args if not a.startswith("-") and a not in ("slow",)]
        assert all((ROOT / p.split("::")[0]).exists() for p in paths), paths
    elif tool == "mkdocs":
        assert args[:1] in (["build"], ["serve"]), args
    elif tool == "python":
        assert args[:2] == ["-m", "http.server"] or (ROOT / args[0]).is_file(), args
    elif tool == "bash":
        assert (ROOT / args[0]).is_file(), args
    else:
        assert tool in OTHER_TOOLS, f"unknown tool {tool!r} in a docs command: {' '.join(words)}"


RUNNING_BLOCKS = sorted({page for page in PAGES if any(runs for _, runs in commands(page.read_text()))})


@pytest.mark.parametrize("page", RUNNING_BLOCKS, ids=lambda page: page.name)
def test_marked_blocks_run(page, tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALSEG_CACHE", str(tmp_path / "cache"))
    ran = []
    for words, runs in commands(page.read_text()):
        if not runs:
            continue
        env, command, rest = split_env(list(words))
        assert not rest, f"a running command has no redirection: {words}"
        if "PYTHONPATH" in env:
            monkeypatch.syspath_prepend(os.path.abspath(env["PYTHONPATH"]))
        tool, args = command[0], command[1:]
        if tool == "python":
            monkeypatch.setattr(sys, "argv", args)
            runpy.run_path(args[0], run_name="__main__")
        else:
            try:
                status = ALSEG_TOOLS[tool](args)
            except SystemExit as stop:
                status = stop.code
            assert status in (0, None), f"{' '.join(words)} exited with {status}: {capsys.readouterr()}"
        if tool == "alseg-make-data":
            assert any(Path(args[0]).iterdir()), f"{args[0]} is empty"
        if tool == "alseg-train":
            option = {a: b for a, b in itertools.pairwise(args) if a.startswith("--")}
            run_dir = Path(option.get("--output_dir", "runs/default"))
            assert (run_dir / "summary.json").is_file()
            rounds = (run_dir / "rounds.jsonl").read_text().splitlines()
            assert len(rounds) == 1 + int(option["--active_learning.iterations"])  # round 0, then the query rounds
        ran.append(tool)
    assert ran


YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
YAML_BLOCKS = [
    pytest.param(block, id=f"{page.name}:{n}")
    for page in PAGES
    for n, block in enumerate(YAML_BLOCK.findall(page.read_text()))
]


@pytest.mark.parametrize("block", YAML_BLOCKS)
def test_yaml_block_validates(block, tmp_path):
    """A grid block validates as a grid whose cells alseg-train accepts; a config block as alseg-train's config."""
    content = yaml.safe_load(block)
    if "strategies" in content:
        cells = grid.expand(grid.parse_grid(content), tmp_path / "bench")
        base = tmp_path / "base.yaml"
        base.write_text(yaml.safe_dump(grid.cell_base_config({})))
        grid.validate_cells(cells, base)
        assert len(cells) == len(content["strategies"]) * content["seeds"] * len(content.get("overrides") or [None])
    else:
        assert set(content) <= set(train_cli.SECTIONS) | {"seed", "output_dir"}, sorted(content)
        config = tmp_path / "config.yaml"
        config.write_text(block)
        train_cli.parse_args(["--config", str(config)])
