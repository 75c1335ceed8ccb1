"""A plugin as the extension guide leads users to write it: layers built in ``__init__``, a pool-scoring strategy.

Imported by class path (``eager_plugin.EagerModel``) in subprocess tests, with this folder on ``PYTHONPATH``.
"""

import json
import os
from pathlib import Path

from torch import nn

from alseg.core import PytorchModel, QueryStrategy
from alseg.core.distributed import rank
from alseg.core.inference import map_pool, stream_probabilities


class EagerModel(PytorchModel):
    """A 2-layer conv net for 1-channel, 2-class slices whose weights are created in ``__init__``."""

    def __init__(self, hidden_channels: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.net = nn.Sequential(
            nn.Conv2d(1, hidden_channels, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.2), nn.Conv2d(hidden_channels, 2, 1)
        )

    def input_dimensionality(self):
        return 2

    def training_step(self, batch, batch_idx):
        return self.training_loss(self.net(batch["image"]), batch)

    def validation_step(self, batch, batch_idx):
        self.evaluate("val", self.net(batch["image"]), batch)

    def test_step(self, batch, batch_idx):
        self.evaluate("test", self.net(batch["image"]), batch)

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return self.probabilities(self.net(batch["image"]))


class MaxProbabilityStrategy(QueryStrategy):
    """Least-confidence sampling; with ``ALSEG_TEST_RECORD`` set, every rank writes what it selected there.

    ``ALSEG_TEST_KILL_ROUND`` kills the process group in that round; ``ALSEG_TEST_RANK_DEPENDENT`` makes rank 1 pick
    other ids (a strategy that breaks the determinism contract).
    """

    def select_items_to_label(self, models, data_module, items_to_label, *, seed=0, round=0, **kwargs):
        scored = []  # this rank's share, for the test's record

        def least_confidence(batch, probabilities):
            scored.extend(batch["id"])
            return (1 - probabilities.max(dim=1).values.flatten(1).mean(1)).tolist()

        scores = map_pool(stream_probabilities(models, data_module), least_confidence)
        picked = sorted(scores, key=lambda i: (-scores[i], i))[:items_to_label]
        if os.environ.get("ALSEG_TEST_RANK_DEPENDENT") and rank() == 1:  # breaks the contract: ignores the seed
            picked = sorted(scores, key=lambda i: (scores[i], i))[:items_to_label]
        record = os.environ.get("ALSEG_TEST_RECORD")
        if record:
            path = Path(record) / f"round_{round}_rank_{rank()}.json"
            path.write_text(json.dumps({"picked": picked, "scored": len(scored), "pool": len(scores)}))
        if os.environ.get("ALSEG_TEST_KILL_ROUND") == str(round):
            os.killpg(0, 9)  # the whole process group, as a kill -9 of the launcher and its ranks
        return picked, None
