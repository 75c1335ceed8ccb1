"""The conformance kit over every registered data module, in 2D and 3D, on six small synthetic cases."""

import functools
from functools import partial
from pathlib import Path

import pytest

from alseg.core.registry import registered
from alseg.core.testing import DataModuleTarget, parametrize_with_checks
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.decathlon import DecathlonDataModule
from alseg.datasets.synthetic import write_brats, write_decathlon

SMALL = (16, 16, 8)
MODULES = {
    "brats": (BraTSDataModule, partial(write_brats, n_cases=6, shape=SMALL, tumour_fraction=1.0)),
    "decathlon": (DecathlonDataModule, partial(write_decathlon, n_cases=6, shape=SMALL, tumour_fraction=1.0, n_test=2)),
}


#: The pytest tmp folder of this module's tests (the kit's factories take no fixtures, so the fixture below sets it).
ROOT: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def root(tmp_path_factory):
    ROOT.append(tmp_path_factory.mktemp("kit"))
    yield
    ROOT.pop()
    cases.cache_clear()


@functools.cache
def cases(name: str) -> Path:
    """The synthetic cases of a data module, written once for all of its checks."""
    return MODULES[name][1](ROOT[-1] / name)


def make(name: str, dim: int):
    """A new data module. Cases and volume cache are shared between checks: a check only reads them."""
    cache = ROOT[-1] / f"{name}-cache"
    module = MODULES[name][0]
    return module(
        data_dir=str(cases(name)), cache_dir=str(cache), dim=dim, patch_size=(8, 8, 8), initial_training_set_size=2
    )


def test_every_registered_data_module_is_checked():
    assert set(registered("data")) == set(MODULES)


@parametrize_with_checks(
    *(DataModuleTarget(partial(make, name, dim), name=f"{name}-{dim}d") for name in sorted(MODULES) for dim in (2, 3))
)
def test_conformance_kit(check):
    check()
