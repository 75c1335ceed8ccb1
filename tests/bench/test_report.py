"""alseg-report on hand-written ledgers: statistics, files, figure and errors."""

import csv
import json
import math

import matplotlib
import numpy as np
import pytest

from alseg.bench import report
from alseg.bench.curves import aubc
from alseg.bench.ledgers import load_runs
from alseg.bench.plots import plot_learning_curves, plot_penalty_matrices
from alseg.bench.summary import summarise
from alseg.core.round_record import RoundRecord

matplotlib.use("Agg")


def write_run(bench, name, dice, foreground=None, labelled=(4, 6, 8), pool=20, pseudo=None):
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
            "pseudo_label_dice": pseudo[r] if pseudo else {},
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
    # paired t-test of the AUBC differences 0.15, 0.125: t = 0.1375 / (0.0177 / √2) = 11 on 1 degree of freedom
    assert entropy.aubc_vs_reference.wins == 2
    assert entropy.aubc_vs_reference.p_value == pytest.approx(1 - 2 / math.pi * math.atan(11))
    assert random.aubc_vs_reference is None
    np.testing.assert_allclose(entropy.foreground_share, [3 / 4, 1 / 4])
    assert random.foreground_share is None  # the data module could not tell
    # query time over query rounds only: (1 + 2) / 2; wall time over all rounds: (3 + 4 + 5) / 3
    expected = {"query": 1.5, "train": 2.0, "validate": 0.5, "test": math.nan, "wall": 4.0}  # no round tested
    assert entropy.seconds_per_round == pytest.approx(expected, nan_ok=True)
    np.testing.assert_allclose(entropy.curve.mean, [0.2, 0.45, 0.65])
    np.testing.assert_allclose(entropy.curve.num_labeled, [4, 6, 8])


def test_a_better_strategy_is_found_better(tmp_path):
    for seed in range(6):
        write_run(tmp_path, f"random/seed_{seed}", [0.2, 0.2, 0.2])
        write_run(tmp_path, f"better/seed_{seed}", [0.2, 0.3 + seed / 100, 0.4])
    (group,) = summarise(load_runs(tmp_path), "val/mean_dice", "random")
    # AUBC differences 0.1 + 0.005 · seed: mean 0.1125, sd 0.00935, t = 29.5 on 5 degrees of freedom
    comparison = group.arms[1].aubc_vs_reference
    assert comparison.p_value < 1e-5 and comparison.direction == 1
    report.write_report(tmp_path)
    assert "| better | better (p 8.45e-07) | 1.00 | 0.00 |" in (tmp_path / "report.md").read_text()


def test_a_lower_is_better_metric_turns_every_comparison_round(tmp_path):
    """On val/loss (1 - Dice here) the strategy with the lower loss wins, ranks first and is found better."""
    for seed in range(6):
        write_run(tmp_path, f"random/seed_{seed}", [0.2, 0.2, 0.2])
        write_run(tmp_path, f"better/seed_{seed}", [0.2, 0.3 + seed / 100, 0.4])
    for metric in ("val/mean_dice", "val/loss"):
        (group,) = summarise(load_runs(tmp_path), metric, "random")
        _, better = group.arms
        comparison = better.aubc_vs_reference
        assert (comparison.direction, comparison.wins, comparison.losses) == (1, 6, 0), metric
        assert comparison.mean == pytest.approx(0.1125 if metric == "val/mean_dice" else -0.1125)
        assert (group.penalty.wins[1, 0], group.penalty.wins[0, 1]) == (1.0, 0.0), metric
        assert list(group.ranking.mean) == [2.0, 1.0], metric
    report.write_report(tmp_path, "val/loss")
    markdown = (tmp_path / "report.md").read_text()
    assert "Metric: val/loss (lower is better)" in markdown and "| better | better (p 8.45e-07)" in markdown


def test_rounds_that_tested_report_their_test_time(tmp_path):
    write_run(tmp_path, "random/seed_0", [0.2, 0.3])
    ledger = tmp_path / "random/seed_0/rounds.jsonl"
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    for index, record in enumerate(records):
        record["timing_s"]["test"] = 1.0 + index
    ledger.write_text("".join(json.dumps(record) + "\n" for record in records))
    (group,) = summarise(load_runs(tmp_path), "val/mean_dice", "random")
    assert group.arms[0].seconds_per_round["test"] == pytest.approx(1.5)
    report.write_report(tmp_path)
    assert "test s/round" in (tmp_path / "report.md").read_text()


def test_report_files(bench, capsys):
    (bench / "status.json").write_text(json.dumps({"bald/seed_0": {"error": "ConfigError: broken", "seconds": 1}}))
    report.main([str(bench)])
    assert "report.md" in capsys.readouterr().out
    markdown = (bench / "report.md").read_text()
    assert (
        "| entropy | 2 | 0.6500 ± 0.2121 | 0.4375 ± 0.1591 | +0.2500 ± 0.0707 | +0.1375 ± 0.0177 | 2/0/0 | 0.0577 |"
        in (markdown)
    )
    assert "Runs cut to these rounds: entropy/seed_1" in markdown
    assert "validate s/round" in markdown and "test s/round" not in markdown  # no round tested its checkpoint
    assert "bald/seed_0: ConfigError: broken" in markdown
    assert "<td>0.5000 ± 0.3536</td>" in (bench / "report.html").read_text()  # foreground share of entropy
    for figure in ("learning_curves.png", "penalty_matrix.png"):
        assert (bench / figure).read_bytes()[:4] == b"\x89PNG"
    with open(bench / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 + 3 + 3 + 4
    assert {
        "strategy",
        "seed",
        "round",
        "val/mean_dice",
        "fraction_labeled",
        "train_s",
        "ground_truth_revealed",
    } <= set(rows[0])
    assert not any(column.startswith("cost_") for column in rows[0])  # these ledgers recorded no annotation cost
    assert rows[0]["strategy"] == "entropy" and float(rows[1]["fraction_labeled"]) == pytest.approx(6 / 20)


def test_one_panel_per_override_and_one_line_per_strategy(tmp_path):
    for seed in range(2):
        for strategy in ("random", "entropy", "bald"):
            write_run(tmp_path, f"{strategy}/small/seed_{seed}", [0.1, 0.2, 0.3 + seed / 10])
        write_run(tmp_path, f"random/large/seed_{seed}", [0.1, 0.5])
    groups = summarise(load_runs(tmp_path), "val/mean_dice", "random")
    figure = plot_learning_curves(groups, "val/mean_dice", "random")
    large, small = figure.axes  # groups are sorted by override, one row each
    assert [len(large.get_lines()), len(small.get_lines())] == [1, 3]
    assert len(small.collections) == 3  # one ±std band per strategy
    assert small.get_lines()[0].get_linestyle() == "--"  # the reference
    assert small.get_title() == "override small"


def test_the_report_shows_the_mean_pseudo_label_dice_of_every_round(bench):
    write_run(bench, "interpolation/seed_0", [0.2, 0.5, 0.7], pseudo=[{}, {"a:1": 0.8, "a:2": 1.0}, {}])
    write_run(bench, "interpolation/seed_1", [0.2, 0.4, 0.6], pseudo=[{}, {"b:1": 0.6}, {}])
    report.main([str(bench)])
    markdown = (bench / "report.md").read_text()
    assert "### Pseudo-label quality" in markdown
    assert "| interpolation | 0.800 | - |" in markdown  # (0.8 + 1.0 + 0.6) / 3 over both seeds; none in round 2
    assert "| entropy |" not in markdown.split("### Pseudo-label quality")[1].split("###")[0]
    with open(bench / "results.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["strategy"] == "interpolation" and row["round"] == "1"]
    assert sorted(float(row["pseudo_label_dice"]) for row in rows) == [0.6, 0.9]


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
    assert "No strategy 'bald' here: no paired differences with it." in markdown
    assert "| entropy | 2 | 0.6500 ± 0.2121 | 0.4375 ± 0.1591 | - | - | - | - |" in markdown


def write_ledger(bench, name, dice, foreground=None, revealed=0, test=True):
    """Writes a current ledger through RoundRecord: 4 + 2r labelled 2D slices of 16 x 16 voxels after round r.

    ``dice`` are the test Dice scores per round (validation: 0.05 higher); ``foreground`` the cumulative foreground
    voxels per round, or None for a ledger without annotation cost.
    """
    run = bench / name
    run.mkdir(parents=True)
    lines = []
    for r, value in enumerate(dice):
        n = 4 + 2 * r
        cost = (
            {}
            if foreground is None
            else {"items": n, "slices": n, "voxels": 256 * n, "foreground_voxels": foreground[r]}
        )
        record = RoundRecord(
            round=r,
            seed=100 + r,
            selected_ids=[f"case_{r}:{i}" for i in range(2 if r else 0)],
            num_labeled=n,
            num_unlabeled=40 - n,
            epochs=1,
            metrics={"val/mean_dice": value + 0.05, **({"test/mean_dice": value} if test else {})},
            best_checkpoint=f"checkpoints/round_{r:03d}/best.ckpt",
            annotation_cost=cost,
            ground_truth_revealed=revealed if r else 0,
            timing_s={"query": 0.1, "train": 1.0, "validate": 0.2, "test": 0.2},
            wall_time_s=1.5,
        )
        lines.append(json.dumps(record.to_json()))
    (run / "rounds.jsonl").write_text("\n".join(lines) + "\n")


SEEDS = 4


def write_trusted_bench(bench, override=""):
    """random and fg_random alike; entropy 0.1 and oracle_fg 0.2 better (plus noise) after round 0, on 4 seeds."""
    base = 0.2 + 0.1 * np.arange(4) + np.random.default_rng(0).normal(0, 0.01, size=(SEEDS, 4))
    noise = np.random.default_rng(1).normal(0, 0.005, size=(SEEDS, 4))
    gain = {"random": 0.0, "fg_random": 0.0, "entropy": 0.1, "oracle_fg": 0.2}
    for strategy, extra in gain.items():
        for seed in range(SEEDS):
            dice = base[seed] + (extra + noise[seed] * (extra > 0)) * (np.arange(4) > 0)
            foreground = np.cumsum([300, 100 + 50 * seed, 200 + 100 * extra * 10, 150])
            path = f"{strategy}/{override}/seed_{seed}" if override else f"{strategy}/seed_{seed}"
            write_ledger(
                bench, path, dice.tolist(), foreground.astype(int).tolist(), revealed=5 * (strategy == "oracle_fg")
            )


def test_report_of_a_benchmark_with_test_metrics_and_annotation_cost(tmp_path):
    write_trusted_bench(tmp_path)
    paths = report.write_report(tmp_path)
    assert [path.name for path in paths] == list(report.FILES)
    markdown = (tmp_path / "report.md").read_text()
    assert "(test/mean_dice) is on the held-out test split, never used for model selection." in markdown
    assert "Warning" not in markdown and "| strategy | seeds | final test/mean_dice | AUBC (items) |" in markdown
    assert "Learning curves against: items, foreground_voxels." in markdown  # slices and voxels scale items
    # penalty matrix: rows win over columns at all 3 query rounds or none; column sums below
    assert "| wins / loses to | random | entropy | fg_random | oracle_fg (oracle-informed) |" in markdown
    assert "| entropy | 1.00 | - | 1.00 | 0.00 |" in markdown
    assert "| fg_random | 0.00 | 0.00 | - | 0.00 |" in markdown
    assert "| oracle_fg (oracle-informed) | 1.00 | 1.00 | 1.00 | - |" in markdown
    assert "| beaten (column sum) | 2.00 | 1.00 | 2.00 | 0.00 |" in markdown
    # bootstrap ranking: the order is the same on every seed; random and fg_random tie
    assert "| oracle_fg (oracle-informed) | 1.00 | [1, 1] |\n| entropy | 2.00 | [2, 2] |" in markdown
    assert "| random | 3.50 | [3.5, 3.5] |" in markdown and "| fg_random | 3.50 | [3.5, 3.5] |" in markdown
    # verdicts against random and the foreground-aware baseline, with the penalty fractions both ways
    assert (
        "| strategy | AUBC vs random | budget points won vs random | lost vs random | AUBC vs fg_random |" in markdown
    )
    assert "| fg_random | no significant difference (p 1) | 0.00 | 0.00 | - | - | - |" in markdown
    verdict = next(line for line in markdown.splitlines() if line.startswith("| entropy | better (p "))
    assert verdict.endswith("| 1.00 | 0.00 |") and verdict.count("better (p ") == 2
    assert "Penalty matrix (Ash et al., ICLR 2020" in markdown and "Bootstrap ranking: 1000 resamples" in markdown
    assert "ttest_rel" in markdown and "Wilcoxon" not in markdown
    assert "<td>oracle_fg (oracle-informed)</td>" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "penalty_matrix.png").read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"cost_items", "cost_slices", "cost_voxels", "cost_foreground_voxels", "test/mean_dice"} <= set(rows[0])
    assert [row["cost_voxels"] for row in rows[:4]] == ["1024", "1536", "2048", "2560"]


def test_an_explicit_metric_wins_and_validation_is_flagged(tmp_path):
    write_trusted_bench(tmp_path)
    report.write_report(tmp_path, "val/mean_dice", foreground_baseline="nope")
    markdown = (tmp_path / "report.md").read_text()
    assert "**Warning: every metric value here (val/mean_dice) is on the validation split, which also selected" in (
        markdown
    )
    assert "Not every round" not in markdown  # the test metric was there: val was asked for
    assert "No strategy 'nope' here: no paired differences with it." in markdown
    assert "AUBC vs nope" not in markdown and "| AUBC vs random |" in markdown


def test_learning_curves_have_one_row_per_group_and_one_column_per_cost_unit(tmp_path):
    write_trusted_bench(tmp_path, override="costed")
    for seed in range(2):
        write_ledger(tmp_path, f"random/plain/seed_{seed}", [0.1, 0.3, 0.5], test=False)
    groups = summarise(load_runs(tmp_path), "val/mean_dice", "random")
    assert [group.cost_units for group in groups] == [("items", "foreground_voxels"), ("items",)]
    figure = plot_learning_curves(groups, "val/mean_dice", "random")
    costed_foreground, plain_items = figure.axes[1:3]  # row by row
    assert len(figure.axes) == 3  # the top axes (fraction of the pool) are children of the items panels
    assert [axes.get_xlabel() for axes in figure.axes[:3]] == [
        "labelled items (mean over seeds)",
        "annotated foreground voxels (mean over seeds)",
        "labelled items (mean over seeds)",
    ]
    assert [len(axes.get_lines()) for axes in figure.axes[:3]] == [4, 4, 1]
    reference = costed_foreground.get_lines()[0]
    assert reference.get_linestyle() == "--" and reference.get_label() == "random"
    # x: the mean over the 4 seeds of the cumulative foreground voxels (300, 100 + 50 s, 200, 150 added per round)
    np.testing.assert_allclose(reference.get_xdata(), [300, 475, 675, 825])
    assert costed_foreground.get_lines()[3].get_label() == "oracle_fg (oracle-informed)"
    assert plain_items.get_title() == "override plain"


def test_the_penalty_figure_has_one_annotated_panel_per_group(tmp_path):
    write_trusted_bench(tmp_path, override="a")
    write_trusted_bench(tmp_path, override="b")
    figure = plot_penalty_matrices(summarise(load_runs(tmp_path), "test/mean_dice", "random"))
    panels = figure.axes[:2]
    assert len(figure.axes) == 3  # and the colour bar
    assert [axes.get_title() for axes in panels] == ["override a", "override b"]
    texts = [text.get_text() for text in panels[0].texts]
    assert len(texts) == 4 * 3 and texts[:3] == ["0.00", "0.00", "0.00"]  # off-diagonal cells; random wins nothing
    assert panels[0].get_ylabel() == "wins" and panels[0].get_xlabel().startswith("loses to")
    assert panels[0].get_xticklabels()[0].get_text() == "random\nbeaten 2.00"


def test_old_ledgers_still_report(tmp_path):
    """Schema 1 (no schema_version; num_labeled counted pseudo labels) and schema 2 without cost or test metrics."""
    for seed in range(2):
        run = tmp_path / "random" / f"seed_{seed}"
        run.mkdir(parents=True)
        lines = [
            {
                "round": r,
                "seed": r,
                "selected_ids": [f"x{r}{i}" for i in range(2 if r else 0)],
                "pseudo_labeled_ids": [],
                "pseudo_labels_file": None,
                "num_labeled": 4 + 3 * r,  # 2 oracle labels and 1 pseudo label per query round
                "num_pseudo_labeled": r,
                "num_unlabeled": 16 - 3 * r,
                "epochs": 1,
                "metrics": {"val/mean_dice": 0.2 + 0.1 * r + 0.01 * seed},
                "best_checkpoint": f"checkpoints/round_{r:03d}/best.ckpt",
                "timing_s": {"query": 0.0, "train": 1.0, "validate": 0.1},
                "wall_time_s": 1.1,
            }
            for r in range(3)
        ]
        (run / "rounds.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        write_ledger(tmp_path, f"entropy/seed_{seed}", [0.2, 0.4, 0.5], test=False)
        lines = [json.loads(line) for line in (tmp_path / f"entropy/seed_{seed}/rounds.jsonl").read_text().splitlines()]
        for line in lines:  # an early schema-2 ledger: no annotation_cost, no ground_truth_revealed
            del line["annotation_cost"], line["ground_truth_revealed"]
        (tmp_path / f"entropy/seed_{seed}/rounds.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    report.main([str(tmp_path)])
    markdown = (tmp_path / "report.md").read_text()
    assert "**Warning: every metric value here (val/mean_dice) is on the validation split" in markdown
    assert "Not every round of every run recorded test/mean_dice" in markdown
    assert "Learning curves against: items." in markdown and "4 -> 8 labelled items" in markdown  # oracle labels
    assert "| wins / loses to | random | entropy |" in markdown and "| random | 1.50 |" not in markdown
    (group,) = summarise(load_runs(tmp_path), "val/mean_dice", "random")
    figure = plot_learning_curves([group], "val/mean_dice", "random")
    assert len(figure.axes) == 1 and figure.axes[0].get_xlabel() == "labelled items (mean over seeds)"
    np.testing.assert_allclose(group.arms[0].cost["items"], [4, 6, 8])


def test_the_budget_option_puts_another_cost_unit_under_the_aubc(tmp_path, capsys):
    write_trusted_bench(tmp_path)
    for ledger in tmp_path.glob("*/seed_*/rounds.jsonl"):  # patch-like costs: overlapping boxes count once
        lines = [json.loads(line) for line in ledger.read_text().splitlines()]
        for line in lines:
            cost = line["annotation_cost"]
            cost["new_voxels"] = cost["voxels"] - 100 * line["round"] ** 2
            cost["labelled_fraction"] = cost["new_voxels"] / 10_000
        ledger.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report.main([str(tmp_path), "--budget", "labelled_fraction"])
    markdown = (tmp_path / "report.md").read_text()
    assert "| AUBC (labelled_fraction) |" in markdown and "AUBC over: labelled_fraction." in markdown
    assert "new_voxels, labelled_fraction" in markdown  # both drawn as learning-curve panels
    assert "AUBC is over labelled_fraction in every table" in markdown  # the definition follows the budget
    assert "number of labelled items" not in markdown
    groups = summarise(load_runs(tmp_path), "test/mean_dice", "random", "new_voxels")
    run = next(r for r in load_runs(tmp_path) if r.strategy == "random" and r.seed == 0)  # arms[0]: the reference
    assert groups[0].arms[0].aubc[0] == pytest.approx(aubc(run.cost("new_voxels", 4), run.metric("test/mean_dice", 4)))
    with pytest.raises(SystemExit):
        report.main([str(tmp_path), "--budget", "nope"])
    assert "The budget unit 'nope' is not recorded" in capsys.readouterr().err
