"""What the conformance kit checks (targets) and :func:`parametrize_with_checks`: one pytest test per target and check.

In the spirit of scikit-learn's ``parametrize_with_checks``::

    from alseg.core.testing import DataModuleTarget, ModelTarget, StrategyTarget, parametrize_with_checks

    @parametrize_with_checks(
        DataModuleTarget(MyDataModule),
        ModelTarget(MyModel),
        StrategyTarget(MyStrategy),
        skip={"check_model_mc_samples_differ"},
    )
    def test_alseg_contract(check):
        check()

gives tests ``test_alseg_contract[MyDataModule-check_data_module_unique_ids]`` and so on. Factories are called when a
check runs, never at collection, and every check gets fresh objects from them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alseg.core.testing.contract import select
from alseg.core.testing.data_module_checks import DataModuleCheck, DataModuleFactory, data_module_checks
from alseg.core.testing.doubles import InMemoryDataModule, TinySegmentationModel
from alseg.core.testing.model_checks import ModelCheck, ModelFactory, model_checks
from alseg.core.testing.strategy_checks import StrategyCheck, StrategyFactory, strategy_checks

if TYPE_CHECKING:
    import pytest


class _Named:
    """The ``id`` of a target: its ``name``, else the name of what its ``factory`` makes."""

    factory: Callable[[], object]
    name: str | None

    @property
    def id(self) -> str:
        """The target's part of the test ids."""
        if self.name:
            return self.name
        factory = self.factory.func if isinstance(self.factory, functools.partial) else self.factory
        return getattr(factory, "__name__", type(factory).__name__)


@dataclass(frozen=True)
class DataModuleTarget(_Named):
    """A data module to check.

    Args:
        factory: Returns a fresh, equally configured data module (same seed) on each call, e.g. the class.
        pseudo_labels: Also check pseudo-label support.
        name: The target's part of the test ids (default: the factory's name; give one for a lambda).
    """

    factory: DataModuleFactory
    pseudo_labels: bool = True
    name: str | None = None

    def checks(self) -> tuple[DataModuleCheck, ...]:
        """Returns :func:`data_module_checks`."""
        return data_module_checks(self.pseudo_labels)

    def run(self, check: DataModuleCheck) -> None:
        """Runs ``check`` on the factory."""
        check(self.factory)


@dataclass(frozen=True)
class ModelTarget(_Named):
    """A model to check, with the data it trains on.

    Args:
        factory: Returns a fresh model.
        data_module_factory: Returns a fresh small data module the model can train on (one per check).
        name: The target's part of the test ids (default: the factory's name; give one for a lambda).
    """

    factory: ModelFactory
    data_module_factory: DataModuleFactory = InMemoryDataModule
    name: str | None = None

    def checks(self) -> tuple[ModelCheck, ...]:
        """Returns :func:`model_checks`."""
        return model_checks()

    def run(self, check: ModelCheck) -> None:
        """Runs ``check`` on the factory and a new data module."""
        check(self.factory, self.data_module_factory())


@dataclass(frozen=True)
class StrategyTarget(_Named):
    """A strategy to check, with the model and data it queries.

    Args:
        factory: Returns a fresh strategy.
        model_factory: Returns a fresh model; each check binds a new one to a new data module.
        data_module_factory: Returns a fresh data module whose pool is queried.
        items_to_label: The number of items asked for.
        name: The target's part of the test ids (default: the factory's name; give one for a lambda).
    """

    factory: StrategyFactory
    model_factory: ModelFactory = TinySegmentationModel
    data_module_factory: DataModuleFactory = InMemoryDataModule
    items_to_label: int = 3
    name: str | None = None

    def checks(self) -> tuple[StrategyCheck, ...]:
        """Returns :func:`strategy_checks`."""
        return strategy_checks()

    def run(self, check: StrategyCheck) -> None:
        """Runs ``check`` on the factory, a new data module and a new model bound to it."""
        data_module = self.data_module_factory()
        model = self.model_factory()
        model.bind_data(data_module)
        check(self.factory, model, data_module, self.items_to_label)


Target = DataModuleTarget | ModelTarget | StrategyTarget
"""Something the kit checks."""


def parametrize_with_checks(*targets: Target, skip: Collection[str] = ()) -> pytest.MarkDecorator:
    """Returns ``pytest.mark.parametrize`` over the checks of ``targets``: one test per target and check.

    The test takes one argument, ``check``: a callable without arguments that runs one check on its target. Test ids
    are ``<target id>-<check name>``.

    Args:
        *targets: What to check, e.g. :class:`DataModuleTarget`, :class:`ModelTarget`, :class:`StrategyTarget`.
        skip: Names of checks not to run (for every target they apply to).

    Raises:
        ValueError: ``skip`` names a check of none of the targets.
    """
    import pytest  # here, not at the top: alseg-core does not depend on pytest

    pairs = [(target, check) for target in targets for check in target.checks()]
    kept = select(list(dict.fromkeys(check for _, check in pairs)), skip)
    return pytest.mark.parametrize(
        "check",
        [
            pytest.param(functools.partial(target.run, check), id=f"{target.id}-{check.__name__}")
            for target, check in pairs
            if check in kept
        ],
    )
