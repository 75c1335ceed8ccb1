"""The typed ledger line: written and read through one definition; today's schema-1 ledgers still read."""

import json

import pytest

from alseg.core import ConfigError
from alseg.core.round_record import SCHEMA_VERSION, RoundRecord
from alseg.core.run_directory import RunDirectory

SCHEMA_1 = {  # a line as alseg 0.1.0 wrote it: num_labeled counted pseudo-labelled items too
    "round": 1,
    "seed": 7,
    "selected_ids": ["case_0:1", "case_0:2"],
    "pseudo_labeled_ids": ["case_0:3"],
    "pseudo_labels_file": "pseudo_labels/round_001.pt",
    "selected_with_foreground": 1,
    "num_labeled": 7,
    "num_pseudo_labeled": 1,
    "num_unlabeled": 17,
    "epochs": 1,
    "metrics": {"val/loss": 0.5},
    "best_checkpoint": "checkpoints/round_001/best.ckpt",
    "timing_s": {"query": 0.1, "train": 1.0, "validate": 0.2},
    "wall_time_s": 1.4,
}


def test_schema_1_lines_read_with_the_budget_in_oracle_labels():
    record = RoundRecord.from_json(SCHEMA_1)
    assert (record.num_labeled, record.num_pseudo_labeled, record.num_training_items) == (6, 1, 7)
    assert record.ground_truth_revealed == 0 and record.strategy_notes == {}
    assert record.schema_version == SCHEMA_VERSION


def test_a_record_round_trips_through_its_ledger_line(tmp_path):
    record = RoundRecord.from_json(SCHEMA_1)
    directory = RunDirectory(tmp_path)
    directory.append_round(RoundRecord.from_json({**SCHEMA_1, "round": 0}))
    directory.append_round(record)
    assert directory.read_rounds()[1] == record
    assert json.loads(directory.ledger_path.read_text().splitlines()[1])["schema_version"] == SCHEMA_VERSION


def test_a_newer_schema_or_a_missing_key_is_one_clear_error():
    with pytest.raises(ConfigError, match="ledger schema 99; this alseg reads schemas 1 to"):
        RoundRecord.from_json({**SCHEMA_1, "schema_version": 99})
    with pytest.raises(ConfigError, match="lacks the key\\(s\\) best_checkpoint, metrics"):
        RoundRecord.from_json({k: v for k, v in SCHEMA_1.items() if k not in ("metrics", "best_checkpoint")})


def test_completeness_is_a_summary_written_after_the_last_round(tmp_path):
    directory = RunDirectory(tmp_path)
    directory.append_round(RoundRecord.from_json({**SCHEMA_1, "round": 0}))
    assert not directory.is_complete()
    directory.write_summary({"rounds": 1})
    assert directory.is_complete()
    directory.append_round(RoundRecord.from_json(SCHEMA_1))  # an extended run whose new summary is not written yet
    assert not directory.is_complete()
