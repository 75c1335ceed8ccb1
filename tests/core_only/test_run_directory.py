"""The run directory under misuse: one writer, file modes, a damaged ledger, a failed first start, changed data."""

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alseg.core import ConfigError
from alseg.core.run_directory import RunDirectory
from alseg.core.testing import doubles

TRAIN = [
    "--model",
    "alseg.core.testing.TinySegmentationModel",
    "--data",
    "alseg.core.testing.InMemoryDataModule",
    "--strategy",
    "alseg.core.testing.SeededRandomStrategy",
    "--trainer.accelerator",
    "cpu",
    "--active_learning.items_to_label",
    "2",
    "--active_learning.iterations",
    "1",
    "--active_learning.epochs",
    "1",
    "--active_learning.logger",
    "false",
]
HOLDER = """
import sys
from alseg.core.run_directory import RunDirectory
with RunDirectory(sys.argv[1]).lock():
    print("locked", flush=True)
    sys.stdin.read()
"""


def alseg_train(output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "alseg.core.cli", *TRAIN, "--output_dir", str(output_dir), *extra]
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_a_second_writer_is_refused_and_a_killed_writer_frees_the_directory(tmp_path):
    run = tmp_path / "run"
    first = alseg_train(run)
    assert first.returncode == 0, first.stderr
    ledger = (run / "rounds.jsonl").read_bytes()
    # Another process writes the directory (as a 'uv run' child left running by a kill -9 would).
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        second = alseg_train(run, "--active_learning.iterations", "2")
        assert second.returncode == 2
        assert f"output_dir {run} is being written by pid {holder.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert (run / "rounds.jsonl").read_bytes() == ledger  # nothing written by the refused writer
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    third = alseg_train(run, "--active_learning.iterations", "2")  # the kernel released the dead holder's lock
    assert third.returncode == 0, third.stderr
    assert len((run / "rounds.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_run_files_respect_the_umask(make_pipeline, tmp_path, umask):
    previous = os.umask(umask)
    try:
        make_pipeline(iterations=1, logger=False).run()
    finally:
        os.umask(previous)
    for name in ("config.yaml", "run.json", "rounds.jsonl", "summary.json"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_a_junk_ledger_line_is_one_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert alseg_train(run).returncode == 0
    lines = (run / "rounds.jsonl").read_text().splitlines()
    (run / "rounds.jsonl").write_text(f"{lines[0]}\nnot json at all\n")
    with pytest.raises(ConfigError, match=r"rounds.jsonl: line 2 is not a JSON round record"):
        RunDirectory(run).read_rounds()
    resumed = alseg_train(run)
    assert resumed.returncode == 2 and "line 2 is not a JSON round record" in resumed.stderr
    assert "Traceback" not in resumed.stderr


def test_a_failed_first_start_does_not_bind_the_directory(make_pipeline, tmp_path):
    with pytest.raises(ConfigError, match="model_selection_criterion 'nope'"):
        make_pipeline(model_selection_criterion="nope").run()
    assert (tmp_path / "run" / "config.yaml").exists() and not RunDirectory(tmp_path / "run").read_rounds()
    make_pipeline(model_selection_criterion="loss").run()  # the corrected command runs in the same directory
    assert len(RunDirectory(tmp_path / "run").read_rounds()) == 3


def test_a_resume_on_changed_data_is_refused_and_damages_nothing(make_pipeline, tmp_path, monkeypatch):
    make_pipeline(iterations=1).run()
    run = tmp_path / "run"
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "run.json", "rounds.jsonl")}
    assert json.loads(before["run.json"])["data_fingerprint"]
    original = doubles._make_cases

    def relabelled(*args):  # same configuration, other labels: a label file swapped for another valid one
        images, labels = original(*args)
        return images, labels.flip(-1)

    monkeypatch.setattr(doubles, "_make_cases", relabelled)
    with pytest.raises(ConfigError, match="holds a run made on other data"):
        make_pipeline(iterations=2).run()
    assert {name: (run / name).read_bytes() for name in before} == before


def test_an_unwritable_output_dir_is_one_message_and_exit_2(tmp_path, capsys, monkeypatch):
    from alseg.core import cli

    def read_only(self, *args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TRAIN, "--output_dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"Cannot write output_dir {tmp_path / 'run'}: Read-only file system" in err and "Traceback" not in err


def test_a_full_disk_is_one_message_and_exit_2(tmp_path, capsys, monkeypatch):
    from alseg.core import cli

    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.ledger_path))

    monkeypatch.setattr(RunDirectory, "append_round", full)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TRAIN, "--output_dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'run' / 'rounds.jsonl'}: No space left on device" in err
    assert "Traceback" not in err
