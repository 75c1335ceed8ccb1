"""Per-channel intensity normalisation of 2D images (RGB tiles, grayscale images).

The ``normalization`` option of the image-folder data modules (:data:`IMAGE_NORMALIZATIONS`):

* ``"training"`` (default): z-score every channel with the mean and standard deviation of all pixels of the
  *training* split's images (as served: after resizing; the pool's images are training images, the validation and
  test images never enter the statistics). It fits models trained from scratch, such as alseg's U-Net, on any
  stain or scanner: the inputs are centred on the data itself. The statistics need no labels.
* ``"imagenet"``: ImageNet's mean and std (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`) of 8-bit RGB values
  scaled to [0, 1], for encoders pre-trained on ImageNet, which expect exactly these inputs.

The cached arrays keep the decoded values; items are normalised when they are read.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from alseg.core.errors import ConfigError, DataError

IMAGE_NORMALIZATIONS = ("training", "imagenet")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_image_normalization(normalization: str, channels: int) -> str:
    """``normalization`` if it is one of :data:`IMAGE_NORMALIZATIONS` and fits the channels.

    Raises:
        ConfigError: Unknown value (the message lists the options), or ``"imagenet"`` for grayscale images.
    """
    if normalization not in IMAGE_NORMALIZATIONS:
        raise ConfigError(
            f"The 'normalization' option of the image-folder data module must be one of "
            f"{', '.join(IMAGE_NORMALIZATIONS)}. Got {normalization!r}."
        )
    if normalization == "imagenet" and channels != 3:
        raise ConfigError(f"The 'imagenet' normalization is for RGB images (channels=3). Got channels={channels}.")
    return normalization


@dataclass(frozen=True)
class ChannelNormalizer:
    """``(image / scale - mean) / std``, channel by channel.

    Attributes:
        mean: Per channel, the mean subtracted (after scaling).
        std: Per channel, the standard deviation divided by (never 0).
        scale: Divides the decoded values first (255 for ImageNet's [0, 1] statistics, else 1).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Normalise ``[C, H, W]`` decoded values into ``float32 [C, H, W]``."""
        mean = np.asarray(self.mean, np.float32)[:, None, None]
        std = np.asarray(self.std, np.float32)[:, None, None]
        return ((image.astype(np.float32) / np.float32(self.scale) - mean) / std).astype(np.float32)

    def description(self) -> dict:
        """JSON-able description, part of the data fingerprint."""
        return {"mean": list(self.mean), "std": list(self.std), "scale": self.scale}


def fit_channel_normalizer(normalization: str, images: Iterable[np.ndarray], channels: int) -> ChannelNormalizer:
    """The normaliser of one dataset.

    Args:
        normalization: ``"training"`` or ``"imagenet"`` (see the module doc).
        images: The training split's decoded images ``[C, H, W]``; read only for ``"training"``.
        channels: ``C``.

    Raises:
        DataError: ``"training"`` without training images, or ``"imagenet"`` with images that are not 8-bit.
    """
    check_image_normalization(normalization, channels)
    images = list(images)
    if normalization == "imagenet":
        if any(image.dtype != np.uint8 for image in images):
            raise DataError("The 'imagenet' normalization needs 8-bit RGB images (values 0-255), as decoded.")
        return ChannelNormalizer(IMAGENET_MEAN, IMAGENET_STD, 255.0)
    if not images:
        raise DataError("The 'training' normalization needs training images; the training split is empty.")
    total = np.zeros(channels)
    squares = np.zeros(channels)
    count = 0
    for image in images:
        values = image.reshape(channels, -1).astype(np.float64)
        total += values.sum(1)
        squares += np.square(values).sum(1)
        count += values.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return ChannelNormalizer(tuple(float(m) for m in mean), tuple(float(s) if s > 1e-8 else 1.0 for s in std))
