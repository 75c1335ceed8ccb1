"""Grad-CAM of a segmentation model through MONAI's ``monai.visualize.GradCAM``.

Grad-CAM explains one class score per item, but a segmentation model gives logits ``[B, C, *S]``. The model is
wrapped so that its output is the spatial mean of each class's logits, ``[B, C]`` (global average pooling, the
class score of a classification network), and the explained class is the foreground class (or region) the model
predicts on the most voxels of the item (the first foreground class if it predicts none). MONAI upsamples the map
of ``layer`` to the input's spatial size and scales it to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from alseg.core.errors import ConfigError
from alseg.core.model import PytorchModel

OPTION = "heatmaps_gradcam_layer"


class ClassScores(nn.Module):
    """``model``'s logits ``[B, C, *S]`` averaged over space, ``[B, C]``: class scores for Grad-CAM."""

    def __init__(self, model: PytorchModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        """Returns ``[B, C]``."""
        return self.model(image).float().flatten(2).mean(-1)


def check_layer(model: PytorchModel, layer: str | None) -> None:
    """Checks that ``layer`` names a submodule of ``model`` (``named_modules``), once its layers are built.

    Raises:
        ConfigError: Unknown layer (naming the option and some valid names).
    """
    if layer is None:
        return
    names = [name for name, _ in model.named_modules() if name]
    if layer not in names:
        shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
        raise ConfigError(
            f"The '{OPTION}' option of the active_learning section must name a layer of {type(model).__name__}. "
            f"Got {layer!r}. Available: {shown}."
        )


def gradcam_maps(
    model: PytorchModel,
    layer: str,
    image: Tensor,
    predicted: np.ndarray,
    forward_context: Callable[[], Any] = nullcontext,
) -> np.ndarray:
    """Grad-CAM maps of a batch.

    Args:
        model: The model, in eval mode, on the image's device.
        layer: The name of the explained layer in ``model.named_modules()``.
        image: ``[B, C_in, *S]``.
        predicted: The predicted foreground masks ``bool [B, F, *S]`` (they choose the explained class).
        forward_context: The Trainer's precision context.

    Returns:
        ``float32 [B, *S]`` in [0, 1].
    """
    from monai.visualize import GradCAM

    offset = 0 if model.multi_label else 1  # softmax outputs: foreground class f is logit f + 1
    counts = predicted.reshape(*predicted.shape[:2], -1).sum(-1)
    cam = GradCAM(ClassScores(model), target_layers=f"model.{layer}")
    maps = []
    with torch.enable_grad(), forward_context():
        for item in range(image.shape[0]):
            target = int(np.argmax(counts[item])) + offset if counts.shape[1] else 0
            single = image[item : item + 1].detach().clone().float().requires_grad_(True)
            maps.append(cam(single, class_idx=target)[0, 0].float().detach().cpu().numpy())
    return np.stack(maps)
