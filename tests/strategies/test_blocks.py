"""Block selection: runs of consecutive pool slices, ranking, no overlap, budget and the fallback order."""

import pytest

from alseg.core.errors import ConfigError
from alseg.strategies.blocks import Block, runs, select_blocks


def positions(case_slices):
    """``{"<case>:<s>": (case, s)}`` for the given slices of each case."""
    return {f"{case}:{s}": (case, s) for case, slices in case_slices.items() for s in slices}


def test_runs_split_at_gaps_and_cases():
    found = runs(positions({"b": [0, 1], "a": [0, 1, 2, 5, 6]}))
    assert found == [["a:0", "a:1", "a:2"], ["a:5", "a:6"], ["b:0", "b:1"]]


def test_slice_10_follows_slice_9_not_slice_1():
    assert runs(positions({"a": [9, 10, 1]})) == [["a:1"], ["a:9", "a:10"]]


def test_blocks_are_ranked_by_mean_score_and_never_overlap():
    pool = positions({"a": range(10)})
    scores = {f"a:{s}": float(s in (4, 5, 6)) for s in range(10)}
    blocks = select_blocks(pool, scores, budget=4, thickness=3, seed=0)
    assert blocks[0] == Block(("a:4", "a:5", "a:6"))
    assert len(blocks) == 2 and set(blocks[1].ids).isdisjoint(blocks[0].ids)
    assert blocks[0].ends == ("a:4", "a:6") and blocks[0].inner == ("a:5",)


def test_only_end_slices_count_and_an_odd_budget_ends_with_one_slice():
    blocks = select_blocks(positions({"a": range(40)}), None, budget=5, thickness=5, seed=1)
    assert [len(b.ids) for b in blocks] == [5, 5, 1]
    assert sum(len(b.ends) for b in blocks) == 5


def test_thinner_blocks_follow_when_no_full_block_fits():
    # Runs of 4, 3 and 1 slices: no block of 5 fits; one of 4, then the run of 3, then the single slice.
    pool = positions({"a": [0, 1, 2, 3], "b": [0, 1, 2], "c": [7]})
    blocks = select_blocks(pool, None, budget=6, thickness=5, seed=0)
    assert [b.ids for b in blocks] == [("a:0", "a:1", "a:2", "a:3"), ("b:0", "b:1", "b:2"), ("c:7",)]


def test_a_budget_larger_than_the_pool_takes_every_slice_once():
    pool = positions({"a": range(7)})
    blocks = select_blocks(pool, None, budget=100, thickness=3, seed=2)
    taken = [i for b in blocks for i in b.ids]
    assert sorted(taken) == sorted(pool) and len(taken) == len(set(taken))


def test_random_blocks_follow_the_seed():
    pool = positions({c: range(12) for c in "abcd"})
    draw = [select_blocks(pool, None, budget=6, thickness=3, seed=s) for s in (0, 0, 1)]
    assert draw[0] == draw[1] != draw[2]


@pytest.mark.parametrize("thickness", [1, 0, 2.5, True])
def test_a_thickness_below_two_is_a_config_error(thickness):
    with pytest.raises(ConfigError, match="'block_thickness' option must be an integer >= 2"):
        select_blocks(positions({"a": range(4)}), None, budget=2, thickness=thickness, seed=0)
