"""Progress output of alseg-train: live bars on a terminal, one line per round without one, nothing with --quiet.

The end-to-end tests run ``alseg-train`` as a user does, under a pseudo-terminal and with pipes (three runs at once);
the others check the pieces in this process: the mode, the pool-scoring bar of every stream and rank, the round bar.
"""

import io
import json
import logging
import os
import re
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from alseg.core import cli, distributed, progress
from alseg.core.inference import map_pool, stream_embeddings, stream_images, stream_probabilities
from alseg.core.query_view import QueryView
from alseg.core.testing import InMemoryDataModule, SeededRandomStrategy, TinySegmentationModel

HERE = Path(__file__).parent
DOUBLES = [
    *("--model", "alseg.core.testing.TinySegmentationModel", "--strategy", "alseg.core.testing.SeededRandomStrategy"),
    *("--data", "alseg.core.testing.InMemoryDataModule", "--trainer.accelerator", "cpu"),
    *("--active_learning.items_to_label", "2", "--active_learning.iterations", "1", "--active_learning.epochs", "2"),
    *("--active_learning.logger", "false"),
]
#: A model and a strategy that scores the pool through alseg.core.inference (importable with HERE on the path).
ARGS = [*DOUBLES, "--model", "eager_plugin.EagerModel", "--strategy", "eager_plugin.MaxProbabilityStrategy"]
ROUND_LINE = r"round \d: \d+ labelled \(\+\d+\), \d+ in the pool; val/loss [\d.]+, val/mean_dice [\d.e-]+; [\d.]+ s"
BAR_MARKS = ("\r", "█", "ETA", "it/s", "item/s", "\x1b")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, run_in_terminal):
    """alseg-train on a terminal, into a pipe, and with --quiet on a terminal: {name: (status, output(s), run dir)}."""
    root = tmp_path_factory.mktemp("progress")
    env = {**os.environ, "PYTHONPATH": str(HERE)}

    def command(name, *extra):
        return [sys.executable, "-m", "alseg.core.cli", *ARGS, "--output_dir", str(root / name), *extra]

    def piped():
        done = subprocess.run(command("pipe"), env=env, capture_output=True, text=True, timeout=600)
        return done.returncode, (done.stdout, done.stderr)

    with ThreadPoolExecutor(3) as pool:
        tty = pool.submit(run_in_terminal, command("tty"), env=env)
        pipe = pool.submit(piped)
        quiet = pool.submit(run_in_terminal, command("quiet", "--quiet"), env=env)
        return {name: (*job.result(), root / name) for name, job in (("tty", tty), ("pipe", pipe), ("quiet", quiet))}


def ledger(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]


def test_on_a_terminal_training_shows_round_epoch_batch_and_eta_and_pool_scoring_items_per_second(runs):
    status, output, run = runs["tty"]
    assert status == 0, output[-2000:]
    pool = ledger(run)[0]["num_unlabeled"]
    for round_index in (0, 1):  # the batch bar of every epoch, with the round, the epoch, the batch count and ETA
        assert re.search(
            rf"round {round_index} · epoch 1/2: +\d+%\|[^|]*\| \d+/\d+ \[\d\d:\d\d, ETA (\d\d:\d\d|\?)", output
        )
        finished = (
            rf"round {round_index} · epoch 2/2, round ETA \d\d:\d\d: 100%\|█+\| (\d+)/\1 \[\d\d:\d\d, ETA 00:00, "
        )
        assert re.search(finished + r" *[\d.]+it/s\]", output), output[-3000:]
    # the pool of round 1 scored on one bar: every item of the pool, in items per second
    assert re.search(rf"pool scoring: 100%\|█+\| {pool}/{pool} \[\d\d:\d\d, ETA 00:00, +[\d.]+item/s\]", output)
    lines = re.split(r"[\r\n]+", output)
    assert len([line for line in lines if re.fullmatch(ROUND_LINE, line)]) == 2  # the round lines stay
    assert f"Run directory: {run}" in lines


def test_into_a_pipe_only_the_round_lines_and_the_run_directory_are_printed(runs):
    status, (out, err), run = runs["pipe"]
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 4 and all(re.fullmatch(ROUND_LINE, line) for line in lines[:2]), out
    assert lines[0].startswith("round 0: ") and lines[1].startswith("round 1: ")
    assert lines[2:] == [f"Run directory: {run}", f"Summary: {run / 'summary.json'}"]
    assert not [mark for mark in BAR_MARKS if mark in out + err]


def test_quiet_prints_nothing_even_on_a_terminal_and_is_no_part_of_the_configuration(runs):
    status, output, run = runs["quiet"]
    assert (status, output) == (0, "")
    assert len(ledger(run)) == 2 and (run / "summary.json").exists()
    assert "quiet" not in yaml.safe_load((run / "config.yaml").read_text())  # without --quiet, the same run


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--active_learning.items_to_label", "0"], "The 'items_to_label' option"),
        (["--active_learning.itemz", "3"], "--active_learning.itemz"),
    ],
)
def test_quiet_still_shows_errors_with_exit_status_2(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*DOUBLES, "--output_dir", str(tmp_path / "run"), "--quiet", *extra])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err.startswith("alseg-train: error:") and message in err.splitlines()[0] and "Traceback" not in err


def test_quiet_shows_an_error_of_the_run_itself(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit):
        cli.main([*DOUBLES, "--output_dir", str(tmp_path / "run"), "--quiet"])
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("alseg-train: error:") and "holds no alseg run" in err


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_mode_is_decided_from_quiet_and_the_stream():
    assert progress.decide(quiet=True, stream=Terminal()) == "quiet"
    assert progress.decide(stream=Terminal()) == "tty"
    assert progress.decide(stream=io.StringIO()) == "plain"
    assert progress.decide(stream=object()) == "plain"  # a stream without isatty is no terminal
    assert progress.mode() == "plain"  # pytest captures standard output
    with progress.using("tty"):
        assert progress.mode() == "tty" and progress.shows_bars()
        with progress.using("quiet"):
            assert progress.mode() == "quiet" and not progress.shows_bars()
        assert progress.mode() == "tty"
    assert progress.mode() == "plain"


def test_quiet_silences_warnings_lightning_and_wandb_and_restores_them(monkeypatch, capsys):
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    lightning = logging.getLogger("lightning.pytorch")
    before = lightning.level
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with progress.using("quiet"):
            warnings.warn("hidden", UserWarning, stacklevel=1)
            assert lightning.level == logging.ERROR and os.environ["WANDB_SILENT"] == "true"
            progress.say("round 0: hidden")
        warnings.warn("shown", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["shown"]
    assert lightning.level == before and "WANDB_SILENT" not in os.environ
    assert capsys.readouterr().out == ""
    progress.say("round 0: shown")
    assert capsys.readouterr().out == "round 0: shown\n"


def pool():
    model, data = TinySegmentationModel(), InMemoryDataModule(pool_batch_size=3)
    data.setup()
    model.bind_data(data)
    return model, QueryView(data)


def item_sums(batch, tensor):
    """One sum per item of a batch's probabilities, embeddings or images [B, ...], or MC samples [K, B, C, H, W]."""
    return (tensor.transpose(0, 1) if tensor.dim() == 5 else tensor).flatten(1).sum(1).tolist()


@pytest.mark.parametrize(
    ("stream", "description"),
    [
        (lambda model, view: stream_probabilities(model, view), "pool scoring"),
        (lambda model, view: stream_probabilities(model, view, mc_samples=2), "pool scoring (2 MC samples)"),
        (lambda model, view: stream_embeddings(model, view), "embeddings"),
        (lambda model, view: stream_images(view.unlabeled_dataloader()), "images"),
    ],
)
def test_every_stream_counts_the_pool_items_on_a_terminal_only_and_changes_no_value(capsys, stream, description):
    model, view = pool()
    size = len(view.unlabeled_ids())
    values = {}
    for mode in ("tty", "plain", "quiet"):
        with progress.using(mode):
            values[mode] = map_pool(stream(model, view), item_sums)
        out = capsys.readouterr().out
        if mode == "tty":
            assert re.search(rf"{re.escape(description)}: 100%\|█+\| {size}/{size} \[.*, ETA 00:00, +[\d.]+item/s", out)
        else:
            assert out == ""
    assert values["tty"] == values["plain"] == values["quiet"] and len(values["tty"]) == size


def test_under_ddp_rank_0_counts_its_share_and_the_other_ranks_show_nothing(monkeypatch, capsys):
    loader = QueryView(InMemoryDataModule(pool_batch_size=3)).unlabeled_dataloader()  # 20 items: 7 batches
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    outputs = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        with progress.using("tty"):
            items = sum(len(batch["id"]) for batch, _ in stream_images(loader))
        outputs.append((items, capsys.readouterr().out))
    (items, out), (_, other) = outputs
    assert items == 11 and re.search(r"images \(rank 0's share of 2 ranks\): 100%\|█+\| 11/11 ", out)
    assert other == ""


def test_the_round_bar_names_the_round_and_epoch_and_estimates_the_round_from_the_epochs_so_far(monkeypatch):
    bar = progress.RoundProgressBar("round 3")
    clock = iter([100.0, 130.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar._fit_start = next(clock)
    assert bar.describe(0, 10) == "round 3 · epoch 1/10"  # no estimate before an epoch ended
    assert bar.describe(3, 10) == "round 3 · epoch 4/10, round ETA 01:10"  # 30 s for 3 epochs, 7 to go
    assert bar.describe(3, -1) == "round 3 · epoch 4"
    assert bar.validation_description == "round 3 · validation" and bar.test_description == "round 3 · test"


@pytest.mark.parametrize(
    ("mode", "asked", "bars"),
    [("tty", None, True), ("plain", None, False), ("plain", True, True), ("tty", False, False), ("quiet", True, False)],
)
def test_the_trainer_bar_follows_the_mode_unless_asked_and_quiet_always_wins(make_pipeline, capsys, mode, asked, bars):
    options = {"accelerator": "cpu"} | ({} if asked is None else {"enable_progress_bar": asked})
    with progress.using(mode):
        make_pipeline(iterations=0, trainer_options=options).run()
    out = capsys.readouterr().out
    assert ("round 0 · epoch 1/1" in out) == bars
    assert ("round 0: " in out) == (mode != "quiet")
    if not bars:
        assert not [mark for mark in BAR_MARKS if mark in out]


def test_a_bar_counts_what_it_is_given_and_is_a_no_op_when_off(capsys):
    with progress.using("plain"), progress.bar(4, "nothing") as off:
        off.update(4)
    assert capsys.readouterr().out == ""
    with progress.using("tty"), progress.bar(5, "cells", unit="cell", initial=2, rate=False) as on:
        on.update(3)
    out = capsys.readouterr().out
    assert re.search(r"cells: 100%\|█+\| 5/5 \[\d\d:\d\d, ETA 00:00\]", out) and "cell/s" not in out


def test_a_quiet_run_drops_lightning_logs_and_warnings_a_loud_one_keeps_them(tmp_path, monkeypatch, caplog, recwarn):
    def noisy(self, *args, **kwargs):
        logging.getLogger("lightning.pytorch.noise").warning("a Lightning hint")
        warnings.warn("a warning", UserWarning, stacklevel=1)
        return original(self, *args, **kwargs)

    original = SeededRandomStrategy.select_items_to_label
    monkeypatch.setattr(SeededRandomStrategy, "select_items_to_label", noisy)
    heard = {}
    for name, extra in (("quiet", ["--quiet"]), ("loud", [])):
        caplog.clear()
        recwarn.clear()
        cli.main([*DOUBLES, "--active_learning.epochs", "1", "--output_dir", str(tmp_path / name), *extra])
        heard[name] = (caplog.messages.count("a Lightning hint"), [str(w.message) for w in recwarn].count("a warning"))
    assert heard == {"quiet": (0, 0), "loud": (1, 1)}


@pytest.mark.slow
def test_under_ddp_on_a_terminal_only_rank_0_draws_and_quiet_ranks_print_nothing(tmp_path, run_in_terminal):
    env = {**os.environ, "PYTHONPATH": str(HERE), "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--data.pool_batch_size", "3"]

    def command(name, *extra):
        return [sys.executable, "-m", "alseg.core.cli", *ARGS, *ddp, "--output_dir", str(tmp_path / name), *extra]

    with ThreadPoolExecutor(2) as pool:
        loud = pool.submit(run_in_terminal, command("loud"), env=env, start_new_session=True)
        quiet = pool.submit(run_in_terminal, command("quiet", "--quiet"), env=env, start_new_session=True)
        (status, output), quiet_result = loud.result(), quiet.result()
    assert status == 0, output[-3000:]
    assert quiet_result == (0, "")  # no rank prints, not even Lightning's process-group banners
    lines = re.split(r"[\r\n]+", output)
    assert len([line for line in lines if re.fullmatch(ROUND_LINE, line)]) == 2  # the writer's round lines only
    assert not [line for line in lines if "Initializing distributed" in line]
    # one bar per pass on rank 0 (which validates and scores its share); rank 1 draws none
    assert len(re.findall(r"pool scoring \(rank 0's share of 2 ranks\):   0%", output)) == 1
    assert len(re.findall(r"round 1 · sanity check DataLoader 0: 100%", output)) == 1
