"""The figures of a benchmark: learning curves against each annotation-cost unit, and the pairwise penalty matrices.

Figures are not attached to pyplot (no global state); save them with ``figure.savefig``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from alseg.bench.summary import GroupSummary

#: x-axis label of each annotation-cost unit; another unit is labelled with its name.
COST_LABELS = {
    "items": "labelled items",
    "slices": "annotated slices",
    "voxels": "annotated voxels",
    "new_voxels": "annotated voxels, overlaps counted once",
    "labelled_fraction": "labelled fraction of the training volumes",
    "foreground_voxels": "annotated foreground voxels",
}


def plot_learning_curves(groups: list[GroupSummary], metric: str, reference: str) -> Figure:
    """Draws the mean metric over seeds against the mean annotation cost, with a ±1 std band where there are 2+ seeds.

    One row per group, one column per unit of the group's ``cost_units`` (``items`` first, with a second x axis on
    top for the fraction of the pool labelled). At each round x is the mean cost over seeds. The reference strategy is
    drawn black and dashed.

    Args:
        groups: The benchmark's groups (see :func:`alseg.bench.summary.summarise`).
        metric: The metric's name (y axis label).
        reference: The reference strategy's label.

    Returns:
        The figure: its axes are the panels, row by row (panel ``(i, u)`` holds one line per strategy of
        ``groups[i]`` against its ``u``-th unit).
    """
    columns = max(len(group.cost_units) for group in groups)
    figure = Figure(figsize=(5.6 * columns, 4.4 * len(groups)), layout="constrained")
    grid = figure.subplots(len(groups), columns, squeeze=False)
    for row, group in zip(grid, groups, strict=True):
        for axes in row[len(group.cost_units) :]:
            axes.remove()
        for axes, unit in zip(row, group.cost_units, strict=False):
            for arm in group.arms:
                style = {"color": "black", "linestyle": "--"} if arm.strategy == reference else {}
                x, mean, std = arm.cost[unit], arm.curve.mean, arm.curve.std
                line = axes.plot(x, mean, marker="o", markersize=3, label=arm.label, **style)[0]
                if not np.isnan(std).all():
                    axes.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
            axes.set_xlabel(f"{COST_LABELS.get(unit, unit)} (mean over seeds)")
            axes.set_ylabel(f"{metric} (mean ± std over seeds)")
            axes.set_title(f"override {group.override}" if group.override else metric)
            axes.grid(alpha=0.3)
            axes.legend()
        pool = group.pool_size
        top = row[0].secondary_xaxis("top", functions=(lambda n, pool=pool: n / pool, lambda f, pool=pool: f * pool))
        top.set_xlabel("fraction of the pool labelled")
    return figure


def plot_penalty_matrices(groups: list[GroupSummary]) -> Figure:
    """Draws each group's pairwise penalty matrix as an annotated heatmap, one panel per group.

    Row ``i``, column ``j``: the fraction of budget points at which strategy ``i`` is significantly better than
    strategy ``j`` (:func:`alseg.bench.statistics.penalty_matrix`); "n/a" where the pair has too few common seeds. The
    column labels carry the column sums: how often each strategy is beaten (lower is better).

    Returns:
        The figure: axes ``i`` is the panel of ``groups[i]``, the colour bar comes after them.
    """
    size = max(len(group.arms) for group in groups)
    figure = Figure(figsize=(2.2 + 1.1 * size * len(groups), 1.6 + 0.9 * size), layout="constrained")
    panels = figure.subplots(1, len(groups), squeeze=False)[0]
    image = None
    for axes, group in zip(panels, groups, strict=True):
        penalty, labels = group.penalty, [arm.label for arm in group.arms]
        shown = np.ma.masked_array(penalty.wins, mask=~penalty.tested)
        image = axes.imshow(shown, cmap="viridis", vmin=0, vmax=1)
        for (i, j), value in np.ndenumerate(penalty.wins):
            if i != j:
                text = f"{value:.2f}" if penalty.tested[i, j] else "n/a"
                axes.text(j, i, text, ha="center", va="center", color="white" if value < 0.6 else "black")
        beaten = [f"{label}\nbeaten {total:.2f}" for label, total in zip(labels, penalty.beaten, strict=True)]
        axes.set_xticks(range(len(labels)), beaten, rotation=30, ha="right")
        axes.set_yticks(range(len(labels)), labels)
        axes.set_xlabel("loses to (column sum: how often beaten)")
        axes.set_ylabel("wins")
        axes.set_title(f"override {group.override}" if group.override else "penalty matrix")
    figure.colorbar(image, ax=list(panels), label="fraction of budget points won")
    return figure
