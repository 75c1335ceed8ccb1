"""A round's selection that waits for its labels: kept in the run directory so that the rerun does not query again.

When an oracle raises :class:`~alseg.core.oracle.LabelsPending`, the pipeline has already saved the round's
:class:`PendingSelection` (``pending_round.pt``, written atomically by the process that holds the run directory's
lock). The same command started again replays the completed rounds, finds the pending selection of the next round,
restores what the query left (the strategy's notes, the ids whose ground truth it asked for, and every random number
generator's state after the query) and asks the oracle again. So a round answered later trains exactly as a round
answered at once: the same seed gives the same ledger whatever the oracle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class PendingSelection:
    """What a round's query decided, before its labels exist.

    Attributes:
        round: The round.
        selected_ids: The ids to label, in selection order (rank 0's, as the ledger will record them).
        pseudo_labels: The strategy's checked pseudo labels, derived-label requests unresolved (or None).
        notes: The strategy's ``strategy_notes``.
        revealed_ids: Ids whose ground truth the strategy asked for.
        query_s: Seconds the query took.
        rng_state: Every generator's state after the query (:func:`rng_state`).
    """

    round: int
    selected_ids: list[str]
    pseudo_labels: dict[str, Any] | None
    notes: dict[str, Any]
    revealed_ids: list[str]
    query_s: float
    rng_state: dict[str, Any] = field(repr=False)


def rng_state() -> dict[str, Any]:
    """Returns the states of Python's, NumPy's and torch's global generators (CUDA's too, where present)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Sets the global generators to a state returned by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
