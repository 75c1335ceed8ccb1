"""Shared pytest configuration: quiet Lightning's informational logging in tests; a tiny alseg-train run."""

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

#: The smallest experiment: a 2-item initial set, a U-Net of 4 base channels and 3 levels, one round of one epoch.
TINY_RUN = [
    "--data.initial_training_set_size",
    "2",
    "--model.base_channels",
    "4",
    "--model.num_levels",
    "3",
    "--active_learning.iterations",
    "1",
    "--active_learning.items_to_label",
    "2",
    "--active_learning.epochs",
    "1",
    "--trainer.accelerator",
    "cpu",
]


@pytest.fixture(scope="session")  # stateless: module-scoped fixtures may train a run once
def alseg_train() -> Callable[..., list[dict]]:
    """Runs ``alseg-train --output_dir <dir> <data options> <TINY_RUN> <extra>``; returns the ledger's records."""

    def run(output_dir: Path, data: list[str], *extra: str) -> list[dict]:
        from alseg.core import cli  # imported here: collecting the core-only tests must not import Lightning

        cli.main(["--output_dir", str(output_dir), *data, *TINY_RUN, *extra])
        return [json.loads(line) for line in (output_dir / "rounds.jsonl").read_text().splitlines()]

    return run
