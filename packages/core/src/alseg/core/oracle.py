"""The oracle: who answers a round's selection with labels — the simulation's ground truth, or a person.

After a query the pipeline asks its :class:`Oracle` for the labels of the selected ids (a :class:`LabelRequest`).
The oracle either answers now or raises :class:`LabelsPending`: the selection is kept in the run directory, the run
stops, and the same command continues it once the labels exist. Two oracles ship with alseg:

* :class:`SimulatedOracle` (``simulated``, the default): the data module's own ground truth, as every run before
  oracles existed (the data module labels the ids itself, so ledgers are unchanged). It refuses ids whose case has
  no ground truth (:meth:`~alseg.core.data_module.ActiveLearningDataModule.ids_without_ground_truth`).
* ``folder`` (``alseg.datasets.folder_oracle.FolderOracle``): a person annotates NIfTI files in a folder.

An oracle that supplies labels itself (:attr:`Oracle.supplies_labels`) hands them to the data module with
``label_items(ids, pseudo_labels, labels=...)``. Oracles are published as entry points of the group
``alseg.oracles`` and configured as the ``oracle`` section of ``alseg-train`` (``--oracle folder --oracle.dir DIR``).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from alseg.core.errors import ConfigError, PluginError
from alseg.core.init_args import RecordsInitArgs

if TYPE_CHECKING:
    from alseg.core.data_module import ActiveLearningDataModule
    from alseg.core.inference import Placement
    from alseg.core.model import PytorchModel


class LabelsPending(Exception):
    """The oracle has asked for labels that do not exist yet; the run stops and the same command continues it.

    Args:
        message: One line saying what to label and that the same command continues.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class LabelRequest:
    """What an oracle is asked in one round.

    Attributes:
        round: The round (>= 1).
        ids: The selected ids, in selection order.
        data_module: The data module (its items, geometry and label convention).
        model: The model after the previous round's training (for pre-annotations).
        placement: Where the model runs (the Trainer's root device and precision).
        state_dir: A folder of the run directory the oracle may keep its own files in (e.g. the digest of what it
            asked for); only the writing process (rank 0) is asked.
    """

    round: int
    ids: list[str]
    data_module: ActiveLearningDataModule
    model: PytorchModel
    placement: Placement | None
    state_dir: Path


class Oracle(RecordsInitArgs, ABC):
    """Base class of oracles: give the labels of a round's selected ids, or say they are pending.

    The pipeline asks only the writing process (rank 0 of a distributed run) and hands its answer to every rank, so
    that all ranks label the same items with the same labels.

    Attributes:
        supplies_labels: The oracle returns labels (handed to ``label_items(..., labels=...)``); False for the
            simulation, whose labels the data module holds.
    """

    supplies_labels: bool = True

    @abstractmethod
    def labels(self, request: LabelRequest) -> dict[str, Tensor] | None:
        """Returns the label of every requested id, or None when the data module's ground truth answers.

        Args:
            request: The round's selection.

        Returns:
            ``{id: label}`` for exactly ``request.ids``, each shaped like a training item's ``label``
            (``[1, *spatial]`` class indices or ``[C, *spatial]`` binary channels); None only if
            :attr:`supplies_labels` is False.

        Raises:
            LabelsPending: The labels do not exist yet (the message says what to label).
            AlsegError: Labels given are invalid (one message naming the file or id); nothing is labelled.
        """

    def check(self, data_module: ActiveLearningDataModule) -> None:
        """Checks before the run starts that the oracle can answer for this data module (default: any module).

        Raises:
            AlsegError: It cannot (the message says why).
        """
        if self.supplies_labels and "labels" not in inspect.signature(data_module.label_items).parameters:
            raise PluginError(
                f"{type(self).__name__} supplies labels, but {type(data_module).__name__}.label_items does not accept "
                "them: implement label_items(ids, pseudo_labels=None, labels=None) (see "
                "alseg.core.data_module) to use an oracle other than 'simulated'."
            )


class SimulatedOracle(Oracle):
    """The simulation: the data module labels the selected ids with its own ground truth (the default oracle)."""

    supplies_labels = False

    def labels(self, request: LabelRequest) -> None:
        """Returns None (the data module's ground truth answers) after checking that every id has one.

        Raises:
            ConfigError: Ids of cases without ground truth were selected (the message names them).
        """
        missing = request.data_module.ids_without_ground_truth(list(request.ids))
        if missing:
            metadata = request.data_module.item_metadata(missing)
            cases = sorted({meta.get("case_id", i) for i, meta in zip(missing, metadata, strict=True)})
            raise ConfigError(
                f"The simulated oracle cannot label {len(missing)} selected item(s) of round {request.round}: "
                f"{missing[:10]} of the case(s) {cases[:10]} have no ground truth. Use an oracle that asks a person "
                "(--oracle folder --oracle.dir DIR), or leave the unlabelled cases out of the data."
            )
        return None
