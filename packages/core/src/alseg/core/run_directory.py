"""The run directory: resolved configuration, the append-only round ledger, summary and artefacts.

Layout of ``output_dir``::

    config.yaml          the fully resolved configuration of the run
    rounds.jsonl         one JSON object per completed round, appended and flushed atomically
    summary.json         the latest summary (rewritten atomically)
    checkpoints/         best weights of every round (round_000/…ckpt)
    pseudo_labels/       pseudo labels given in a round (round_001.pt), replayed on resume
    logs/                Lightning CSV (and TensorBoard, if installed) logs, one version per round

A run that is started again on the same directory resumes: completed rounds are read back from
``rounds.jsonl``. A crash while a line is being appended can leave a partial last line; it is not a
completed round, so reading drops it (and the resumed run repeats that round).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from alseg.core.errors import ConfigError

#: Config keys that may change when a run is resumed: more rounds for a finished run, and the directory's own path
#: (a run directory that was moved or copied resumes where it is).
RESUMABLE_KEYS = frozenset({"active_learning.iterations", "output_dir"})


class RunDirectory:
    """Reads and writes the files of one run directory.

    Args:
        path: The run's ``output_dir``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.ledger_path = self.path / "rounds.jsonl"
        self.summary_path = self.path / "summary.json"
        self.checkpoints_dir = self.path / "checkpoints"
        self.pseudo_labels_dir = self.path / "pseudo_labels"
        self.logs_dir = self.path / "logs"

    def prepare(self, config: dict[str, Any] | None) -> None:
        """Creates the directory and writes ``config.yaml``, or checks that an existing run has the same config.

        Raises:
            ConfigError: The directory is not empty but holds no alseg run, or its ``config.yaml`` differs from
                ``config`` in a key other than :data:`RESUMABLE_KEYS`. Nothing is written in that case.
        """
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"output_dir {self.path} exists and is not a directory.")
        existing = self.path.exists() and any(self.path.iterdir())
        if existing and not self.config_path.exists():
            raise ConfigError(
                f"output_dir {self.path} is not empty and holds no alseg run (no config.yaml). "
                "Choose an empty or new directory."
            )
        if existing and config is not None:
            old = yaml.safe_load(self.config_path.read_text())
            differences = config_differences(old, config)
            if differences:
                raise ConfigError(
                    f"output_dir {self.path} holds a run with a different configuration, so it cannot be resumed "
                    f"({'; '.join(differences[:5])}). Use another output_dir or the same configuration."
                )
        self.path.mkdir(parents=True, exist_ok=True)
        if config is not None:
            atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def read_rounds(self) -> list[dict[str, Any]]:
        """Returns the completed rounds in order; a partial last line (left by a crash) is not a round."""
        if not self.ledger_path.exists():
            return []
        data = self.ledger_path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1].decode()
        records = [json.loads(line) for line in complete.splitlines() if line.strip()]
        for expected, record in enumerate(records):
            if record.get("round") != expected:
                raise ConfigError(
                    f"{self.ledger_path}: line {expected + 1} records round {record.get('round')!r}, "
                    f"expected {expected}. The ledger was edited or mixes runs."
                )
        return records

    def resume(self) -> list[dict[str, Any]]:
        """Returns the completed rounds after cutting a partial last line off the ledger, so appends continue it.

        Only the run that continues the ledger calls this; readers (reports) use :meth:`read_rounds`.
        """
        records = self.read_rounds()
        if self.ledger_path.exists():
            data = self.ledger_path.read_bytes()
            complete = data.rfind(b"\n") + 1
            if complete != len(data):
                with open(self.ledger_path, "r+b") as handle:
                    handle.truncate(complete)
        return records

    def append_round(self, record: dict[str, Any]) -> None:
        """Appends one round as a single JSON line, written with one ``write`` call and flushed to disk."""
        line = (json.dumps(record, sort_keys=False) + "\n").encode()
        fd = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Writes ``summary.json`` atomically."""
        atomic_write_text(self.summary_path, json.dumps(summary, indent=2) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename, so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Lists the dotted keys whose values differ between two configs, ignoring :data:`RESUMABLE_KEYS`."""
    if prefix in RESUMABLE_KEYS:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        differences = []
        for key in sorted(set(old) | set(new), key=str):
            child = f"{prefix}.{key}" if prefix else str(key)
            differences += config_differences(old.get(key), new.get(key), child)
        return differences
    if old != new:
        return [f"{prefix or '<root>'}: {old!r} in the existing run, {new!r} now"]
    return []
