"""``items_per_epoch``: a fixed number of training items per epoch, drawn with replacement from the labelled set."""

import pytest
import torch

from alseg.core import ConfigError
from alseg.core.testing import InMemoryDataModule


def epoch_ids(module: InMemoryDataModule, seed: int) -> list[str]:
    torch.manual_seed(seed)
    return [i for batch in module.train_dataloader() for i in batch["id"]]


def test_an_epoch_draws_the_set_number_of_labelled_items():
    module = InMemoryDataModule(initial_training_set_size=3, items_per_epoch=10, batch_size=4)
    module.setup()
    labelled = set(module.labeled_ids())
    ids = epoch_ids(module, 0)
    assert len(ids) == 10 and set(ids) <= labelled  # more than the 3 labelled items: drawn with replacement
    assert epoch_ids(module, 0) == ids and epoch_ids(module, 1) != ids  # seeded by the global generator
    module.label_items(module.unlabeled_ids()[:5])
    assert len(epoch_ids(module, 0)) == 10  # the same number after labelling more


def test_without_it_an_epoch_is_every_labelled_item_once():
    module = InMemoryDataModule(initial_training_set_size=3)
    module.setup()
    assert sorted(epoch_ids(module, 0)) == sorted(module.labeled_ids())


def test_items_per_epoch_below_one_is_a_config_error():
    with pytest.raises(ConfigError, match=r"The 'items_per_epoch' option of the data module must be >= 1\. Got 0\."):
        InMemoryDataModule(items_per_epoch=0)
