"""A MONAI U-Net (:class:`monai.networks.nets.UNet`) as an alseg model, in 2D or 3D."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from monai.inferers import sliding_window_inference
from monai.networks.layers import SkipConnection
from monai.networks.nets import UNet as MonaiUNet
from torch import nn

from alseg.core.errors import ConfigError, DataError, PluginError
from alseg.core.model import PytorchModel


class UNet(PytorchModel):
    """MONAI's residual U-Net, sized from the data: softmax outputs for classes, sigmoids for multi-label data.

    Level ``l`` (0 = top) has ``base_channels * 2**l`` channels; every level but the deepest halves the spatial size
    with a strided convolution (MONAI downsamples at the start of each level), so the network's input must have
    spatial sizes divisible by ``2**(num_levels - 1)``; other sizes raise :class:`DataError` rather than being padded
    (crop or pad in the data module). Every convolution except the last one is followed by norm → dropout →
    PReLU, so with ``dropout > 0`` the network has ``torch.nn.Dropout`` layers for MC-dropout sampling.

    With ``roi_size`` set, validation, testing, prediction and embeddings use MONAI's sliding-window inference with
    windows of that size, so volumes of any size (larger or smaller than the window) are processed; training always
    runs on whole items, so training items must then be patches of a divisible size.

    Args:
        dim: Spatial dimensions of the items, 2 (slices) or 3 (volumes).
        num_levels: Resolution levels of the U-Net (>= 2); the deepest one is the bottleneck.
        base_channels: Channels of the top level; they double with every level.
        num_res_units: Residual units per level (0: one plain convolution per level).
        dropout: Dropout probability after every convolution but the last, in [0, 1).
        norm: Feature normalisation, ``instance`` or ``batch``.
        roi_size: Window size of sliding-window inference (``dim`` sizes, each divisible by
            ``2**(num_levels - 1)``), or None to run on whole items.
        sw_batch_size: Windows per forward pass in sliding-window inference.
        overlap: Overlap of neighbouring windows, in [0, 1).
        sw_mode: Blending of overlapping windows, ``gaussian`` or ``constant``.
        **kwargs: Options of :class:`~alseg.core.model.PytorchModel` (learning rate, optimizer, loss, …).
    """

    def __init__(
        self,
        dim: int = 2,
        num_levels: int = 4,
        base_channels: int = 16,
        num_res_units: int = 0,
        dropout: float = 0.1,
        norm: Literal["instance", "batch"] = "instance",
        roi_size: list[int] | None = None,
        sw_batch_size: int = 4,
        overlap: float = 0.25,
        sw_mode: Literal["gaussian", "constant"] = "gaussian",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_option("dim", dim, dim in (2, 3), "2 or 3")
        _check_option("num_levels", num_levels, _is_int(num_levels) and num_levels >= 2, "an integer >= 2")
        _check_option("base_channels", base_channels, _is_int(base_channels) and base_channels >= 1, "an integer >= 1")
        _check_option("num_res_units", num_res_units, _is_int(num_res_units) and num_res_units >= 0, "an integer >= 0")
        _check_option("dropout", dropout, 0 <= dropout < 1, "in [0, 1)")
        _check_option("norm", norm, norm in ("instance", "batch"), "one of: batch, instance")
        _check_option("sw_batch_size", sw_batch_size, _is_int(sw_batch_size) and sw_batch_size >= 1, "an integer >= 1")
        _check_option("overlap", overlap, 0 <= overlap < 1, "in [0, 1)")
        _check_option("sw_mode", sw_mode, sw_mode in ("constant", "gaussian"), "one of: constant, gaussian")
        self.divisor = 2 ** (num_levels - 1)
        if roi_size is not None:
            valid = len(roi_size) == dim and all(_is_int(s) and s > 0 and s % self.divisor == 0 for s in roi_size)
            _check_option("roi_size", roi_size, valid, f"{dim} sizes, each a positive multiple of {self.divisor}")
        self.dim = dim
        self.num_levels = num_levels
        self.base_channels = base_channels
        self.num_res_units = num_res_units
        self.dropout = dropout
        self.norm = norm
        self.roi_size = list(roi_size) if roi_size is not None else None
        self.sw_batch_size = sw_batch_size
        self.overlap = overlap
        self.sw_mode = sw_mode
        self.net: MonaiUNet | None = None

    def configure_model(self) -> None:
        """Builds the MONAI network once the data module has sized the model (later calls keep it)."""
        if self.net is not None or self.in_channels is None:
            return
        self.net = MonaiUNet(
            spatial_dims=self.dim,
            in_channels=self.in_channels,
            out_channels=self.num_classes,
            channels=[self.base_channels * 2**level for level in range(self.num_levels)],
            strides=[2] * (self.num_levels - 1),
            num_res_units=self.num_res_units,
            norm=self.norm,
            dropout=self.dropout or None,  # None: no dropout layers, so MC dropout fails loudly instead of p=0
        )

    def input_dimensionality(self) -> int:
        """Returns ``dim``."""
        return self.dim

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Returns logits ``[B, num_classes, *spatial]`` of whole images ``[B, in_channels, *spatial]``."""
        self._check_image(image, tiled=False)
        return self._network()(image)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Returns the configured loss of a batch (pseudo-labelled items weighted) and logs it as ``train/loss``."""
        return self.training_loss(self(batch["image"]), batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Logs ``val/loss`` and adds the batch to the validation metrics."""
        self._evaluate("val", batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Logs ``test/loss`` and adds the batch to the test metrics."""
        self._evaluate("test", batch)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Returns float32 probabilities ``[B, num_classes, *spatial]``; reads only ``batch["image"]``."""
        return self.probabilities(self._infer(batch["image"], self._network()))

    def embedding_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Returns the bottleneck features, globally average-pooled: float32 ``[B, base_channels * 2**(L-1)]``.

        Only the encoder runs. With ``roi_size`` the bottleneck maps of the windows are stitched by sliding-window
        inference (at the bottleneck's resolution) before pooling.
        """
        features = self._infer(batch["image"], self._bottleneck)
        return features.flatten(2).mean(dim=2).float()

    # ------------------------------------------------------------------------------------------------------ helpers
    def _evaluate(self, stage: str, batch: dict[str, Any]) -> None:
        self.evaluate(stage, self._infer(batch["image"], self._network()), batch)

    def _infer(self, image: torch.Tensor, predictor: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Runs ``predictor`` on the whole image, or window by window when ``roi_size`` is set."""
        self._check_image(image, tiled=self.roi_size is not None)
        if self.roi_size is None:
            return predictor(image)
        return sliding_window_inference(  # a tensor, as the predictor returns one
            image, self.roi_size, self.sw_batch_size, predictor, overlap=self.overlap, mode=self.sw_mode
        )

    def _bottleneck(self, image: torch.Tensor) -> torch.Tensor:
        """Returns the bottleneck feature map ``[B, D, *spatial / 2**(L-1)]``, running the encoder only.

        Walks the structure MONAI documents for its U-Net (``UNet._get_connection_block``): each level is
        ``Sequential(down, SkipConnection(next level), up)`` and the deepest level is a single block.
        """
        block: nn.Module = self._network().model
        while isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], SkipConnection):
            image = block[0](image)
            block = block[1].submodule
        return block(image)

    def _network(self) -> MonaiUNet:
        if self.net is None:
            raise PluginError(
                "UNet has no layers yet: call bind_data(data_module) first (the Trainer and the pipeline do)."
            )
        return self.net

    def _check_image(self, image: torch.Tensor, tiled: bool) -> None:
        """Raises DataError unless ``image`` is ``[B, C, *spatial]`` with sizes the network (or tiling) accepts."""
        shape = tuple(image.shape)
        if image.ndim != self.dim + 2:
            raise DataError(f"UNet with dim={self.dim} needs images [B, C, {self.dim} sizes]. Got shape {shape}.")
        if not tiled and any(size % self.divisor for size in shape[2:]):
            raise DataError(
                f"UNet with num_levels={self.num_levels} needs spatial sizes divisible by {self.divisor}. "
                f"Got image shape {shape}. Crop or pad the items in the data module, or set roi_size for "
                "sliding-window inference."
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_option(name: str, value: Any, valid: bool, constraint: str) -> None:
    if not valid:
        raise ConfigError(f"The '{name}' option of the unet model must be {constraint}. Got {value!r}.")
