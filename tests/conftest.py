"""Shared pytest configuration: quiet Lightning's informational logging in tests; a tiny alseg-train run; running a
command under a pseudo-terminal."""

import fcntl
import json
import logging
import os
import struct
import subprocess
import termios
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


@pytest.fixture(scope="session")
def run_in_terminal() -> Callable[..., tuple[int, str]]:
    """Runs a command with a pseudo-terminal (160 columns) as its stdin, stdout and stderr; returns its exit status
    and everything it wrote there (carriage returns and escape sequences included)."""

    def run(command: list[str], **popen: object) -> tuple[int, str]:
        leader, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        with subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, **popen) as process:
            os.close(follower)
            output = b""
            while True:
                try:
                    chunk = os.read(leader, 1 << 16)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            os.close(leader)
            status = process.wait(timeout=600)
        return status, output.decode(errors="replace")

    return run
