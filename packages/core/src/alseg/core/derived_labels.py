"""Pseudo labels derived from the oracle's answer: e.g. slices interpolated between two slices the oracle labels.

A strategy cannot read labels, yet some pseudo labels are computed from the labels of the very items it selects
(the inner slices of a block, from its two annotated end slices). Such a strategy returns, as the pseudo label of
each derived id, a :class:`DerivedLabels` request: the selected ids it derives from (``sources``), the pool ids it
labels (``targets``) and how (:meth:`DerivedLabels.derive`). One request may serve several targets (the same object
under each of their ids). After the oracle has answered for the selection, the pipeline resolves every request with
the oracle's labels of its sources and labels the targets with the results, so the data module only ever sees
concrete labels, and a resumed run replays them from the run directory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from alseg.core.errors import PluginError


class DerivedLabels(ABC):
    """A request for pseudo labels computed from the oracle's labels of selected items.

    Args:
        sources: Selected ids whose oracle labels the pseudo labels derive from.
        targets: Pool ids (not selected) that get the derived pseudo labels.
    """

    def __init__(self, sources: tuple[str, ...], targets: tuple[str, ...]) -> None:
        self.sources = tuple(sources)
        self.targets = tuple(targets)

    @abstractmethod
    def derive(self, labels: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Returns the pseudo label of every target.

        Args:
            labels: The oracle's label of every source, shaped like a training item's ``label`` (``[1, *S]`` class
                indices or ``[C, *S]`` binary channels).

        Returns:
            ``{target id: label}``, each shaped like that target's training label.
        """


def resolve_pseudo_labels(
    pseudo_labels: dict[str, Any] | None, oracle: Callable[[list[str]], dict[str, Tensor]]
) -> dict[str, Any] | None:
    """Replaces every :class:`DerivedLabels` request by the labels it derives; other values pass unchanged.

    Args:
        pseudo_labels: A strategy's checked pseudo labels (see
            :func:`~alseg.core.selection_check.check_selection`), or None.
        oracle: Returns the oracle's labels of selected ids.

    Returns:
        Concrete pseudo labels keyed by id, or None.

    Raises:
        PluginError: A request did not derive exactly its targets.
    """
    if not pseudo_labels:
        return pseudo_labels
    requests = {id(value): value for value in pseudo_labels.values() if isinstance(value, DerivedLabels)}
    sources = sorted({source for request in requests.values() for source in request.sources})
    labels = oracle(sources) if sources else {}
    derived: dict[str, Any] = {}
    for request in requests.values():
        result = request.derive({source: labels[source] for source in request.sources})
        if set(result) != set(request.targets):
            raise PluginError(
                f"{type(request).__name__}.derive returned labels for {sorted(result)[:5]}, expected its targets "
                f"{sorted(request.targets)[:5]}."
            )
        derived.update(result)
    return {i: derived[i] if isinstance(value, DerivedLabels) else value for i, value in pseudo_labels.items()}
