"""A folder of 2D images and masks as an active-learning data module (``image_folder``)."""

import json
from pathlib import Path

from alseg.core.errors import ConfigError
from alseg.datasets.class_maps import class_map_scheme
from alseg.datasets.fingerprints import json_digest
from alseg.datasets.image_decoding import DecodedImage, read_image_pair
from alseg.datasets.image_files import ImagePair, discover_image_pairs
from alseg.datasets.image_items import ImageReader
from alseg.datasets.image_normalization import check_image_normalization, fit_channel_normalizer
from alseg.datasets.item_set_data_module import ItemSetDataModule
from alseg.datasets.item_sets import ItemSets
from alseg.datasets.splits import CaseSplit, choose_initial, split_cases


class ImageFolderDataModule(ItemSetDataModule):
    """``images/`` and ``masks/`` of PNG or TIFF files matched by stem (see :mod:`alseg.datasets.image_files`).

    Items are whole 2D images, id = the file stem (see :mod:`alseg.datasets.image_items`): ``image`` ``float32
    [C, H, W]`` normalised per channel (``normalization``, :mod:`alseg.datasets.image_normalization`), ``label``
    ``int64 [1, H, W]`` class indices of the single-label (softmax) classes of ``classes``
    (:mod:`alseg.datasets.class_maps`).

    Decoding: on the first ``setup()`` every pair is decoded once (Pillow), checked, mapped to classes and resized,
    and the arrays are kept in memory for the whole run (``uint8`` for 8-bit files: 4 bytes a pixel for RGB and its
    label), so epochs and rounds never decode again. Images are small tiles in the intended use; for large images
    (e.g. whole BCSS regions of several thousand pixels a side) set ``image_size`` or tile them first.

    Split: images are grouped into cases by :meth:`case_of` (each image its own case here; a subclass may group the
    tiles of one slide or patient), and the cases are split by :meth:`split` into training, validation and test
    cases; ``round(fraction x cases)`` (at least one for a positive fraction) by a permutation seeded with
    ``split_seed``. A case's images never straddle splits. ``initial_training_set_size`` training images are
    labelled at the start, drawn with ``seed`` without looking at labels; the other training images form the pool.

    Args:
        data_dir: The folder holding ``images/`` and ``masks/``.
        classes: Mask value → class name; values sharing a name are merged. Class indices follow the smallest
            value of each class (class 0 is the background of the metrics).
        ignore: Mask values allowed without a class of their own: their pixels are unknown (``UNKNOWN``), left out
            by the losses and the metrics. Any other value outside ``classes`` is a ``DataError`` naming the mask.
        channels: 3 (RGB files) or 1 (grayscale files); files of another kind are a ``DataError``.
        image_size: ``(H, W)`` to resize every image (bilinear, antialiased) and mask (nearest) to; None keeps the
            files' sizes (then images of different sizes need ``batch_size`` and ``pool_batch_size`` 1).
        normalization: ``"training"`` (per-channel mean/std of the training split's pixels) or ``"imagenet"``.
        val_fraction: Fraction of cases for validation, in [0, 1).
        test_fraction: Fraction of cases for testing, in [0, 1).
        split_seed: Seed of the case split (apart from ``seed``, so runs with different seeds share a test set).
        initial_training_set_size: Images labelled at the start.
        seed: Seed of the initial labelled set; None takes the run's seed under ``alseg-train`` and 0 elsewhere.
        batch_size: Batch size of training, validation and test.
        pool_batch_size: Batch size over the pool (default ``batch_size``).
        num_workers: DataLoader worker processes.
        pin_memory: Passed to every DataLoader.
        items_per_epoch: Training items (slices or patches) per epoch, drawn with replacement from the labelled
            set; None: each labelled item once (:class:`~alseg.core.data_module.ActiveLearningDataModule`).
    """

    def __init__(
        self,
        data_dir: str,
        classes: dict[int, str],
        ignore: list[int] | None = None,
        channels: int = 3,
        image_size: tuple[int, int] | None = None,
        normalization: str = "training",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        initial_training_set_size: int = 16,
        seed: int | None = None,
        batch_size: int = 4,
        pool_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        items_per_epoch: int | None = None,
    ) -> None:
        super().__init__(batch_size, pool_batch_size, num_workers, pin_memory, items_per_epoch)
        if channels not in (1, 3):
            raise ConfigError(
                f"The 'channels' option of the image-folder data module must be 1 or 3. Got {channels!r}."
            )
        if image_size is not None and (
            len(image_size) != 2 or not all(isinstance(n, int) and n > 0 for n in image_size)
        ):
            raise ConfigError(
                f"The 'image_size' option must be two positive integers (H, W) or null. Got {image_size!r}."
            )
        self.data_dir = data_dir
        self.label_scheme = class_map_scheme(classes, ignore or ())
        self.channels = channels
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.normalization = check_image_normalization(normalization, channels)
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.initial_training_set_size = initial_training_set_size
        self.seed = 0 if seed is None else seed
        self._prepared: tuple[ItemSets, CaseSplit, str] | None = None

    def folder(self) -> Path:
        """The folder holding ``images/`` and ``masks/`` (a subclass may generate it first)."""
        return Path(self.data_dir).expanduser()

    def case_of(self, pair: ImagePair) -> str:
        """The case (slide, patient) an image belongs to, for the split: here every image is its own case.

        Raises:
            DataError: The file name does not follow the naming convention of a subclass (the message names it).
        """
        return pair.stem

    def split(self, cases: dict[str, str]) -> CaseSplit:
        """The split of the images (stem → case), by case; ``val_fraction``/``test_fraction`` count cases."""
        fractions = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        return split_cases(sorted(cases), **fractions, seed=self.split_seed, patients=cases)

    def _item_sets(self) -> ItemSets:
        if self._prepared is None:
            self._prepared = self._prepare()
        return self._prepared[0]

    def case_split(self) -> CaseSplit:
        """The split of the image ids (decodes the data on first use)."""
        self._item_sets()
        assert self._prepared is not None
        return self._prepared[1]

    def _prepare(self) -> tuple[ItemSets, CaseSplit, str]:
        pairs = discover_image_pairs(self.folder())
        cases = {pair.stem: self.case_of(pair) for pair in pairs}  # bad names fail before any decoding
        decoded = {
            pair.stem: read_image_pair(pair, self.label_scheme, self.channels, self.image_size) for pair in pairs
        }
        self._check_batch_sizes(decoded)
        split = self.split(cases)
        normalizer = fit_channel_normalizer(self.normalization, (decoded[s].image for s in split.train), self.channels)
        reader = ImageReader(decoded, self.label_scheme.class_names, normalizer)
        initial = choose_initial(split.train, self.initial_training_set_size, self.seed)
        chosen = set(initial)
        pool = [stem for stem in split.train if stem not in chosen]
        sets = ItemSets(reader, initial, pool, list(split.val), list(split.test), type(self).__name__)
        fingerprint = {
            "images": {stem: json.loads(decoded[stem].source) for stem in sorted(decoded)},
            "split": {"train": split.train, "val": split.val, "test": split.test},
            "classes": [self.label_scheme.name, list(self.label_scheme.class_names)],
            "items": {"channels": self.channels, "image_size": self.image_size},
            "normalization": [self.normalization, normalizer.description()],
        }
        return sets, split, json_digest(fingerprint)

    def _check_batch_sizes(self, decoded: dict[str, DecodedImage]) -> None:
        sizes = {stem: image.label.shape for stem, image in decoded.items()}
        first = next(iter(sizes))
        other = next((stem for stem, size in sizes.items() if size != sizes[first]), None)
        if other is not None and max(self.batch_size, self.pool_batch_size) > 1:
            raise ConfigError(
                f"The images differ in size ({first}: {sizes[first]}, {other}: {sizes[other]}), so they cannot share "
                f"a batch: set 'image_size', or 'batch_size' and 'pool_batch_size' to 1. Got batch_size "
                f"{self.batch_size} and pool_batch_size {self.pool_batch_size}."
            )

    def data_fingerprint(self) -> str:
        """64 hex digits over the data a run depends on; it changes whenever the images, masks, split or options do.

        Hashes the BLAKE2b digests of every image's and mask's bytes (keyed by stem, without paths, so a moved
        copy keeps its fingerprint), the split, the class map, ``channels``, ``image_size`` and the normalisation
        with its statistics.
        """
        self._item_sets()
        assert self._prepared is not None
        return self._prepared[2]

    def id_to_class_names(self) -> dict[int, str]:
        """Class names by class index, from the class map."""
        return dict(enumerate(self.label_scheme.class_names))

    def multi_label(self) -> bool:
        """False: one softmax class per pixel."""
        return False

    def data_channels(self) -> int:
        """``channels`` (3 for RGB, 1 for grayscale), without decoding."""
        return self.channels
