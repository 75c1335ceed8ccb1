"""Conformance kit: checks that a model, data module or strategy honours the alseg contract, plus test doubles."""

from alseg.core.testing.checks import ContractError, check_data_module, check_model, check_strategy
from alseg.core.testing.doubles import (
    InMemoryDataModule,
    SeededRandomStrategy,
    TinySegmentationModel,
)

__all__ = [
    "ContractError",
    "InMemoryDataModule",
    "SeededRandomStrategy",
    "TinySegmentationModel",
    "check_data_module",
    "check_model",
    "check_strategy",
]
