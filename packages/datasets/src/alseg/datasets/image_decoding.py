"""Decoding one image/mask pair of a 2D image folder (Pillow): checks, class map, optional resizing.

Images: ``channels=3`` needs RGB files (Pillow mode ``RGB``), ``channels=1`` grayscale ones (``L``, 16-bit ``I;16``,
32-bit ``I`` or float ``F``); anything else (a grayscale tile where RGB is expected, RGBA, palette images) is a data
error naming the file, never converted silently. Masks are single-channel (``L``, ``P`` — palette indices are the
values —, ``I;16``, ``I`` or ``1``) and must have the image's size.

Resizing (``image_size``, ``(H, W)``): images with Pillow's bilinear filter, whose support widens with the scale
factor when shrinking (antialiased, close to area averaging); masks after the class map, by nearest neighbour, so
classes never blend. Raw mask values are checked against the class map at full resolution.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from alseg.core.errors import DataError
from alseg.datasets.fingerprints import file_digest
from alseg.datasets.image_files import ImagePair
from alseg.datasets.labels import LabelScheme

RGB_MODES = ("RGB",)
GRAYSCALE_MODES = ("L", "I;16", "I;16L", "I;16B", "I", "F")
MASK_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I", "1")
_BILINEAR, _NEAREST = Image.Resampling.BILINEAR, Image.Resampling.NEAREST


@dataclass(frozen=True)
class DecodedImage:
    """The arrays of one decoded pair, as the items serve them (before intensity normalisation).

    Attributes:
        image: ``[C, H, W]``: ``uint8`` for 8-bit files, else ``uint16``/``int32``/``float32`` (resized: ``float32``).
        label: ``uint8 [H, W]`` class indices.
        source: Content fingerprint of the two files (BLAKE2b digests of their bytes, no paths).
    """

    image: np.ndarray
    label: np.ndarray
    source: str


def _describe(mode: str) -> str:
    bands = Image.getmodebands(mode)
    return f"mode {mode}, {bands} channel{'s' if bands != 1 else ''}"


def _image_array(opened: Image.Image, pair: ImagePair, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    modes = RGB_MODES if channels == 3 else GRAYSCALE_MODES
    if opened.mode not in modes:
        kind = "RGB" if channels == 3 else "grayscale"
        found = "a grayscale image" if opened.mode in GRAYSCALE_MODES else "an image"
        raise DataError(
            f"Image {pair.image}: {found} ({_describe(opened.mode)}), but {kind} images are expected "
            f"(channels={channels}; modes {', '.join(modes)})."
        )
    if size is not None:
        source = opened if opened.mode in ("RGB", "L") else opened.convert("F")
        array = np.asarray(source.resize(size[::-1], _BILINEAR))
        array = array.astype(np.float32) if opened.mode not in ("RGB", "L") else array
    else:
        array = np.asarray(opened)
    return np.ascontiguousarray(array.reshape(*array.shape[:2], channels).transpose(2, 0, 1))


def _mask_array(opened: Image.Image, pair: ImagePair) -> np.ndarray:
    if opened.mode not in MASK_MODES:
        raise DataError(
            f"Mask {pair.mask}: {_describe(opened.mode)}; masks must be single-channel images of class values "
            f"(modes {', '.join(MASK_MODES)})."
        )
    return np.asarray(opened).astype(np.int64)


def _load(path: Path, what: str) -> Image.Image:
    try:
        opened = Image.open(path)
        opened.load()
    except (OSError, Image.DecompressionBombError) as error:
        raise DataError(f"{what} {path} cannot be read as an image: {error}") from None
    return opened


def read_image_pair(
    pair: ImagePair, scheme: LabelScheme, channels: int, image_size: Sequence[int] | None = None
) -> DecodedImage:
    """Decode, check and (optionally) resize one image and its mask.

    Args:
        pair: The files.
        scheme: The class map (:func:`~alseg.datasets.class_maps.class_map_scheme`).
        channels: 3 for RGB images, 1 for grayscale.
        image_size: ``(H, W)`` to resize to, or None to keep the files' size.

    Raises:
        DataError: A file cannot be read, an image has the wrong mode (e.g. grayscale where RGB is expected), a mask
            is not single-channel or holds values outside the class map, or image and mask differ in size. Every
            message names the file.
    """
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    with _load(pair.image, "Image") as image_file, _load(pair.mask, "Mask") as mask_file:
        if image_file.size != mask_file.size:
            (w, h), (mw, mh) = image_file.size, mask_file.size
            raise DataError(
                f"Image {pair.image} is {h} x {w} (height x width) but its mask {pair.mask} is {mh} x {mw}; "
                "an image and its mask must have the same size."
            )
        image = _image_array(image_file, pair, channels, size)
        raw = _mask_array(mask_file, pair)
    label = scheme.convert(raw, pair.stem, str(pair.mask))
    if size is not None and label.shape != size:
        label = np.asarray(Image.fromarray(label).resize(size[::-1], _NEAREST))
    digests = {"image": file_digest(pair.image, pair.stem), "mask": file_digest(pair.mask, pair.stem)}
    return DecodedImage(image, label, json.dumps(digests))
