import random

import numpy as np
import pytest
import torch

from alseg.core.errors import ConfigError, PluginError
from alseg.strategies import k_center
from alseg.strategies.k_center import k_center_greedy
from alseg.strategies.selection import limit_per_case, power_sample, tie_break_order, tied_picks, top_k

IDS = [f"case{i:02d}" for i in range(20)]


def _scores(n=20, seed=0):
    return torch.rand(n, generator=torch.Generator().manual_seed(seed))


def _shuffled(scores, ids, seed):
    perm = list(range(len(ids)))
    random.Random(seed).shuffle(perm)
    return scores[perm], [ids[i] for i in perm]


# --- top_k -------------------------------------------------------------------------------------


def test_top_k_returns_highest_first():
    assert top_k(torch.tensor([0.1, 0.9, 0.5, 0.7]), ["a", "b", "c", "d"], 3, seed=0) == ["b", "d", "c"]


def test_top_k_breaks_ties_by_the_seed_not_by_the_alphabet():
    scores = torch.zeros(20)  # e.g. BALD or background-excluded entropy where nothing is foreground
    picks = {seed: top_k(scores, IDS, 5, seed=seed) for seed in range(8)}
    assert all(top_k(scores, IDS, 5, seed=seed) == picked for seed, picked in picks.items())
    assert len({tuple(p) for p in picks.values()}) == len(picks)
    assert all(picked != IDS[:5] for picked in picks.values())
    # The order among tied items is the seeded permutation of the id-sorted order.
    assert picks[3] == [IDS[i] for i in tie_break_order(20, 3)[:5].tolist()]


def test_top_k_ranks_higher_scores_first_and_ties_by_the_seed_whatever_the_input_order():
    scores = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.5])
    orders = set()
    for seed in range(10):
        best = top_k(scores, ["e", "d", "b", "c", "a"], 4, seed=seed)
        assert set(best[:3]) == {"b", "c", "d"} and best[3] == "e"
        assert top_k(scores, ["e", "c", "b", "d", "a"], 4, seed=seed) == best
        orders.add(tuple(best))
    assert len(orders) > 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_top_k_is_invariant_to_input_permutation(seed):
    scores = torch.tensor([3.0, 1.0, 3.0, 2.0] * 5)  # many ties
    expected = top_k(scores, IDS, 7, seed=seed)
    assert top_k(*_shuffled(scores, IDS, seed), 7, seed=seed) == expected
    assert set(expected) < set(IDS[0::4] + IDS[2::4])  # 7 of the 10 items scoring 3


def test_top_k_accepts_numpy_and_handles_k_bounds():
    scores = np.array([0.2, 0.1, 0.3])
    assert top_k(scores, ["x", "y", "z"], 10, seed=0) == ["z", "x", "y"]
    assert top_k(scores, ["x", "y", "z"], 0, seed=0) == []


def test_top_k_nan_score_names_the_item():
    with pytest.raises(PluginError, match="Score of item 'y' is NaN"):
        top_k(torch.tensor([0.1, float("nan"), 0.3]), ["x", "y", "z"], 1, seed=0)


def test_top_k_rejects_duplicate_ids_bad_k_and_length_mismatch():
    with pytest.raises(PluginError, match="'x' occurs more than once"):
        top_k(torch.tensor([0.1, 0.2, 0.3]), ["x", "y", "x"], 1, seed=0)
    with pytest.raises(ConfigError, match=r">= 0\. Got -1"):
        top_k(torch.tensor([0.1]), ["x"], -1, seed=0)
    with pytest.raises(ValueError, match="Expected 2 scores"):
        top_k(torch.tensor([0.1, 0.2, 0.3]), ["x", "y"], 1, seed=0)


# --- tied_picks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "selected", "expected"),
    [
        ([3.0, 2.0, 1.0], ["a", "b"], 0),  # the cut falls between different scores
        ([3.0, 2.0, 2.0, 2.0, 1.0], ["a", "c"], 1),  # 1 of the 3 items scoring 2 selected
        ([3.0, 2.0, 2.0, 2.0, 1.0], ["a", "d", "b"], 2),
        ([3.0, 2.0, 2.0, 2.0, 1.0], ["a", "b", "c", "d"], 0),  # the whole tie group is selected
        ([2.0, 2.0, 1.0, 1.0, 1.0], ["a", "b", "c"], 1),  # a tie above the cut decides nothing
        ([0.0] * 5, ["e", "a"], 2),  # all scores equal: every pick was decided by the tie-break
        ([0.0] * 5, [], 0),
    ],
)
def test_tied_picks_counts_the_selected_part_of_a_tie_group_straddling_the_cut(scores, selected, expected):
    ids = ["a", "b", "c", "d", "e"][: len(scores)]
    assert tied_picks(torch.tensor(scores), ids, selected) == expected
    assert tied_picks(*_shuffled(torch.tensor(scores), ids, 1), selected) == expected


def test_tied_picks_of_top_k_is_the_tie_group_at_the_cut():
    scores = torch.tensor([3.0, 1.0, 3.0, 2.0] * 5)  # 5 items score 2, 5 score 1
    assert tied_picks(scores, IDS, top_k(scores, IDS, 12, seed=0)) == 2
    assert tied_picks(scores, IDS, top_k(scores, IDS, 10, seed=0)) == 0


def test_tied_picks_rejects_ids_it_has_no_score_for():
    with pytest.raises(ValueError, match=r"not among the scored ids: \['z'\]"):
        tied_picks(torch.tensor([1.0, 2.0]), ["x", "y"], ["x", "z"])


# --- power_sample ------------------------------------------------------------------------------


def test_power_sample_is_deterministic_distinct_and_seed_sensitive():
    scores = _scores()
    first = power_sample(scores, IDS, 8, seed=5)
    assert first == power_sample(scores, IDS, 8, seed=5)
    assert len(first) == 8 and len(set(first)) == 8 and set(first) <= set(IDS)
    others = {tuple(power_sample(scores, IDS, 8, seed=s)) for s in range(6, 11)}
    assert len(others - {tuple(first)}) >= 4


@pytest.mark.parametrize("seed", [1, 2])
def test_power_sample_is_invariant_to_input_permutation(seed):
    scores = _scores()
    assert power_sample(*_shuffled(scores, IDS, seed), 10, seed=3) == power_sample(scores, IDS, 10, seed=3)


def test_power_sample_puts_zero_scores_after_positive_ones():
    scores = torch.tensor([0.0, 1e-6, 0.0, 5.0, 0.0, 2e-6])
    ids = ["a", "b", "c", "d", "e", "f"]
    for seed in range(20):
        drawn = power_sample(scores, ids, 6, seed=seed)
        assert set(drawn[:3]) == {"b", "d", "f"} and set(drawn[3:]) == {"a", "c", "e"}
    # Zero-score items are drawn in random order among themselves.
    tails = {tuple(power_sample(scores, ids, 6, seed=s)[3:]) for s in range(20)}
    assert len(tails) > 1


def test_power_sample_with_large_beta_equals_top_k():
    scores = _scores(seed=4) + 0.05
    assert power_sample(scores, IDS, 6, seed=0, beta=1e4) == top_k(scores, IDS, 6, seed=0)


@pytest.mark.parametrize(("beta", "expected"), [(1.0, 0.75), (2.0, 0.9)])
def test_power_sample_first_draw_probability_is_proportional_to_score_power(beta, expected):
    # P(first = a) = 3**beta / (3**beta + 1**beta).
    firsts = [power_sample([3.0, 1.0], ["a", "b"], 1, seed=s, beta=beta)[0] for s in range(2000)]
    assert abs(firsts.count("a") / 2000 - expected) < 0.035


@pytest.mark.parametrize("bad", [-0.1, float("inf"), float("nan")])
def test_power_sample_rejects_negative_or_non_finite_scores(bad):
    with pytest.raises(PluginError, match=r"'y' must be finite and >= 0"):
        power_sample([0.1, bad, 0.3], ["x", "y", "z"], 1, seed=0)


@pytest.mark.parametrize("beta", [0.0, -1.0, float("inf")])
def test_power_sample_rejects_bad_beta(beta):
    with pytest.raises(ConfigError, match="'beta' option must be a finite number > 0"):
        power_sample([0.1, 0.2], ["x", "y"], 1, seed=0, beta=beta)


# --- limit_per_case ----------------------------------------------------------------------------

RANKED = ["A:1", "A:2", "A:3", "B:1", "A:4", "C:1", "B:2"]
CASES = {i: i.split(":")[0] for i in RANKED}


def test_limit_per_case_keeps_at_most_max_per_case_in_rank_order():
    assert limit_per_case(RANKED, CASES, 4, max_per_case=1) == ["A:1", "B:1", "C:1", "A:2"]
    assert limit_per_case(RANKED, CASES, 3, max_per_case=2) == ["A:1", "A:2", "B:1"]


def test_limit_per_case_fills_up_with_skipped_ids_in_rank_order():
    assert limit_per_case(RANKED, CASES, 5, max_per_case=1) == ["A:1", "B:1", "C:1", "A:2", "A:3"]
    assert limit_per_case(RANKED, CASES, 99, max_per_case=1) == [
        "A:1", "B:1", "C:1", "A:2", "A:3", "A:4", "B:2"
    ]  # fmt: skip


def test_limit_per_case_accepts_aligned_case_list():
    cases = [CASES[i] for i in RANKED]
    assert limit_per_case(RANKED, cases, 4, max_per_case=1) == ["A:1", "B:1", "C:1", "A:2"]


def test_limit_per_case_rejects_bad_input():
    with pytest.raises(ConfigError, match=r"'max_per_case' option must be an integer >= 1\. Got 0"):
        limit_per_case(RANKED, CASES, 2, max_per_case=0)
    with pytest.raises(ValueError, match="No case given for item 'A:1'"):
        limit_per_case(RANKED, {}, 2, max_per_case=1)
    with pytest.raises(ValueError, match="Got 2 case ids for 7"):
        limit_per_case(RANKED, ["A", "B"], 2, max_per_case=1)


# --- k_center_greedy ---------------------------------------------------------------------------


def _naive_k_center(features, labelled, k):
    """Reference: full float64 distance matrix, same first-centre and tie rules."""
    x = features.double()
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    centres = labelled.clone()
    if centres.any():
        min_dist = dist[:, centres].min(dim=1).values
        picks = []
    else:
        first = int(((x - x.mean(0)) ** 2).sum(1).argmax())
        min_dist, picks = dist[first].clone(), [first]
        centres[first] = True
    while len(picks) < min(k, int((~labelled).sum())):
        candidate = torch.where(centres, -1.0, min_dist)
        picks.append(int(candidate.argmax()))
        centres[picks[-1]] = True
        min_dist = torch.minimum(min_dist, dist[picks[-1]])
    return picks, float(min_dist.max().sqrt())


@pytest.mark.parametrize("chunk_size", [1, 3, 16, 40, 1000])
@pytest.mark.parametrize("n_labelled", [0, 1, 7])
def test_k_center_greedy_equals_naive_reference(chunk_size, n_labelled, monkeypatch):
    monkeypatch.setattr(k_center, "_CENTRE_BLOCK", 3)  # several labelled blocks with 7 labelled
    g = torch.Generator().manual_seed(n_labelled)
    features = torch.randn(40, 5, generator=g) * 3 + 10  # offset: stress round-off
    labelled = torch.zeros(40, dtype=torch.bool)
    labelled[torch.randperm(40, generator=g)[:n_labelled]] = True
    result = k_center_greedy(features, labelled, 12, chunk_size=chunk_size, seed=0)
    picks, radius = _naive_k_center(features, labelled, 12)
    assert result.indices == picks
    assert result.radius == pytest.approx(radius, rel=1e-5)
    assert not set(result.indices) & set(torch.nonzero(labelled).flatten().tolist())


def test_k_center_greedy_picks_all_unlabelled_when_k_is_large_and_radius_drops_to_zero():
    features = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    labelled = torch.zeros(10, dtype=torch.bool)
    labelled[[2, 5]] = True
    result = k_center_greedy(features, labelled, 50, chunk_size=4, seed=0)
    assert sorted(result.indices) == [0, 1, 3, 4, 6, 7, 8, 9]
    assert result.radius == 0.0


def test_k_center_greedy_zero_picks_reports_radius_of_labelled_set():
    features = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    labelled = torch.tensor([True, False, False])
    assert k_center_greedy(features, labelled, 0, seed=0).radius == pytest.approx(10.0)
    empty = k_center_greedy(features, torch.zeros(3, dtype=torch.bool), 0, seed=0)
    assert empty.indices == [] and empty.radius == float("inf")


def test_k_center_greedy_breaks_ties_by_the_seed_and_never_picks_a_duplicate_twice():
    # Points 0 and 3 are equally far from the mean (0, 0); the other one is then the farthest. Points 1, 2 and 4
    # (a duplicate of 1) tie at distance sqrt(5) from both; once 1 or 4 is picked, its duplicate is at distance 0.
    features = torch.tensor([[-2.0, 0.0], [0.0, 1.0], [0.0, -1.0], [2.0, 0.0], [0.0, 1.0]])
    picks = set()
    for seed in range(12):
        result = k_center_greedy(features, torch.zeros(5, dtype=torch.bool), 5, chunk_size=2, seed=seed)
        assert result.indices == k_center_greedy(features, torch.zeros(5, dtype=torch.bool), 5, seed=seed).indices
        assert set(result.indices[:2]) == {0, 3} and sorted(result.indices) == [0, 1, 2, 3, 4]
        assert result.indices[2] in {1, 2, 4}
        assert set(result.indices[2:4]) in ({1, 2}, {4, 2})  # the duplicate of a pick comes last
        picks.add(tuple(result.indices))
    assert {p[0] for p in picks} == {0, 3} and {p[2] for p in picks} == {1, 2, 4}


def test_k_center_greedy_on_identical_embeddings_follows_the_seeded_permutation():
    features = torch.ones(12, 3)
    labelled = torch.zeros(12, dtype=torch.bool)
    labelled[[0, 5]] = True
    for seed in range(3):
        order = [i for i in tie_break_order(12, seed).tolist() if not labelled[i]]
        assert k_center_greedy(features, labelled, 4, chunk_size=5, seed=seed).indices == order[:4]


def test_k_center_greedy_accepts_half_features_and_rejects_non_finite():
    features = torch.randn(30, 4, generator=torch.Generator().manual_seed(2))
    labelled = torch.zeros(30, dtype=torch.bool)
    half = k_center_greedy(features.half(), labelled, 5, seed=0)
    assert half.indices == _naive_k_center(features.half().float(), labelled, 5)[0]
    features[17, 2] = float("nan")
    with pytest.raises(PluginError, match="Embedding of row 17 is not finite"):
        k_center_greedy(features, labelled, 5, chunk_size=8, seed=0)


def test_k_center_greedy_rejects_bad_options_and_shapes():
    features = torch.zeros(4, 2)
    with pytest.raises(ConfigError, match="'chunk_size' option must be an integer >= 1"):
        k_center_greedy(features, torch.zeros(4, dtype=torch.bool), 1, chunk_size=0, seed=0)
    with pytest.raises(ValueError, match=r"labelled \(N,\)"):
        k_center_greedy(features, torch.zeros(3, dtype=torch.bool), 1, seed=0)
