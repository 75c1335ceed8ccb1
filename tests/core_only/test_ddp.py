"""``alseg-train`` end to end under Lightning DDP with 2 gloo CPU ranks: one writer, one labelled set, exact metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from alseg.core.testing import InMemoryDataModule

HERE = Path(__file__).parent
DATA = {"num_cases": 7, "slices_per_case": 5, "val_cases": 2, "test_cases": 1, "initial_training_set_size": 4}
ARGS = [
    "--model",
    "eager_plugin.EagerModel",
    "--data",
    "alseg.core.testing.InMemoryDataModule",
    *[arg for key, value in DATA.items() for arg in (f"--data.{key}", str(value))],
    "--data.batch_size",
    "3",  # 10 validation slices in batches of 3: each case's slices end up on both ranks
    "--strategy",
    "eager_plugin.MaxProbabilityStrategy",
    "--trainer.accelerator",
    "cpu",
    "--trainer.strategy",
    "ddp",
    "--trainer.devices",
    "2",
    "--active_learning.items_to_label",
    "3",
    "--active_learning.iterations",
    "2",
    "--active_learning.epochs",
    "2",
    "--active_learning.logger",
    "false",
    "--seed",
    "1",
]


def alseg_train(output_dir: Path, record: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    record.mkdir(exist_ok=True)
    environment = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "MASTER_ADDR": "127.0.0.1",
        "GLOO_SOCKET_IFNAME": "lo",
        "ALSEG_TEST_RECORD": str(record),
        **env,
    }
    command = [sys.executable, "-m", "alseg.core.cli", *ARGS, "--output_dir", str(output_dir), *extra]
    return subprocess.run(command, env=environment, capture_output=True, text=True, start_new_session=True, timeout=600)


def ledger(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]


def single_process_validation(run: Path, checkpoint: str) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    try:
        from eager_plugin import EagerModel
    finally:
        sys.path.remove(str(HERE))
    data = InMemoryDataModule(**DATA, batch_size=3, seed=1)
    model = EagerModel()
    model.bind_data(data)
    model.load_state_dict(torch.load(run / checkpoint, weights_only=True)["state_dict"])
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    return {k: float(v) for k, v in trainer.validate(model, datamodule=data, verbose=False)[0].items()}


@pytest.mark.slow
def test_alseg_train_under_ddp_writes_once_labels_alike_measures_exactly_and_resumes(tmp_path):
    straight = alseg_train(tmp_path / "straight", tmp_path / "record")
    assert straight.returncode == 0, straight.stderr[-3000:]
    records = ledger(tmp_path / "straight")
    assert [r["round"] for r in records] == [0, 1, 2]  # one ledger line per round: only rank 0 writes
    assert json.loads((tmp_path / "straight" / "summary.json").read_text())["test_metrics"]
    for r in records[1:]:
        ranks = [json.loads((tmp_path / "record" / f"round_{r['round']}_rank_{k}.json").read_text()) for k in (0, 1)]
        assert ranks[0]["picked"] == ranks[1]["picked"] == r["selected_ids"]  # every rank selected the same ids
        assert all(0 < part["scored"] < part["pool"] for part in ranks)  # the pool really was split
    for r in records:
        expected = single_process_validation(tmp_path / "straight", r["best_checkpoint"])
        assert r["metrics"] == pytest.approx(expected, rel=1e-5, abs=1e-6)

    killed = alseg_train(tmp_path / "killed", tmp_path / "record-killed", ALSEG_TEST_KILL_ROUND="2")
    assert killed.returncode == -9
    assert [r["round"] for r in ledger(tmp_path / "killed")] == [0, 1]
    resumed = alseg_train(tmp_path / "killed", tmp_path / "record-killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = ledger(tmp_path / "killed")
    assert [r["selected_ids"] for r in again] == [r["selected_ids"] for r in records]
    assert [r["metrics"] for r in again] == [pytest.approx(r["metrics"], rel=1e-5) for r in records]


@pytest.mark.slow
def test_ranks_that_select_different_ids_are_a_plugin_error(tmp_path):
    result = alseg_train(
        tmp_path / "run", tmp_path / "record", "--active_learning.iterations", "1", ALSEG_TEST_RANK_DEPENDENT="1"
    )
    assert result.returncode == 2
    assert "Strategy MaxProbabilityStrategy selected other ids on rank(s) [1] than on rank 0" in result.stderr
    assert [r["round"] for r in ledger(tmp_path / "run")] == [0]  # the round was not recorded
