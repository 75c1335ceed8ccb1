"""Named checks of a model: probabilities of the right shape and range, MC-dropout sampling, and a fast fit.

Every check takes a model factory (a callable returning a fresh model) and a small data module the model can train
on, and builds models of its own, so that each runs alone and any can be skipped::

    check_model(MyModel, InMemoryDataModule(), skip={"check_model_mc_samples_differ"})
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import torch
from lightning.pytorch import Trainer
from torch.nn.modules.dropout import _DropoutNd

from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import ConfigError
from alseg.core.mc_dropout import has_dropout, mc_dropout
from alseg.core.model import PytorchModel
from alseg.core.testing.contract import Violation, contract_check, require, select

ModelFactory = Callable[[], PytorchModel]
ModelCheck = Callable[[ModelFactory, ActiveLearningDataModule], None]


def _predicting(model_factory: ModelFactory, data_module: ActiveLearningDataModule) -> tuple[PytorchModel, Any]:
    """Returns a new model bound to ``data_module`` in eval mode, and the first batch of the pool."""
    data_module.setup("fit")
    model = model_factory()
    model.bind_data(data_module)
    model.eval()
    return model, next(iter(data_module.unlabeled_dataloader()))


def _mc_dropout_pair(model: PytorchModel, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns two predictions of ``batch`` with dropout switched on."""
    try:
        with torch.inference_mode(), mc_dropout(model):
            return model.predict_step(batch, 0), model.predict_step(batch, 0)
    except ConfigError as error:  # mc_dropout: every dropout layer has p = 0, the samples would be identical
        raise Violation(str(error)) from None


@contract_check
def check_model_input_dimensionality(model_factory: ModelFactory, data_module: ActiveLearningDataModule) -> None:
    """Checks that ``input_dimensionality()`` is 2 or 3."""
    dimensionality = model_factory().input_dimensionality()
    require(dimensionality in (2, 3), f"input_dimensionality() must be 2 or 3; got {dimensionality!r}")


@contract_check
def check_model_predict_probabilities(model_factory: ModelFactory, data_module: ActiveLearningDataModule) -> None:
    """Checks that ``predict_step`` gives float32 probabilities ``[B, C, *spatial]`` (softmax for single-label data)."""
    model, batch = _predicting(model_factory, data_module)
    with torch.inference_mode():
        probs = model.predict_step(batch, 0)
    expected = (batch["image"].shape[0], data_module.num_classes(), *batch["image"].shape[2:])
    require(tuple(probs.shape) == expected, f"got shape {tuple(probs.shape)}, expected {expected}")
    require(probs.dtype == torch.float32, f"probabilities are {probs.dtype}, not float32")
    require(bool(((probs >= 0) & (probs <= 1)).all()), "probabilities outside [0, 1]")
    if not data_module.multi_label():
        sums = probs.sum(dim=1)
        require(torch.allclose(sums, torch.ones_like(sums), atol=1e-4), "classes do not sum to 1")


@contract_check
def check_model_mc_samples_differ(model_factory: ModelFactory, data_module: ActiveLearningDataModule) -> None:
    """Checks that two MC-dropout predictions of a model with dropout layers differ."""
    model, batch = _predicting(model_factory, data_module)
    if has_dropout(model):
        first, second = _mc_dropout_pair(model, batch)
        require(not torch.equal(first, second), "MC-dropout samples are identical")


@contract_check
def check_model_eval_after_mc_dropout(model_factory: ModelFactory, data_module: ActiveLearningDataModule) -> None:
    """Checks that after ``eval()`` and MC-dropout predictions no layer but dropout is in training mode."""
    model, batch = _predicting(model_factory, data_module)
    if has_dropout(model):
        _mc_dropout_pair(model, batch)
        training = [type(m).__name__ for m in model.modules() if m.training and not isinstance(m, _DropoutNd)]
        require(not training, f"non-dropout layers were left in training mode: {training}")


@contract_check
def check_model_fast_dev_run_fit(model_factory: ModelFactory, data_module: ActiveLearningDataModule) -> None:
    """Checks that ``Trainer(fast_dev_run=True).fit`` trains a fresh model on ``data_module``."""
    trainer = Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False)
    try:
        trainer.fit(model_factory(), datamodule=data_module)
    except Exception as error:
        raise Violation(f"Trainer(fast_dev_run=True).fit raised {type(error).__name__}: {error}") from error


def model_checks() -> tuple[ModelCheck, ...]:
    """Returns the model checks in the order :func:`check_model` runs them."""
    return (
        check_model_input_dimensionality,
        check_model_predict_probabilities,
        check_model_mc_samples_differ,
        check_model_eval_after_mc_dropout,
        check_model_fast_dev_run_fit,
    )


def check_model(
    model_factory: ModelFactory, data_module: ActiveLearningDataModule, *, skip: Collection[str] = ()
) -> None:
    """Runs the model checks (:func:`model_checks`) but those named in ``skip``.

    Args:
        model_factory: Returns a fresh model.
        data_module: A small data module the model can train on.
        skip: Names of checks not to run.

    Raises:
        ContractError: A check fails; the message begins with its name.
        ValueError: ``skip`` names a check that is not among them.
    """
    for check in select(model_checks(), skip):
        check(model_factory, data_module)
