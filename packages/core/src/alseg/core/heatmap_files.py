"""The files of a heatmap: a PNG per queried item (matplotlib) and, for 3D items, the score map as NIfTI (nibabel).

Both libraries are optional (the extra ``alseg-core[heatmaps]``) and imported only when a heatmap is drawn. The
PNG shows the image (its first channel; for a 3D item the slice along the last axis with the most predicted or
true foreground) with ground-truth contours (solid) and predicted contours (dashed), next to the strategy's
per-voxel score map and, if configured, the Grad-CAM map, with the same contours.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from alseg.core.errors import ConfigError
from alseg.core.heatmap_maps import ItemMaps
from alseg.core.run_directory import atomic_write_bytes

EXTRA = "alseg-core[heatmaps]"


def require(module: str, option: str = "heatmaps_per_round") -> Any:
    """Imports an optional library of heatmaps.

    Raises:
        ConfigError: It is not installed (naming the option and the extra that installs it).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"The '{option}' option of the active_learning section needs {module.split('.')[0]}, which is not "
            f"installed. Install the extra: pip install '{EXTRA}'."
        ) from None


def busiest_slice(maps: ItemMaps) -> int:
    """The index along the last axis of a 3D item with the most predicted or true foreground (first on ties)."""
    foreground = maps.prediction.any(0) | (maps.truth.any(0) if maps.truth is not None else False)
    return int(np.argmax(foreground.reshape(-1, foreground.shape[-1]).sum(0)))


def write_png(
    path: Path, maps: ItemMaps, title: str, score_name: str | None, gradcam: np.ndarray | None = None
) -> None:
    """Draws one item's PNG (atomically).

    Args:
        path: The PNG file.
        maps: The item's arrays (2D ``[H, W]`` or 3D ``[X, Y, Z]`` spatial shape).
        title: The figure's title.
        score_name: Name of the score map's colour bar (None: no score map).
        gradcam: Grad-CAM map ``[*S]`` in [0, 1], or None.
    """
    figure_module = require("matplotlib.figure")
    index = busiest_slice(maps) if maps.image.ndim == 3 else None

    def plane(array: np.ndarray) -> np.ndarray:
        return (array if index is None else array[..., index]).T  # rows = second axis, as viewers show x, y

    panels = [("image", maps.image, "gray")]
    if maps.scores is not None:
        panels.append((score_name or "score", maps.scores, "magma"))
    if gradcam is not None:
        panels.append(("Grad-CAM", gradcam, "jet"))
    figure = figure_module.Figure(figsize=(3.2 * len(panels), 3.6), layout="constrained")
    where = "" if index is None else f", slice {index} of the last axis"
    figure.suptitle(f"{title}\ncontours: ground truth solid, prediction dashed{where}", fontsize=8)
    for axes, (name, array, cmap) in zip(np.atleast_1d(figure.subplots(1, len(panels))), panels, strict=True):
        shown = axes.imshow(plane(array), cmap=cmap, origin="lower", interpolation="nearest")
        if name != "image":
            figure.colorbar(shown, ax=axes, shrink=0.8, label=name)
        _contours(axes, maps, plane)
        axes.set_title(name, fontsize=8)
        axes.set_axis_off()
    from io import BytesIO

    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def _contours(axes: Any, maps: ItemMaps, plane: Any) -> None:
    colours = ("lime", "cyan", "yellow", "magenta", "orange")
    for channel in range(maps.prediction.shape[0]):
        colour = colours[channel % len(colours)]
        for masks, style in ((maps.truth, "solid"), (maps.prediction, "dashed")):
            mask = None if masks is None else plane(masks[channel]).astype(np.float32)
            if mask is not None and 0 < mask.sum() < mask.size:
                axes.contour(mask, levels=[0.5], colors=[colour], linestyles=style, linewidths=1.0)


def write_nifti(path: Path, scores: np.ndarray, data_module: Any, item_id: str, description: str) -> None:
    """Saves a 3D item's score map ``float32 [X, Y, Z]`` as NIfTI (atomically).

    In the geometry of the case's own file when the data module offers ``nifti_of_item(item_id, array,
    description)`` (volume data modules do, as the annotation round and ``alseg-predict`` write their files); else
    with an identity affine (voxel coordinates).
    """
    nib = require("nibabel")
    make = getattr(data_module, "nifti_of_item", None)
    array = np.asarray(scores, np.float32)
    image = make(item_id, array, description) if callable(make) else nib.Nifti1Image(array, np.eye(4))
    atomic_write_bytes(path, image.to_bytes() if path.suffix == ".nii" else _gzipped(image))


def _gzipped(image: Any) -> bytes:
    import gzip

    return gzip.compress(image.to_bytes(), mtime=0)
