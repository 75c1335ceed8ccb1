"""The registered strategies: contract, streaming, options, errors, and DDP equal to a single process."""

import importlib
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from alseg.core import ConfigError, PluginError, PytorchModel
from alseg.core.inference import Placement, placement
from alseg.core.query_view import QueryView
from alseg.core.registry import registered
from alseg.core.testing import InMemoryDataModule, StrategyTarget, TinySegmentationModel, parametrize_with_checks
from alseg.strategies import coreset
from alseg.strategies.bald import BALDStrategy
from alseg.strategies.coreset import CoresetStrategy
from alseg.strategies.entropy import EntropyStrategy, PowerEntropyStrategy
from alseg.strategies.fg_random import ForegroundRandomStrategy
from alseg.strategies.k_center import KCenterResult
from alseg.strategies.oracle_fg import OracleForegroundStrategy
from alseg.strategies.pool_scores import score_pool

STRATEGIES = registered("strategy")


def load(path):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def bound(multi_label=False, model=None, **data):
    data_module = InMemoryDataModule(multi_label=multi_label, **data)
    model = model or TinySegmentationModel()
    torch.manual_seed(0)
    model.bind_data(data_module)
    return model, data_module


def test_all_reference_strategies_are_registered():
    expected = {"random", "fg_random", "oracle_fg", "entropy", "bald", "coreset", "power_entropy", "power_bald"}
    expected |= {"representativeness", "uncertainty_representativeness"}
    assert expected <= set(STRATEGIES)


def seeded_model():
    torch.manual_seed(0)  # the weights are drawn when the kit binds the model to the data
    return TinySegmentationModel()


def kit_targets():
    """Every registered strategy on single- and multi-label data: a pool of 8 slices, in 2 batches of 4."""
    for name in sorted(STRATEGIES):
        for labels, multi_label in (("single_label", False), ("multi_label", True)):
            data = partial(InMemoryDataModule, num_cases=4, multi_label=multi_label)
            yield StrategyTarget(load(STRATEGIES[name]), seeded_model, data, items_to_label=4, name=f"{name}-{labels}")


@parametrize_with_checks(*kit_targets())
def test_conformance_kit(check):
    check()


@pytest.mark.parametrize("name", ["random", "power_entropy", "power_bald", "oracle_fg"])
def test_seeded_strategies_change_with_the_seed(name):
    model, data = bound()
    strategy = load(STRATEGIES[name])()
    picks = {tuple(strategy.select_items_to_label(model, QueryView(data), 4, seed=s, round=1)[0]) for s in range(4)}
    assert len(picks) > 1


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_only_oracle_informed_strategies_reveal_ground_truth(name):
    model, data = bound()
    view = QueryView(data)
    load(STRATEGIES[name])().select_items_to_label(model, view, 4, seed=0, round=1)
    assert view.revealed_ids == (data.unlabeled_ids() if name in ("oracle_fg", "fg_aware_random") else [])


class PredictsBackground(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        probabilities = torch.zeros(len(batch["id"]), 2, 16, 16)
        probabilities[:, 0] = 1
        return probabilities


def test_tied_scores_are_broken_by_the_seed_and_recorded():
    model, data = bound(model=PredictsBackground())  # nothing predicted as foreground: every score is 0
    first_ids = sorted(data.unlabeled_ids())[:4]
    picks = set()
    for seed in range(5):
        view = QueryView(data)
        picked, _ = EntropyStrategy(exclude_background=True).select_items_to_label(model, view, 4, seed=seed)
        assert picked != first_ids
        assert view.notes == {"tied_picks": 4}
        picks.add(tuple(picked))
    assert len(picks) == 5


def test_tied_picks_are_zero_without_ties_and_not_recorded_by_power_sampling():
    model, data = bound()
    ranked, sampled = QueryView(data), QueryView(data)
    EntropyStrategy().select_items_to_label(model, ranked, 4, seed=0)
    PowerEntropyStrategy().select_items_to_label(model, sampled, 4, seed=0)
    assert ranked.notes == {"tied_picks": 0}
    assert sampled.notes == {}


@pytest.mark.parametrize("batch_size", [1, 7, 100])
def test_streaming_gives_the_same_scores_as_all_at_once(batch_size):
    model, data = bound(pool_batch_size=batch_size)
    strategy = EntropyStrategy(aggregation="max")
    streamed = score_pool(model, QueryView(data), strategy.item_scores)
    model.eval()
    pool = sorted(data.unlabeled_ids())
    images = torch.stack([data.item(i, with_label=False)["image"] for i in pool])
    with torch.no_grad():
        at_once = strategy.item_scores(model.predict_step({"image": images}, 0), False)
    assert streamed.ids == pool
    assert torch.allclose(streamed.scores, at_once.double(), atol=1e-6)


def test_pool_scores_reach_the_host_once_not_once_per_batch(monkeypatch):
    model, data = bound(pool_batch_size=3)  # 7 batches
    expected = score_pool(model, QueryView(data), EntropyStrategy().item_scores)
    conversions = []
    tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: conversions.append(t.shape) or tolist(t))
    got = score_pool(model, QueryView(data), EntropyStrategy().item_scores)
    monkeypatch.undo()
    assert conversions == [(len(data.unlabeled_ids()),)]  # one transfer of the whole pool's scores
    assert got.ids == expected.ids and torch.equal(got.scores, expected.scores)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pool_scoring_on_cuda_synchronises_once_not_per_batch():
    model, data = bound(pool_batch_size=2)  # 10 batches
    with placement(Placement(torch.device("cuda"))), pytest.warns(UserWarning) as caught:
        torch.cuda.set_sync_debug_mode("warn")  # every synchronising call warns
        try:
            score_pool(model, QueryView(data), EntropyStrategy().item_scores)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    synchronising = [w for w in caught if "synchroniz" in str(w.message)]
    assert 1 <= len(synchronising) <= 2


def test_entropy_ranks_by_score_and_honours_prefer_unique_cases():
    model, data = bound()
    ranked, _ = EntropyStrategy().select_items_to_label(model, QueryView(data), 5, seed=0)
    scores = score_pool(model, QueryView(data), EntropyStrategy().item_scores)
    by_score = sorted(scores.ids, key=lambda i: -scores.scores[scores.ids.index(i)])
    assert ranked == by_score[:5]
    unique, _ = EntropyStrategy(prefer_unique_cases=1).select_items_to_label(model, QueryView(data), 4, seed=0)
    assert len({i.split(":")[0] for i in unique}) == 4  # 4 training cases, one slice each


def test_multi_label_outputs_are_never_softmaxed():
    probabilities = torch.full((1, 2, 4, 4), 0.5)  # two independent channels at 0.5
    single = EntropyStrategy().item_scores(probabilities, multi_label=False)
    multi = EntropyStrategy().item_scores(probabilities, multi_label=True)
    assert single.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert multi.item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item())


class NoDropout(TinySegmentationModel):
    def __init__(self):
        super().__init__(dropout=0.0)

    def configure_model(self):
        super().configure_model()
        self.encoder[3] = torch.nn.Identity()


def test_bald_without_dropout_is_a_clear_error():
    model, data = bound(model=NoDropout())
    with pytest.raises(PluginError, match="NoDropout"):
        BALDStrategy().select_items_to_label(model, QueryView(data), 2, seed=0)


def test_bald_with_dropout_probability_0_is_a_config_error():
    model, data = bound(model=TinySegmentationModel(dropout=0.0))  # a dropout layer that never drops
    with pytest.raises(ConfigError, match=r"dropout probability of the model TinySegmentationModel must be > 0"):
        BALDStrategy().select_items_to_label(model, QueryView(data), 2, seed=0)


class NoEmbeddings(TinySegmentationModel):
    embedding_step = PytorchModel.embedding_step  # the base's default: not implemented


def test_coreset_needs_embeddings_and_says_so():
    model, data = bound(model=NoEmbeddings())
    with pytest.raises(PluginError, match=r"coreset.*NoEmbeddings.*embedding_step"):
        CoresetStrategy().select_items_to_label(model, QueryView(data), 2)


class ConstantEmbeddings(TinySegmentationModel):
    def embedding_step(self, batch, batch_idx):
        return torch.ones(len(batch["id"]), 3)


def test_coreset_breaks_ties_of_identical_embeddings_by_the_seed():
    model, data = bound(model=ConstantEmbeddings())
    first_ids = sorted(data.unlabeled_ids())[:3]
    picks = {tuple(CoresetStrategy().select_items_to_label(model, QueryView(data), 3, seed=s)[0]) for s in range(4)}
    assert len(picks) == 4 and tuple(first_ids) not in picks


def test_coreset_runs_k_center_where_pool_inference_runs(monkeypatch):
    """The features go to the placement's device, not to the device the model's parameters happen to be on."""
    model, data = bound()
    ids = sorted(data.unlabeled_ids())

    def embeddings_on_the_cpu(model, data_module, loader=None, requested_by=""):
        yield {"id": ids}, torch.randn(len(ids), 4)  # as if inference had run elsewhere and left the model here

    devices = []

    def spy(features, labelled, k, chunk_size, *, seed):
        devices.append((features.device, labelled.device))
        return KCenterResult(indices=list(range(k)), radius=0.0)

    monkeypatch.setattr(coreset, "stream_embeddings", embeddings_on_the_cpu)
    monkeypatch.setattr(coreset, "k_center_greedy", spy)
    with placement(Placement(torch.device("meta"))):
        picked, _ = CoresetStrategy().select_items_to_label(model, QueryView(data), 2, seed=0)
    assert picked == ids[:2]
    assert next(model.parameters()).device.type == "cpu"
    assert devices == [(torch.device("meta"), torch.device("meta"))]


class PredictsForegroundOnCase0(TinySegmentationModel):
    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        probabilities = torch.zeros(len(batch["id"]), 2, 16, 16)
        probabilities[:, 0] = 1
        for row, case in enumerate(batch["case_id"]):
            if case == "case_0":
                probabilities[row, :, :2, :2] = torch.tensor([0.0, 1.0])[:, None, None]
        return probabilities


@pytest.mark.parametrize(("fraction", "expected"), [(0.5, 2), (1.0, 4), (0.0, None)])
def test_fg_random_draws_its_fraction_from_predicted_foreground(fraction, expected):
    model, data = bound(model=PredictsForegroundOnCase0())
    strategy = ForegroundRandomStrategy(foreground_fraction=fraction)
    picked, _ = strategy.select_items_to_label(model, QueryView(data), 4, seed=1)
    from_case_0 = sum(i.startswith("case_0:") for i in picked)
    assert len(picked) == 4
    if expected is not None:
        assert from_case_0 >= expected


@pytest.mark.parametrize(("fraction", "expected"), [(0.5, 2), (1.0, 4)])
def test_oracle_fg_draws_its_fraction_from_ground_truth_foreground(fraction, expected):
    model, data = bound(model=PredictsBackground(), slices_per_case=12)  # the predictions do not matter
    assert sum(data.items_with_foreground(data.unlabeled_ids())) > 4  # foreground is rare, but there is enough
    view = QueryView(data)
    picked, _ = OracleForegroundStrategy(foreground_fraction=fraction).select_items_to_label(model, view, 4, seed=1)
    assert len(set(picked)) == 4
    assert sum(data.items_with_foreground(picked)) >= expected
    assert sorted(view.revealed_ids) == sorted(data.unlabeled_ids())


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: EntropyStrategy(aggregation="median"), "Unknown aggregation 'median'"),
        (lambda: EntropyStrategy(power=0), "'power' option"),
        (lambda: BALDStrategy(mc_samples=1), "'mc_samples' option of BALD"),
        (lambda: ForegroundRandomStrategy(foreground_fraction=2), "'foreground_fraction'"),
        (lambda: OracleForegroundStrategy(foreground_fraction=-0.1), "'foreground_fraction'"),
    ],
)
def test_bad_options(make, fragment):
    with pytest.raises(ConfigError, match=fragment):
        make()


def test_distributed_selection_equals_single_process(tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    single, ddp = tmp_path / "single.json", tmp_path / "ddp.json"
    for out, world in ((single, "1"), (ddp, "2")):
        done = subprocess.run([sys.executable, str(worker), str(out), world], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(ddp.read_text()) == json.loads(single.read_text())
