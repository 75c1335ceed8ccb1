"""A custom model: a two-level 2D U-Net with dropout, as a PytorchModel.

Runs as it is: ``tests/docs/test_examples.py`` checks it with the conformance kit and trains it through
``alseg-train`` (see the Extending page of the documentation).
"""

from typing import Any

import torch
from torch import nn

from alseg.core import PytorchModel


def conv_block(in_channels: int, out_channels: int, dropout: float) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by instance norm and ReLU, then channel dropout."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.InstanceNorm2d(out_channels, affine=True),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.InstanceNorm2d(out_channels, affine=True),
        nn.ReLU(),
        nn.Dropout2d(dropout),
    )


class SmallUNet(PytorchModel):
    """Encoder, bottleneck and decoder with one skip connection; inputs need even height and width.

    Args:
        channels: Feature channels of the first level (doubled in the bottleneck).
        dropout: Channel dropout after every block; > 0 lets MC-dropout strategies (BALD) sample.
        **kwargs: Options of PytorchModel: learning_rate, optimizer, loss, ...
    """

    def __init__(self, channels: int = 8, dropout: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = channels
        self.dropout = dropout
        self.encoder: nn.Module | None = None

    def configure_model(self) -> None:
        # The base sets in_channels and num_classes from the data module, then calls this hook (at every stage).
        if self.encoder is not None:
            return
        c = self.channels
        self.encoder = conv_block(self.in_channels, c, self.dropout)
        self.bottleneck = nn.Sequential(nn.MaxPool2d(2), conv_block(c, 2 * c, self.dropout))
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.decoder = conv_block(2 * c, c, self.dropout)
        self.head = nn.Conv2d(c, self.num_classes, 1)

    def input_dimensionality(self) -> int:
        return 2  # items are 2D slices [C, H, W]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Returns logits [B, num_classes, H, W] of images [B, in_channels, H, W]."""
        skip = self.encoder(image)
        deep = self.bottleneck(skip)
        return self.head(self.decoder(torch.cat([skip, self.up(deep)], dim=1)))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        # The configured loss (dice_ce by default), pseudo-labelled items weighted; logged as train/loss.
        return self.training_loss(self(batch["image"]), batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # val/loss and the per-volume metrics (val/mean_dice, ...), logged at the end of the epoch.
        self.evaluate("val", self(batch["image"]), batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.evaluate("test", self(batch["image"]), batch)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        # float32 [B, C, H, W]: softmax over classes, or sigmoids for multi-label data. Never reads batch["label"].
        return self.probabilities(self(batch["image"]))

    def embedding_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        # Optional: one feature vector per item [B, 2 * channels], for core-set and representativeness.
        return self.bottleneck(self.encoder(batch["image"])).mean(dim=(2, 3)).float()
