"""The ``folder`` oracle: a person annotates a round's items as NIfTI files, and the same command imports them.

``alseg-train --oracle folder --oracle.dir DIR``: after a query, the oracle writes ``DIR/round_XXX/``
(:mod:`alseg.datasets.annotation_round`: manifest, images, the model's predictions as pre-annotations, a README)
and the run stops with one line saying what to label (:class:`~alseg.core.oracle.LabelsPending`, exit status 0).
Running the same command again finds the round's selection in the run directory, checks every mask
(:mod:`alseg.datasets.annotation_import`) and the manifest (its SHA-256, recorded in the run directory's
``oracle/round_XXX.json`` when it was written), and continues the loop with the masks as the round's labels, or
stops with one message per problem (exit status 2) having imported nothing. Deleting ``DIR/round_XXX`` has it
written again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from torch import Tensor

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import ConfigError, DataError
from alseg.core.oracle import LabelRequest, LabelsPending, Oracle
from alseg.core.run_directory import atomic_write_text
from alseg.datasets.annotation_import import read_masks
from alseg.datasets.annotation_items import PLURAL, AnnotationItem
from alseg.datasets.annotation_round import MANIFEST, README, manifest_bytes, round_name, write_round
from alseg.datasets.volume_data_module import VolumeDataModule


class FolderOracle(Oracle):
    """A person labels each round's items in ``dir``; only rank 0 writes and reads the files.

    Args:
        dir: The folder of the annotation rounds (relative to the working directory); required.
        threshold: Multi-label pre-annotations: the region threshold (default the model's first confidence level).
    """

    def __init__(self, dir: str | None = None, threshold: float | None = None) -> None:
        if not dir:  # optional in the signature so that a missing one gets this message, not the parser's
            raise ConfigError(
                "The folder oracle needs the folder of the annotation rounds: --oracle.dir DIR. Got none."
            )
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ConfigError(f"The 'threshold' option of the folder oracle must be in (0, 1). Got {threshold!r}.")
        self.dir, self.threshold = dir, threshold

    def check(self, data_module: ActiveLearningDataModule) -> None:
        """Checks that the data module is a volume data module (its items are NIfTI cases).

        Raises:
            ConfigError: It is not.
        """
        super().check(data_module)
        if not isinstance(data_module, VolumeDataModule):
            raise ConfigError(
                f"The folder oracle writes NIfTI files and needs a volume data module (brats, decathlon). Got "
                f"{type(data_module).__name__}."
            )

    def labels(self, request: LabelRequest) -> dict[str, Tensor]:
        """The round's masks as labels; writes the round and raises :class:`LabelsPending` the first time.

        Raises:
            LabelsPending: The round was just written.
            DataError: The round folder was not written by this run, its manifest was edited, or its masks are
                missing, extra or invalid (one line per problem, naming the file).
        """
        data_module: VolumeDataModule = request.data_module  # type: ignore[assignment]
        round_dir = Path(self.dir).expanduser() / round_name(request.round)
        record = request.state_dir / f"{round_name(request.round)}.json"
        items = [AnnotationItem.of(data_module, item_id) for item_id in request.ids]
        if not round_dir.exists():
            manifest = manifest_bytes(request.round, data_module, items)
            digest = {"manifest": str(round_dir / MANIFEST), "sha256": hashlib.sha256(manifest).hexdigest()}
            atomic_write_text(record, json.dumps({**digest, "ids": list(request.ids)}, indent=2) + "\n")
            write_round(round_dir, request, self.threshold)
            raise LabelsPending(
                f"Round {request.round}: label the {len(items)} {PLURAL[items[0].kind]} in {round_dir} (see "
                f"{round_dir / README}), then run the same command again to continue."
            )
        self._check_manifest(round_dir, record, request.ids)
        return read_masks(round_dir, items, data_module.source().label_scheme)

    @staticmethod
    def _check_manifest(round_dir: Path, record: Path, ids: list[str]) -> None:
        manifest = round_dir / MANIFEST
        if not record.is_file():
            raise DataError(
                f"{round_dir} exists, but this run did not write it (no record {record}). Remove it or choose "
                "another --oracle.dir."
            )
        recorded = json.loads(record.read_text())
        if not manifest.is_file():
            raise DataError(f"{manifest} is missing. Delete {round_dir} to have the round written again.")
        if hashlib.sha256(manifest.read_bytes()).hexdigest() != recorded["sha256"] or recorded["ids"] != list(ids):
            raise DataError(
                f"{manifest} was edited since alseg wrote it (its SHA-256 differs from the one recorded in {record}). "
                f"Restore it, or delete {round_dir} to have the round written again (masks in it are lost)."
            )
