"""alseg.core: the abstractions, the active-learning loop and the tools shared by every plugin.

Public names: :class:`PytorchModel`, :class:`ActiveLearningDataModule`, :class:`QueryStrategy`, :class:`Oracle`,
:class:`ActiveLearningPipeline`, and the error types. The conformance kit lives in :mod:`alseg.core.testing`.
"""

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import AlsegError, ConfigError, DataError, PluginError
from alseg.core.model import PytorchModel
from alseg.core.oracle import Oracle
from alseg.core.pipeline import ActiveLearningPipeline
from alseg.core.strategy import QueryStrategy

__all__ = [
    "ActiveLearningDataModule",
    "ActiveLearningPipeline",
    "AlsegError",
    "ConfigError",
    "DataError",
    "Oracle",
    "PluginError",
    "PytorchModel",
    "QueryStrategy",
]
