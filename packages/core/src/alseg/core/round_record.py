"""One line of a run's ledger (``rounds.jsonl``): the contract between the loop and everything that reads runs.

The pipeline writes a :class:`RoundRecord` per completed round and readers (resume, ``alseg-bench``, reports) read
them back through :meth:`RoundRecord.from_json`, never by string keys of their own. ``schema_version`` 2 counts the
labelling budget in oracle labels (``num_labeled``) and pseudo labels apart; lines of schema 1 (no
``schema_version``, where ``num_labeled`` was the training-set size including pseudo labels) still read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from alseg.core.errors import ConfigError

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class RoundRecord:
    """What one round did and measured.

    Attributes:
        round: The round, 0 for the initial training.
        seed: The round's seed (derived from the run's seed and the round).
        selected_ids: Ids the strategy selected and the oracle labelled (empty in round 0).
        num_labeled: Oracle-labelled training items after the round: the labelling budget spent.
        num_unlabeled: Items left in the pool.
        epochs: Training epochs of the round.
        metrics: Validation metrics of the round's best checkpoint (``val/...``).
        best_checkpoint: The best checkpoint, relative to the run directory.
        num_pseudo_labeled: Pseudo-labelled training items after the round (not budget).
        pseudo_labeled_ids: Ids the strategy gave pseudo labels in this round.
        pseudo_labels_file: The file holding those pseudo labels, relative to the run directory.
        pseudo_label_dice: The mean foreground Dice of each of this round's pseudo labels against the ground truth
            of the same item (analysis only, :func:`~alseg.core.metrics.label_dice`), keyed by id; empty if the data
            module has no ground truth to compare with.
        selected_with_foreground: How many selected items hold foreground in their ground truth (analysis only), or
            None if the data module cannot tell.
        annotation_cost: What the oracle labels so far cost, per unit (``items``, and where the data module counts
            them ``slices``, ``voxels``, ``foreground_voxels``, ``new_voxels`` (voxels no earlier label covered:
            overlapping patches count once) and ``labelled_fraction`` (of the training volumes' voxels, a float); see
            :meth:`~alseg.core.data_module.ActiveLearningDataModule.annotation_cost`); empty in older ledgers.
        ground_truth_revealed: Pool ids whose ground truth the strategy asked for (oracle-informed baselines).
        strategy_notes: Values the strategy recorded (e.g. ``tied_picks``).
        timing_s: Seconds spent in ``query``, ``train``, ``validate`` and ``test``.
        wall_time_s: Seconds of the whole round.
        schema_version: The ledger schema of this line.
    """

    round: int
    seed: int
    selected_ids: list[str]
    num_labeled: int
    num_unlabeled: int
    epochs: int
    metrics: dict[str, float]
    best_checkpoint: str
    num_pseudo_labeled: int = 0
    pseudo_labeled_ids: list[str] = field(default_factory=list)
    pseudo_labels_file: str | None = None
    pseudo_label_dice: dict[str, float] = field(default_factory=dict)
    selected_with_foreground: int | None = None
    annotation_cost: dict[str, int | float] = field(default_factory=dict)
    ground_truth_revealed: int = 0
    strategy_notes: dict[str, Any] = field(default_factory=dict)
    timing_s: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    schema_version: int = SCHEMA_VERSION

    @property
    def num_training_items(self) -> int:
        """Training items after the round: oracle and pseudo labels."""
        return self.num_labeled + self.num_pseudo_labeled

    def to_json(self) -> dict[str, Any]:
        """Returns the record as the JSON object of its ledger line."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "the ledger") -> RoundRecord:
        """Reads a ledger line of any known schema.

        Raises:
            ConfigError: The line lacks a required key or comes from a newer schema (naming ``where``).
        """
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ConfigError(
                f"{where} has ledger schema {version!r}; this alseg reads schemas 1 to {SCHEMA_VERSION}. "
                "Upgrade alseg-core to read it."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if version == 1:  # num_labeled counted pseudo-labelled items too
            values["num_labeled"] = data.get("num_labeled", 0) - data.get("num_pseudo_labeled", 0)
        values["schema_version"] = SCHEMA_VERSION
        missing = sorted(f.name for f in dataclasses.fields(cls) if _required(f) and f.name not in values)
        if missing:
            raise ConfigError(f"{where} lacks the key(s) {', '.join(missing)} of a round record.")
        return cls(**values)


def _required(field_: dataclasses.Field) -> bool:
    return field_.default is dataclasses.MISSING and field_.default_factory is dataclasses.MISSING
