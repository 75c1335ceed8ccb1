"""Fixtures of the core-only tests: tiny doubles and a pipeline factory."""

from typing import Any

import pytest

from alseg.core import ActiveLearningPipeline, QueryStrategy
from alseg.core.testing import InMemoryDataModule, SeededRandomStrategy, TinySegmentationModel


@pytest.fixture
def make_pipeline(tmp_path):
    """Returns a factory of pipelines on the in-memory doubles, writing to tmp_path/<name>."""

    def make(
        name: str = "run",
        strategy: QueryStrategy | None = None,
        data: dict[str, Any] | None = None,
        model: dict[str, Any] | None = None,
        **options: Any,
    ) -> ActiveLearningPipeline:
        options = {"items_to_label": 3, "iterations": 2, "epochs": 1, **options}
        options.setdefault("trainer_options", {"accelerator": "cpu"})
        return ActiveLearningPipeline(
            InMemoryDataModule(**(data or {})),
            TinySegmentationModel(**(model or {})),
            strategy or SeededRandomStrategy(),
            tmp_path / name,
            **options,
        )

    return make
