"""The run directory: resolved configuration, the append-only round ledger, summary and artefacts.

Layout of ``output_dir``::

    config.yaml          the fully resolved configuration of the run
    run.json             the run's identity besides its configuration: the data fingerprint
    rounds.jsonl         one JSON object per completed round, appended and flushed atomically
    summary.json         the latest summary (rewritten atomically)
    checkpoints/         best weights of every round (round_000/…ckpt)
    pseudo_labels/       pseudo labels given in a round (round_001.pt), replayed on resume
    oracle_labels/       labels an oracle that asks a person supplied in a round (round_001.pt), replayed on resume
    pending_round.pt     a round's selection that waits for its labels (see :mod:`alseg.core.pending_round`)
    heatmaps/            drawings of what was queried (``heatmaps_per_round``; see :mod:`alseg.core.heatmaps`):
                         round_001/01_<id>.png (and .nii.gz for 3D items), heatmaps.json written last
    oracle/              the oracle's own files (e.g. the digest of the manifest of the round it asked for)
    logs/                Lightning CSV logs, one version per round (csv/round_003/), and the experiment trackers'
                         files with tracking.json, their run ids (see :mod:`alseg.core.tracking`)

    .lock                held (``flock``) by the one process that writes the directory

A run that is started again on the same directory resumes: completed rounds are read back from
``rounds.jsonl``. A crash while a line is being appended can leave a partial last line; it is not a
completed round, so reading drops it (and the resumed run repeats that round). A directory whose ledger holds no
completed round is not a run yet: a new start may change its configuration and data.

One writer: the writing process holds an exclusive lock on ``.lock`` while it runs (released by the kernel when it
dies, so a killed run never blocks its rerun); a second writer is refused. Files are created with the process's
umask.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

from alseg.core.errors import ConfigError
from alseg.core.round_record import RoundRecord

#: Config keys that may change when a run is resumed: more rounds for a finished run, the directory's own path
#: (a run directory that was moved or copied resumes where it is), where logs go and the heatmaps drawn (they change no
#: result).
RESUMABLE_KEYS = frozenset(
    {
        "active_learning.iterations",
        "output_dir",
        "active_learning.logger",
        "active_learning.tracking_project",
        "active_learning.tracking_uri",
        "active_learning.heatmaps_per_round",
        "active_learning.heatmaps_gradcam_layer",
    }
)


class RunDirectory:
    """Reads and writes the files of one run directory.

    Args:
        path: The run's ``output_dir``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.identity_path = self.path / "run.json"
        self.lock_path = self.path / ".lock"
        self.ledger_path = self.path / "rounds.jsonl"
        self.summary_path = self.path / "summary.json"
        self.checkpoints_dir = self.path / "checkpoints"
        self.pseudo_labels_dir = self.path / "pseudo_labels"
        self.logs_dir = self.path / "logs"
        self.oracle_labels_dir = self.path / "oracle_labels"
        self.pending_path = self.path / "pending_round.pt"
        self.oracle_dir = self.path / "oracle"
        self.tracking_path = self.logs_dir / "tracking.json"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the directory's writer lock (creating the directory) for the block.

        Raises:
            ConfigError: Another process holds it, or the directory cannot be written (naming the path).
        """
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"output_dir {self.path} exists and is not a directory.")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_path, "a+")  # noqa: SIM115 - held for the block
        except OSError as error:
            raise ConfigError(f"Cannot write output_dir {self.path}: {error.strerror}.") from error
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise ConfigError(
                    f"output_dir {self.path} is being written by {holder}. A run directory has one writer at a time: "
                    "wait for that run to end (or stop it), or choose another output_dir."
                ) from None
            handle.truncate(0)
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            yield

    def prepare(
        self,
        config: dict[str, Any] | None,
        data_fingerprint: str | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """Writes the run's identity, or checks that the run it continues has the same configuration and data.

        A directory with no completed round takes the new identity (a failed first start does not bind it). An option
        the existing run's config lacks counts as its ``defaults`` value (see :func:`config_differences`), so that a
        run started by an earlier version resumes unless the option is set to something else.

        Raises:
            ConfigError: The directory is not empty but holds no alseg run, or its completed rounds were made with a
                ``config.yaml`` that differs from ``config`` in a key other than :data:`RESUMABLE_KEYS`, or with other
                data. Nothing is written in that case.
        """
        existing = self.path.exists() and any(p.name != self.lock_path.name for p in self.path.iterdir())
        if existing and not self.config_path.exists():
            raise ConfigError(
                f"output_dir {self.path} is not empty and holds no alseg run (no config.yaml). "
                "Choose an empty or new directory."
            )
        if existing and self.read_rounds():
            self._check_identity(config, data_fingerprint, defaults)
        if config is not None:
            atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False))
        atomic_write_text(self.identity_path, json.dumps({"data_fingerprint": data_fingerprint}, indent=2) + "\n")

    def _check_identity(
        self, config: dict[str, Any] | None, data_fingerprint: str | None, defaults: Mapping[str, Any] | None
    ) -> None:
        if config is not None:
            old = yaml.safe_load(self.config_path.read_text())
            differences = config_differences(old, config, defaults=defaults)
            if differences:
                raise ConfigError(
                    f"output_dir {self.path} holds a run with a different configuration, so it cannot be resumed "
                    f"({'; '.join(differences[:5])}). Use another output_dir or the same configuration."
                )
        recorded = (
            json.loads(self.identity_path.read_text()).get("data_fingerprint") if self.identity_path.exists() else None
        )
        if recorded is not None and recorded != data_fingerprint:
            raise ConfigError(
                f"output_dir {self.path} holds a run made on other data (data fingerprint {recorded[:12]}…, now "
                f"{str(data_fingerprint)[:12]}…): images, labels or the split changed since it started, so it cannot "
                "be resumed. Restore the data or use another output_dir."
            )

    @staticmethod
    def round_name(round_index: int) -> str:
        """Returns the name of a round's checkpoint folder, pseudo-label file and log version (``round_003``)."""
        return f"round_{round_index:03d}"

    def checkpoint_dir(self, round_index: int) -> Path:
        """Returns the folder of a round's checkpoints."""
        return self.checkpoints_dir / self.round_name(round_index)

    def save_pseudo_labels(self, round_index: int, pseudo_labels: dict[str, Any] | None) -> str | None:
        """Saves a round's pseudo labels atomically; returns their file relative to the run (None if there are none)."""
        if not pseudo_labels:
            return None
        path = self.pseudo_labels_dir / f"{self.round_name(round_index)}.pt"
        atomic_torch_save(path, pseudo_labels)
        return str(path.relative_to(self.path))

    def save_oracle_labels(self, round_index: int, labels: dict[str, Any]) -> None:
        """Saves the labels an oracle supplied in a round atomically (``oracle_labels/round_XXX.pt``)."""
        atomic_torch_save(self.oracle_labels_dir / f"{self.round_name(round_index)}.pt", labels)

    def load_oracle_labels(self, round_index: int) -> dict[str, Any] | None:
        """Returns the labels an oracle supplied in a recorded round, or None (the data module's ground truth)."""
        path = self.oracle_labels_dir / f"{self.round_name(round_index)}.pt"
        return torch.load(path, weights_only=False) if path.is_file() else None

    def save_pending(self, pending: Any) -> None:
        """Keeps a round's selection that waits for its labels, atomically (``pending_round.pt``)."""
        atomic_torch_save(self.pending_path, pending)

    def load_pending(self) -> Any | None:
        """Returns the selection that waits for its labels, or None."""
        return torch.load(self.pending_path, weights_only=False) if self.pending_path.is_file() else None

    def clear_pending(self) -> None:
        """Removes the pending selection (its round is in the ledger)."""
        self.pending_path.unlink(missing_ok=True)

    def load_pseudo_labels(self, record: RoundRecord) -> dict[str, Any] | None:
        """Returns the pseudo labels a recorded round gave, or None."""
        if record.pseudo_labels_file is None:
            return None
        return torch.load(self.path / record.pseudo_labels_file, weights_only=False)

    def is_complete(self) -> bool:
        """Returns whether the directory holds a finished run: a summary written after its last ledger round."""
        if not self.summary_path.exists():
            return False
        return json.loads(self.summary_path.read_text()).get("rounds") == len(self.read_rounds())

    def read_rounds(self) -> list[RoundRecord]:
        """Returns the completed rounds in order; a partial last line (left by a crash) is not a round."""
        if not self.ledger_path.exists():
            return []
        data = self.ledger_path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1].decode()
        records = [self._parse(number, line) for number, line in enumerate(complete.splitlines(), 1) if line.strip()]
        for expected, record in enumerate(records):
            if record.round != expected:
                raise ConfigError(
                    f"{self.ledger_path}: line {expected + 1} records round {record.round!r}, "
                    f"expected {expected}. The ledger was edited or mixes runs."
                )
        return records

    def _parse(self, number: int, line: str) -> RoundRecord:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{self.ledger_path}: line {number} is not a JSON round record ({error.msg}). The ledger was edited."
            ) from None
        if not isinstance(record, dict):
            raise ConfigError(f"{self.ledger_path}: line {number} is not a JSON object. The ledger was edited.")
        return RoundRecord.from_json(record, f"{self.ledger_path}: line {number}")

    def resume(self) -> list[RoundRecord]:
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

    def append_round(self, record: RoundRecord) -> None:
        """Appends one round as a single JSON line, written with one ``write`` call and flushed to disk."""
        line = (json.dumps(record.to_json(), sort_keys=False) + "\n").encode()
        fd = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Writes ``summary.json`` atomically."""
        atomic_write_text(self.summary_path, json.dumps(summary, indent=2) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename, so readers never see a partial file.

    The file gets the permissions of any new file (0666 less the umask), unlike ``tempfile.mkstemp``'s 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file and a rename (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_torch_save(path: Path, obj: Any) -> None:
    """Saves ``obj`` with ``torch.save`` through a temporary file and a rename (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def config_differences(old: Any, new: Any, prefix: str = "", defaults: Mapping[str, Any] | None = None) -> list[str]:
    """Lists the dotted keys whose values differ between two configs, ignoring :data:`RESUMABLE_KEYS`.

    Args:
        old: The existing run's config.
        new: The config now.
        prefix: The dotted key of ``old`` and ``new`` within the whole config.
        defaults: Dotted key → default value of options; a key that ``old`` lacks (an option added by a later version)
            and that ``new`` gives its default is no difference: the old run ran as the default does.
    """
    if prefix in RESUMABLE_KEYS:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        differences = []
        for key in sorted(set(old) | set(new), key=str):
            child = f"{prefix}.{key}" if prefix else str(key)
            if key not in old and defaults and child in defaults and new[key] == defaults[child]:
                continue
            differences += config_differences(old.get(key), new.get(key), child, defaults)
        return differences
    if old != new:
        return [f"{prefix or '<root>'}: {old!r} in the existing run, {new!r} now"]
    return []
