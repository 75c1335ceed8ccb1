"""alseg-report on hand-written ledgers: statistics, files, figure and errors."""

import csv
import json

import matplotlib
import numpy as np
import pytest

from alseg.bench import report
from alseg.bench.ledgers import load_runs
from alseg.bench.plots import plot_learning_curves
from alseg.bench.summary import summarise

matplotlib.use("Agg")


def write_run(bench, name, dice, foreground=None, labelled=(4, 6, 8), pool=20):
    run = bench / name
    run.mkdir(parents=True)
    lines = []
    for r, value in enumerate(dice):
        record = {
            "round": r,
            "seed": 1000 + r,
            "selected_ids": [f"{name}-{r}-{i}" for i in range(2 if r else 0)],
            "selected_with_foreground": (foreground[r] if foreground else None) if r else 0,
            "num_labeled": labelled[r] if r < len(labelled) else labelled[-1] + 2 * (r - len(labelled) + 1),
            "num_unlabeled": 0,
            "num_pseudo_labeled": 0,
            "epochs": 1,
            "metrics": {"val/loss": 1 - value, "val/mean_dice": value},
            "best_checkpoint": f"checkpoints/round_{r:03d}/best.ckpt",
            "timing_s": {"query": float(r), "train": 2.0, "validate": 0.5},
            "wall_time_s": 3.0 + r,
        }
        record["num_unlabeled"] = pool - record["num_labeled"]
        lines.append(json.dumps(record))
    (run / "rounds.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture
def bench(tmp_path):
    """random: AUBC 0.4 and 0.2; entropy: AUBC 0.55 and 0.325 (seed 1 has an extra round, cut in the report)."""
    bench = tmp_path / "bench"
    write_run(bench, "random/seed_0", [0.2, 0.4, 0.6])
    write_run(bench, "random/seed_1", [0.2, 0.2, 0.2])
    write_run(bench, "entropy/seed_0", [0.2, 0.6, 0.8], foreground=[None, 2, 1])
    write_run(bench, "entropy/seed_1", [0.2, 0.3, 0.5, 0.9], foreground=[None, 1, 0, 2])
    return bench


def test_statistics_match_hand_computed_values(bench):
    (group,) = summarise(load_runs(bench), "val/mean_dice", "random")
    assert (group.override, group.rounds, group.pool_size) == (None, 3, 20)
    assert group.truncated == ("entropy/seed_1",)
    random, entropy = group.arms  # the reference comes first
    assert (random.strategy, entropy.strategy) == ("random", "entropy")
    np.testing.assert_allclose(random.aubc, [0.4, 0.2])
    np.testing.assert_allclose(entropy.aubc, [0.55, 0.325])
    np.testing.assert_allclose(entropy.final, [0.8, 0.5])
    assert entropy.aubc_vs_reference.mean == pytest.approx(0.1375)
    assert entropy.aubc_vs_reference.std == pytest.approx(np.std([0.15, 0.125], ddof=1))
    assert entropy.final_vs_reference.mean == pytest.approx(0.25)
    assert (entropy.aubc_vs_reference.wins, entropy.aubc_vs_reference.p_value) == (2, None)
    assert random.aubc_vs_reference is None
    np.testing.assert_allclose(entropy.foreground_share, [3 / 4, 1 / 4])
    assert random.foreground_share is None  # the data module could not tell
    # query time over query rounds only: (1 + 2) / 2; wall time over all rounds: (3 + 4 + 5) / 3
    assert entropy.seconds_per_round == pytest.approx({"query": 1.5, "train": 2.0, "validate": 0.5, "wall": 4.0})
    np.testing.assert_allclose(entropy.curve.mean, [0.2, 0.45, 0.65])
    np.testing.assert_allclose(entropy.curve.num_labeled, [4, 6, 8])


def test_six_seeds_get_a_wilcoxon_test(tmp_path):
    for seed in range(6):
        write_run(tmp_path, f"random/seed_{seed}", [0.2, 0.2, 0.2])
        write_run(tmp_path, f"better/seed_{seed}", [0.2, 0.3 + seed / 100, 0.4])
    (group,) = summarise(load_runs(tmp_path), "val/mean_dice", "random")
    assert group.arms[1].aubc_vs_reference.p_value == pytest.approx(2 / 64)
    report.write_report(tmp_path)
    assert "| 0.0312 |" in (tmp_path / "report.md").read_text()


def test_report_files(bench, capsys):
    (bench / "status.json").write_text(json.dumps({"bald/seed_0": {"error": "ConfigError: broken", "seconds": 1}}))
    report.main([str(bench)])
    assert "report.md" in capsys.readouterr().out
    markdown = (bench / "report.md").read_text()
    assert (
        "| entropy | 2 | 0.6500 ± 0.2121 | 0.4375 ± 0.1591 | +0.2500 ± 0.0707 | +0.1375 ± 0.0177 | 2/0/0 | n/a |"
        in (markdown)
    )
    assert "too few for a test" in markdown and "Runs cut to these rounds: entropy/seed_1" in markdown
    assert "bald/seed_0: ConfigError: broken" in markdown
    assert "<td>0.5000 ± 0.3536</td>" in (bench / "report.html").read_text()  # foreground share of entropy
    assert (bench / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    with open(bench / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 + 3 + 3 + 4
    assert {"strategy", "seed", "round", "val/mean_dice", "fraction_labeled", "train_s"} <= set(rows[0])
    assert rows[0]["strategy"] == "entropy" and float(rows[1]["fraction_labeled"]) == pytest.approx(6 / 20)


def test_one_panel_per_override_and_one_line_per_strategy(tmp_path):
    for seed in range(2):
        for strategy in ("random", "entropy", "bald"):
            write_run(tmp_path, f"{strategy}/small/seed_{seed}", [0.1, 0.2, 0.3 + seed / 10])
        write_run(tmp_path, f"random/large/seed_{seed}", [0.1, 0.5])
    groups = summarise(load_runs(tmp_path), "val/mean_dice", "random")
    figure = plot_learning_curves(groups, "val/mean_dice", "random")
    large, small = figure.axes[:2]  # groups are sorted by override; secondary axes come after
    assert [len(large.get_lines()), len(small.get_lines())] == [1, 3]
    assert len(small.collections) == 3  # one ±std band per strategy
    assert small.get_lines()[0].get_linestyle() == "--"  # the reference
    assert small.get_title() == "override small"


def test_missing_metric_lists_the_available_ones(bench, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(bench), "--metric", "val/hd95"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'val/hd95'" in err and "Available: val/loss, val/mean_dice" in err and "Traceback" not in err


def test_folder_without_runs_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        report.main([str(tmp_path)])
    assert "holds no run with a completed round" in capsys.readouterr().err


def test_without_the_reference_strategy_there_are_no_differences(bench):
    report.write_report(bench, reference="bald")
    markdown = (bench / "report.md").read_text()
    assert "No strategy 'bald' here: no paired differences." in markdown
    assert "| entropy | 2 | 0.6500 ± 0.2121 | 0.4375 ± 0.1591 | - | - | - | - |" in markdown
