"""The conformance kit over every registered data module: the volume modules in 2D and 3D on six small synthetic
cases, the 2D image-folder modules on a small synthetic BCSS folder."""

import functools
from functools import partial
from pathlib import Path

import pytest

from alseg.core.registry import registered
from alseg.core.testing import DataModuleTarget, parametrize_with_checks
from alseg.datasets.bcss import BCSSDataModule
from alseg.datasets.bcss_layout import BCSS_LABELS
from alseg.datasets.brats import BraTSDataModule
from alseg.datasets.decathlon import DecathlonDataModule
from alseg.datasets.image_folder import ImageFolderDataModule
from alseg.datasets.synthetic import write_brats, write_decathlon
from alseg.datasets.synthetic_bcss import SyntheticBCSS, write_bcss

SMALL = (16, 16, 8)
VOLUMES = {
    "brats": (BraTSDataModule, partial(write_brats, n_cases=6, shape=SMALL, tumour_fraction=1.0)),
    "decathlon": (DecathlonDataModule, partial(write_decathlon, n_cases=6, shape=SMALL, tumour_fraction=1.0, n_test=2)),
}
#: 2D modules → their options; both read the same synthetic BCSS folder (a valid image folder too).
IMAGES = {
    "bcss": (BCSSDataModule, {}),
    "image_folder": (
        ImageFolderDataModule,
        {"classes": {v: "background" if v == 0 else "tissue" for v in BCSS_LABELS}},
    ),
}
WRITERS = {name: writer for name, (_, writer) in VOLUMES.items()}
WRITERS["tiles"] = lambda out: write_bcss(out, SyntheticBCSS(tiles=12, size=(16, 16), institutes=3))


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
    """The synthetic data of a data module, written once for all of its checks."""
    return WRITERS[name](ROOT[-1] / name)


def make(name: str, dim: int):
    """A new volume data module. Cases and volume cache are shared between checks: a check only reads them."""
    cache = ROOT[-1] / f"{name}-cache"
    module = VOLUMES[name][0]
    return module(
        data_dir=str(cases(name)), cache_dir=str(cache), dim=dim, patch_size=(8, 8, 8), initial_training_set_size=2
    )


def make_patches(name: str):
    """A new volume data module whose items are 8 x 8 x 4 boxes (a tiling of each training volume)."""
    cache = ROOT[-1] / f"{name}-cache"
    return VOLUMES[name][0](
        data_dir=str(cases(name)),
        cache_dir=str(cache),
        dim=3,
        annotation_unit="patch",
        query_patch_size=(8, 8, 4),
        patch_size=(8, 8, 8),
        initial_training_set_size=2,
    )


def make_2d(name: str):
    """A new 2D image data module over the shared synthetic tiles."""
    module, options = IMAGES[name]
    return module(data_dir=str(cases("tiles")), initial_training_set_size=2, **options)


def test_every_registered_data_module_is_checked():
    assert set(registered("data")) == set(VOLUMES) | set(IMAGES)


@parametrize_with_checks(
    *(DataModuleTarget(partial(make, name, dim), name=f"{name}-{dim}d") for name in sorted(VOLUMES) for dim in (2, 3)),
    *(DataModuleTarget(partial(make_2d, name), name=name) for name in sorted(IMAGES)),
    *(DataModuleTarget(partial(make_patches, name), name=f"{name}-patches") for name in sorted(VOLUMES)),
)
def test_conformance_kit(check):
    check()
