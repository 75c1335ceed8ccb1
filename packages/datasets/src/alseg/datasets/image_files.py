"""Discovery of a 2D image folder: ``images/`` and ``masks/`` files matched by file stem.

Expected layout::

    data_dir/
        images/  a.png  b.tif  ...   # RGB (or grayscale) images
        masks/   a.png  b.png  ...   # single-channel label images, values of the class map

An image and its mask share a stem (the file name without extension); extensions may differ (``a.tif`` with
``a.png``). Files ending in ``.png``, ``.tif`` or ``.tiff`` (any case) count; hidden files (``.a.png``, macOS ``._a``
copies) and files of other types are passed over. Every image needs a mask and every mask an image.
"""

from dataclasses import dataclass
from pathlib import Path

from alseg.core.errors import DataError

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff")
FOLDERS = ("images", "masks")


@dataclass(frozen=True)
class ImagePair:
    """One labelled image of an image folder.

    Attributes:
        stem: The file stem shared by image and mask: the item id.
        image: The image file.
        mask: The mask (label) file.
    """

    stem: str
    image: Path
    mask: Path


def _files(folder: Path) -> dict[str, Path]:
    """Stem → file of the image files directly in ``folder``.

    Raises:
        DataError: Two files share a stem (``a.png`` and ``a.tif``).
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in found:
            raise DataError(
                f"{folder}: {found[path.stem].name} and {path.name} share the stem {path.stem!r}; keep one."
            )
        found[path.stem] = path
    return found


def _listing(names: list[str], limit: int = 10) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def discover_image_pairs(data_dir: str | Path) -> list[ImagePair]:
    """The image/mask pairs of an image folder, sorted by stem.

    Raises:
        DataError: ``images/`` or ``masks/`` is missing, holds no image files, a stem occurs twice in one folder,
            or images and masks do not match (the message lists the unmatched files).
    """
    root = Path(data_dir)
    for name in FOLDERS:
        if not (root / name).is_dir():
            raise DataError(
                f"Image folder {root} has no {name}/ folder. Expected images/ and masks/ holding PNG or TIFF files "
                "that share file stems (images/a.png with masks/a.png)."
            )
    images, masks = _files(root / "images"), _files(root / "masks")
    without_mask = sorted(images[stem].name for stem in set(images) - set(masks))
    without_image = sorted(masks[stem].name for stem in set(masks) - set(images))
    if without_mask or without_image:
        problems = []
        if without_mask:
            problems.append(f"images without a mask in {root / 'masks'}: {_listing(without_mask)}")
        if without_image:
            problems.append(f"masks without an image in {root / 'images'}: {_listing(without_image)}")
        raise DataError(f"Image folder {root}: {'; '.join(problems)}. Images and masks are matched by file stem.")
    if not images:
        raise DataError(f"Image folder {root}: images/ holds no {', '.join(IMAGE_EXTENSIONS)} files.")
    return [ImagePair(stem, images[stem], masks[stem]) for stem in sorted(images)]
