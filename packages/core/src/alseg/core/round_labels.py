"""The label path of the loop: a round's selection → the oracle → the data module, and the selection that waits.

:class:`RoundLabels` asks the oracle (:mod:`alseg.core.oracle`) for the labels of a selection on rank 0 and hands
its answer to every rank, resolves derived pseudo labels (:mod:`alseg.core.derived_labels`) from the oracle's labels,
and labels the data module. For an oracle that supplies labels it keeps the query's outcome in the run directory
before asking (:mod:`alseg.core.pending_round`), so a rerun after :class:`~alseg.core.oracle.LabelsPending` asks
again without querying, and it stores the labels it got, so that a resume replays them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from alseg.core import distributed
from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.derived_labels import resolve_pseudo_labels
from alseg.core.errors import AlsegError, ConfigError, PluginError
from alseg.core.inference import Placement
from alseg.core.model import PytorchModel
from alseg.core.oracle import LabelRequest, LabelsPending, Oracle
from alseg.core.pending_round import PendingSelection, restore_rng_state, rng_state
from alseg.core.query_view import QueryView
from alseg.core.round_record import RoundRecord
from alseg.core.run_directory import RunDirectory

Query = Callable[[], tuple[list[str], dict[str, Any] | None]]
"""Runs the strategy; returns rank 0's checked selection and its pseudo labels (derived requests unresolved)."""


class RoundLabels:
    """Labels a round's selection with the oracle's answer.

    Args:
        oracle: Who labels.
        data_module: The data module labelled.
        run_dir: The run directory (the waiting selection and the supplied labels are kept there).
        model: The model, for the oracle (pre-annotations).
        placement: Returns where the model runs (the Trainer's root device and precision).
        strategy_name: The strategy's name, for messages.
    """

    def __init__(
        self,
        oracle: Oracle,
        data_module: ActiveLearningDataModule,
        run_dir: RunDirectory,
        model: PytorchModel,
        placement: Callable[[], Placement],
        strategy_name: str,
    ) -> None:
        self.oracle, self.data_module, self.run_dir, self.model = oracle, data_module, run_dir, model
        self.placement, self.strategy_name = placement, strategy_name

    def select_and_label(
        self, query: Query, view: QueryView, round_index: int, writer: bool
    ) -> tuple[list[str], dict[str, Any] | None, float]:
        """Queries (or takes the selection waiting for its labels), asks the oracle and labels its answer.

        Returns:
            The selected ids, the resolved pseudo labels and the seconds of a query made by an earlier start.

        Raises:
            LabelsPending: The oracle waits for a person; the selection is kept in the run directory.
        """
        pending = self._pending(round_index)
        if pending is None:
            start = time.perf_counter()
            selected, requested = query()
            if self.oracle.supplies_labels:  # it may answer later: keep what the query decided
                notes, revealed, query_s = dict(view.notes), list(view.revealed_ids), time.perf_counter() - start
                pending = PendingSelection(round_index, selected, requested, notes, revealed, query_s, rng_state())
                if writer:
                    self.run_dir.save_pending(pending)
            waited_s = 0.0
        else:
            selected, requested = list(pending.selected_ids), pending.pseudo_labels
            view.notes, view.revealed_ids = dict(pending.notes), list(pending.revealed_ids)
            restore_rng_state(pending.rng_state)
            waited_s = pending.query_s
        labels = self._ask(round_index, selected, writer)
        pseudo_labels = resolve_pseudo_labels(requested, lambda ids: self._source_labels(ids, labels))
        self.label(selected, pseudo_labels, labels)
        if writer and labels is not None:
            self.run_dir.save_oracle_labels(round_index, labels)
        return selected, pseudo_labels, waited_s

    def replay(self, record: RoundRecord) -> None:
        """Labels a completed round's ids again, with the labels it was given (supplied ones from the run directory).

        Raises:
            ConfigError: The round labelled items without ground truth and its supplied labels are missing.
        """
        labels = self.run_dir.load_oracle_labels(record.round)
        if labels is None and record.selected_ids:
            missing = self.data_module.ids_without_ground_truth(record.selected_ids)
            if missing:
                raise ConfigError(
                    f"Cannot resume {self.run_dir.path}: round {record.round} labelled {missing[:5]}, which have no "
                    f"ground truth, and the labels it was given are missing from {self.run_dir.oracle_labels_dir}."
                )
        self.label(record.selected_ids, self.run_dir.load_pseudo_labels(record), labels)

    def label(self, ids: list[str], pseudo_labels: dict[str, Any] | None, labels: dict[str, Any] | None) -> None:
        """Labels ``ids`` with the oracle's ``labels``, or with the data module's ground truth if None."""
        if labels is None:
            self.data_module.label_items(ids, pseudo_labels)
        else:
            self.data_module.label_items(ids, pseudo_labels, labels=labels)

    def _pending(self, round_index: int) -> PendingSelection | None:
        """The selection of ``round_index`` that waits for its labels, if the run directory keeps one."""
        pending = self.run_dir.load_pending()
        return pending if isinstance(pending, PendingSelection) and pending.round == round_index else None

    def _ask(self, round_index: int, selected: list[str], writer: bool) -> dict[str, Any] | None:
        """Rank 0's oracle answer on every rank: labels of exactly ``selected``, or None (the ground truth).

        Raises:
            LabelsPending: The oracle waits for a person.
            AlsegError: The oracle refused, or its labels are invalid (on every rank).
        """
        outcome: Any = None
        if writer:
            state_dir = self.run_dir.oracle_dir
            request = LabelRequest(
                round_index, list(selected), self.data_module, self.model, self.placement(), state_dir
            )
            try:
                outcome = self.oracle.labels(request)
            except (LabelsPending, AlsegError) as stop:
                outcome = stop
        outcome = distributed.all_gather_objects(outcome)[0]
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is not None and set(outcome) != set(selected):
            raise PluginError(
                f"{type(self.oracle).__name__}.labels answered for {sorted(outcome)[:5]}, not for exactly the "
                f"selected ids {sorted(selected)[:5]}."
            )
        return outcome

    def _source_labels(self, ids: list[str], supplied: dict[str, Any] | None) -> dict[str, Any]:
        """The oracle's labels of selected ids, from which derived pseudo labels are computed."""
        if supplied is not None:
            return {i: torch.as_tensor(supplied[i]) for i in ids}
        truth = checked_ground_truth(self.data_module, ids)
        if truth is None:
            raise PluginError(
                f"Strategy {self.strategy_name} derives pseudo labels from the oracle's labels of its "
                f"selection, but {type(self.data_module).__name__}.ground_truth(ids) gives none: implement it."
            )
        return truth


def checked_ground_truth(data_module: ActiveLearningDataModule, ids: list[str]) -> dict[str, Any] | None:
    """The data module's ground truth of ``ids``, checked to cover them all; None if it has none.

    Raises:
        PluginError: It left out ids.
    """
    truth = data_module.ground_truth(ids)
    if truth is not None and set(truth) != set(ids):
        missing = sorted(set(ids) - set(truth))[:5]
        raise PluginError(f"{type(data_module).__name__}.ground_truth left out ids {missing}.")
    return truth
