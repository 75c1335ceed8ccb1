"""The conformance kit over the three examples: one pytest test per contract check (``uv run pytest THIS_FILE``).

``tests/docs/test_examples.py`` collects these tests, so the Extending page's examples are checked by the test suite.
"""

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from custom_dataset import NpyFolderDataModule, write_example_data
from custom_model import SmallUNet
from custom_strategy import MarginStrategy

from alseg.core.testing import (
    DataModuleTarget,
    InMemoryDataModule,
    ModelTarget,
    StrategyTarget,
    parametrize_with_checks,
)


@functools.cache
def example_data() -> Path:
    """A folder of example data for this test session (removed at exit)."""
    path = Path(tempfile.mkdtemp(prefix="alseg-example-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    write_example_data(path)
    return path


def npy_folder() -> NpyFolderDataModule:
    """A fresh data module on the example data: every check gets new objects."""
    return NpyFolderDataModule(str(example_data()))


@parametrize_with_checks(
    DataModuleTarget(npy_folder, name="NpyFolderDataModule"),
    ModelTarget(SmallUNet),  # trains and predicts on the kit's InMemoryDataModule (16 x 16 slices)
    ModelTarget(SmallUNet, data_module_factory=npy_folder, name="SmallUNet-on-npy"),
    ModelTarget(SmallUNet, data_module_factory=lambda: InMemoryDataModule(multi_label=True), name="SmallUNet-sigmoid"),
    StrategyTarget(MarginStrategy),  # queries the kit's TinySegmentationModel on InMemoryDataModule
    StrategyTarget(MarginStrategy, model_factory=SmallUNet, data_module_factory=npy_folder, name="Margin-on-npy"),
)
def test_alseg_contract(check):
    check()
