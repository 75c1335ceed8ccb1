"""Queries on patch pools: alseg-train end to end with entropy, BALD, random and fg-aware random on 3D boxes; box
scores equal the mean of their voxel scores; the overlap rule; resumed runs select the same boxes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alseg.core.errors import ConfigError
from alseg.core.patch_pool import Box, PatchPool, select_boxes
from alseg.datasets.patch_items import parse_patch_id
from alseg.datasets.synthetic import write_brats
from alseg.strategies.patch_scores import box_means

PATCH_RUN = [
    "--data.dim",
    "3",
    "--model.dim",
    "3",
    "--data.annotation_unit",
    "patch",
    "--data.query_patch_size",
    "[8, 8, 4]",
    "--data.patch_size",
    "[8, 8, 8]",
    "--active_learning.items_to_label",
    "3",
]


@pytest.fixture(scope="module")
def brats_dir(tmp_path_factory):
    return write_brats(tmp_path_factory.mktemp("data") / "brats", n_cases=6, shape=(16, 16, 8), seed=1)


@pytest.fixture
def train(alseg_train, brats_dir):
    def run(run_dir, *extra):
        data = ["--data.data_dir", str(brats_dir), "--data.cache_dir", str(run_dir.parent / "cache")]
        return alseg_train(run_dir, data, *PATCH_RUN, *extra)

    return run


def _boxes(ids):
    return [parse_patch_id(i) for i in ids]


def _overlaps(a: Box, b: Box) -> bool:
    ends = zip(a.start, a.size, b.start, b.size, strict=True)
    return a.case_id == b.case_id and all(s < t + m and t < s + n for s, n, t, m in ends)


@pytest.mark.parametrize("strategy", ["entropy", "bald", "power_bald", "random", "fg_aware_random"])
def test_patch_queries_run_end_to_end_and_never_overlap_labelled_boxes(tmp_path, train, strategy):
    records = train(tmp_path / "run", "--strategy", strategy)
    selected = records[-1]["selected_ids"]
    assert len(selected) == 3 and all(parse_patch_id(i) is not None for i in selected)
    labelled = _boxes(records[-1]["selected_ids"])
    assert not any(_overlaps(a, b) for n, a in enumerate(labelled) for b in labelled[n + 1 :])
    cost = records[-1]["annotation_cost"]
    assert cost["items"] == 5 and cost["voxels"] == 5 * 256 and cost["new_voxels"] == 5 * 256
    assert 0 < cost["labelled_fraction"] < 1
    assert (records[-1]["ground_truth_revealed"] > 0) == (strategy == "fg_aware_random")
    assert ("tied_picks" in records[-1]["strategy_notes"]) == (strategy in ("entropy", "bald"))


def test_a_resumed_patch_run_selects_the_same_boxes(tmp_path, train):
    once = train(tmp_path / "once", "--strategy", "entropy", "--active_learning.iterations", "2")
    twice_dir = tmp_path / "twice"
    train(twice_dir, "--strategy", "entropy", "--active_learning.iterations", "1")
    again = train(twice_dir, "--strategy", "entropy", "--active_learning.iterations", "2")
    assert [r["selected_ids"] for r in again] == [r["selected_ids"] for r in once]
    ledger = [json.loads(line) for line in (twice_dir / "rounds.jsonl").read_text().splitlines()]
    assert ledger[-1]["annotation_cost"] == once[-1]["annotation_cost"]


def test_a_box_scores_the_mean_of_its_voxel_scores():
    scores = torch.rand(6, 5, 4, generator=torch.Generator().manual_seed(0))
    means = box_means(scores, (3, 2, 4))
    assert means.shape == (4, 4, 1)
    for x, y in ((0, 0), (3, 3), (1, 2)):
        assert means[x, y, 0] == pytest.approx(scores[x : x + 3, y : y + 2, :].mean().item(), rel=1e-6)


def _pool(max_overlap, labelled=()):
    boxes = {f"c:{x}-0-0:4-4-4": Box("c", (x, 0, 0), (4, 4, 4)) for x in range(0, 9, 2)}
    done = {i: boxes.pop(i) for i in labelled}
    return PatchPool((4, 4, 4), (4, 4, 4), max_overlap, {"c": (12, 4, 4)}, boxes, done)


def test_selection_keeps_the_overlap_rule_with_picked_and_labelled_boxes():
    ranked = [f"c:{x}-0-0:4-4-4" for x in (2, 4, 6, 8, 0)]
    assert select_boxes(ranked, _pool(0.0), 5) == ["c:2-0-0:4-4-4", "c:6-0-0:4-4-4"]
    assert select_boxes(ranked, _pool(0.5), 5) == ranked  # each box shares half with its neighbours
    assert select_boxes(ranked[1:], _pool(0.0, labelled=["c:2-0-0:4-4-4"]), 5) == ["c:6-0-0:4-4-4"]


def test_a_reduction_other_than_the_mean_on_patches_is_one_message(tmp_path, train, capsys):
    with pytest.raises(SystemExit) as exit_:
        train(tmp_path / "run", "--strategy", "entropy", "--strategy.aggregation", "max")
    assert exit_.value.code == 2
    assert "'aggregation' option must be 'mean'" in capsys.readouterr().err


def test_a_2d_model_on_patches_is_one_config_error():
    from alseg.core.query_view import QueryView
    from alseg.strategies.patch_scores import score_boxes

    class Flat:
        def input_dimensionality(self):
            return 2

    with pytest.raises(ConfigError, match="'patch' needs a 3D model"):
        score_boxes(Flat(), QueryView.__new__(QueryView), _pool(0.0), lambda p, m: p)


@pytest.mark.slow
def test_distributed_patch_selection_equals_single_process(tmp_path, brats_dir):
    worker = Path(__file__).with_name("patch_ddp_worker.py")
    single, ddp = tmp_path / "single.json", tmp_path / "ddp.json"
    for out, world in ((single, "1"), (ddp, "2")):
        command = [sys.executable, str(worker), str(out), world, str(brats_dir), str(tmp_path / "cache")]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    selections = json.loads(single.read_text())
    assert json.loads(ddp.read_text()) == selections and all(len(ids) == 4 for ids in selections.values())
