"""A benchmark process killed (SIGKILL) in the middle of a cell continues where it stopped when run again."""

import json
import os
import subprocess
import sys

import yaml

KILLER = '''
import os, signal
from pathlib import Path
from alseg.core.testing import SeededRandomStrategy

class KillingStrategy(SeededRandomStrategy):
    """The seeded random strategy, but the first query after the marker file appears kills the whole process."""

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        marker = Path(os.environ["KILL_MARKER"])
        if marker.exists():
            marker.unlink()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)
'''
BASE = {
    "model": {"class_path": "alseg.core.testing.TinySegmentationModel", "init_args": {"hidden_channels": 4}},
    "data": {
        "class_path": "alseg.core.testing.InMemoryDataModule",
        "init_args": {"num_cases": 4, "slices_per_case": 4, "image_size": 8, "initial_training_set_size": 2},
    },
    "active_learning": {"iterations": 2, "items_to_label": 2, "epochs": 1, "logger": False},
    "trainer": {"accelerator": "cpu"},
}
GRID = {
    "strategies": [
        {"name": "random", "class_path": "alseg.core.testing.SeededRandomStrategy"},
        {"name": "killer", "class_path": "killer.KillingStrategy"},
    ],
    "seeds": 1,
}


def bench(tmp_path, env):
    command = "import sys; from alseg.bench.cli import main; main()"
    args = ["bench", "--config", "base.yaml", "--grid", "grid.yaml", "--metric", "val/mean_dice", "--no-report"]
    return subprocess.run([sys.executable, "-c", command, *args], cwd=tmp_path, env=env, capture_output=True, text=True)


def rounds(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_killed_benchmark_resumes_with_the_selections_of_an_uninterrupted_run(tmp_path):
    (tmp_path / "killer.py").write_text(KILLER)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(GRID))
    (tmp_path / "marker").touch()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "KILL_MARKER": str(tmp_path / "marker")}

    killed = bench(tmp_path, env)
    assert killed.returncode == -9, killed.stderr
    finished = tmp_path / "bench" / "random" / "seed_0"
    interrupted = tmp_path / "bench" / "killer" / "seed_0"
    assert (finished / "summary.json").exists()
    assert not (interrupted / "summary.json").exists() and len(rounds(interrupted / "rounds.jsonl")) == 1
    before = (finished / "rounds.jsonl").read_bytes()

    resumed = bench(tmp_path, env)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 finished already" in resumed.stdout
    assert (finished / "rounds.jsonl").read_bytes() == before  # the finished cell was not run again
    # The killer behaves like the random strategy when it does not kill: same seed, same selections.
    assert [r["selected_ids"] for r in rounds(interrupted / "rounds.jsonl")] == [
        r["selected_ids"] for r in rounds(finished / "rounds.jsonl")
    ]
