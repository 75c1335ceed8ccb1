"""The learning-curve figure of a benchmark: one panel per override, one line per strategy with a ±std band."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from alseg.bench.summary import GroupSummary


def plot_learning_curves(groups: list[GroupSummary], metric: str, reference: str) -> Figure:
    """Draws the mean metric over seeds against the labelled items, with a ±1 std band where there are 2+ seeds.

    The reference strategy is drawn black and dashed. A second x axis on top shows the fraction of the pool
    labelled. The figure is not attached to pyplot (no global state); save it with ``figure.savefig``.

    Args:
        groups: The benchmark's groups (see :func:`alseg.bench.summary.summarise`), one panel each.
        metric: The metric's name (y axis label).
        reference: The reference strategy's label.

    Returns:
        The figure: panel ``i`` holds one line per strategy of ``groups[i]``.
    """
    figure = Figure(figsize=(6.4 * len(groups), 4.8), layout="constrained")
    for axes, group in zip(figure.subplots(1, len(groups), squeeze=False)[0], groups, strict=True):
        for arm in group.arms:
            curve = arm.curve
            style = {"color": "black", "linestyle": "--"} if arm.strategy == reference else {}
            line = axes.plot(curve.num_labeled, curve.mean, marker="o", markersize=3, label=arm.strategy, **style)[0]
            if not np.isnan(curve.std).all():
                low, high = curve.mean - curve.std, curve.mean + curve.std
                axes.fill_between(curve.num_labeled, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        pool = group.pool_size
        top = axes.secondary_xaxis("top", functions=(lambda n, pool=pool: n / pool, lambda f, pool=pool: f * pool))
        top.set_xlabel("fraction of the pool labelled")
        axes.set_xlabel("labelled items")
        axes.set_ylabel(metric)
        axes.set_title(f"override {group.override}" if group.override else f"{metric} (mean ± std over seeds)")
        axes.grid(alpha=0.3)
        axes.legend()
    return figure
