"""Reading a benchmark folder's ledgers: the budget axis of curves and results is the oracle-label count."""

import torch

from alseg.bench.ledgers import load_runs, result_rows
from alseg.core import ActiveLearningPipeline
from alseg.core.testing import InMemoryDataModule, SeededRandomStrategy, TinySegmentationModel


class Pseudo(SeededRandomStrategy):
    """Selects like the random strategy and pseudo-labels two further pool items as background."""

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        ids, _ = super().select_items_to_label(models, data_module, items_to_label, **kwargs)
        rest = [i for i in sorted(data_module.unlabeled_ids()) if i not in ids][:2]
        return ids, {i: torch.zeros(1, 16, 16, dtype=torch.long) for i in rest}


def test_pseudo_labelled_items_are_not_on_the_budget_axis(tmp_path):
    run_dir = tmp_path / "bench" / "pseudo" / "seed_0"
    options = {"items_to_label": 3, "iterations": 2, "epochs": 1, "trainer_options": {"accelerator": "cpu"}}
    ActiveLearningPipeline(InMemoryDataModule(), TinySegmentationModel(), Pseudo(), run_dir, **options).run()
    (run,) = load_runs(tmp_path / "bench")
    assert (run.strategy, run.override, run.seed) == ("pseudo", None, 0)
    assert run.num_labeled(3).tolist() == [4, 7, 10]  # what the curves and AUBC use: oracle labels only
    rows = result_rows([run])
    assert [row["num_pseudo_labeled"] for row in rows] == [0, 2, 4]
    assert [row["fraction_labeled"] for row in rows] == [n / run.pool_size() for n in (4, 7, 10)]
