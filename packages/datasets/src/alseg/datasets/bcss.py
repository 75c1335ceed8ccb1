"""BCSS (Breast Cancer Semantic Segmentation) as an active-learning data module (``bcss``)."""

from pathlib import Path
from typing import Any

from alseg.core.errors import ConfigError
from alseg.datasets.bcss_layout import DEFAULT_TARGET_CLASSES, bcss_class_map, bcss_value, parse_tile_name
from alseg.datasets.image_files import ImagePair
from alseg.datasets.image_folder import ImageFolderDataModule
from alseg.datasets.splits import CaseSplit
from alseg.datasets.stratified_split import split_stratified
from alseg.datasets.synthetic_bcss import SyntheticBCSS, ensure_synthetic_bcss
from alseg.datasets.volume_data_module import cache_root


class BCSSDataModule(ImageFolderDataModule):
    """A BCSS folder: ``images/`` (RGB tiles) and ``masks/`` (BCSS label values), see :mod:`alseg.datasets.bcss_layout`.

    Tiles are items of :class:`~alseg.datasets.image_folder.ImageFolderDataModule` (id = file stem); the TCGA patient
    of a tile (``TCGA-A1-A0SK``) is its case and the tissue source site (``A1``) its institute. The split is
    stratified by institute (:func:`~alseg.datasets.stratified_split.split_stratified`): every institute's cases
    spread over training, validation and test by the fractions, each institute keeps a training case, and a case's
    tiles never straddle splits. ``test_institutes`` instead makes the test set of whole institutes, as the BCSS
    challenge does with ``[OL, LL, E2, EW, GM, S3]`` (:data:`~alseg.datasets.bcss_layout.BCSS_TEST_INSTITUTES`).

    RGB normalisation defaults to ``"training"``: per-channel mean and std of the training tiles' pixels. The
    reference U-Net is trained from scratch, and H&E colours (pink and purple on a bright background, varying with
    the institute's staining) lie far from ImageNet's photographs; ``normalization="imagenet"`` suits encoders
    pre-trained on ImageNet.

    ``data_dir=None`` selects generated data (:func:`~alseg.datasets.synthetic_bcss.ensure_synthetic_bcss`, options
    ``synthetic``), made once into ``<cache root>/synthetic/`` (``cache_dir``, else ``$ALSEG_CACHE``, else
    ``~/.cache/alseg``) and reused: by default 96 tiles of 64 x 64 from 48 cases of 12 institutes.

    Args:
        data_dir: The BCSS folder (``images/``, ``masks/``), or None for synthetic data.
        target_classes: BCSS label names kept as classes of their own; ``outside_roi`` becomes ``background`` and
            every other label (not ignored) ``other``. Default: tumor, stroma, lymphocytic_infiltrate,
            necrosis_or_debris. Not with ``classes``.
        classes: A full class map (mask value → class name, values sharing a name merged) instead of
            ``target_classes``.
        ignore: BCSS labels (values or names, e.g. ``exclude``) allowed in masks without a class of their own (their
            pixels are unknown, left out by the losses and metrics; see :mod:`alseg.datasets.class_maps`).
        test_institutes: Institutes whose cases form the test set; validation cases then come from the others. Not
            with ``test_fraction``.
        test_fraction: Fraction of cases for testing, spread over the institutes (default 0.2 without
            ``test_institutes``).
        synthetic: Options of the generated data when ``data_dir`` is None.
        cache_dir: Cache root, where generated data is kept.
        **kwargs: Options of :class:`~alseg.datasets.image_folder.ImageFolderDataModule` (``image_size``,
            ``normalization``, ``val_fraction``, ``split_seed``, initial set, loader options).
    """

    def __init__(
        self,
        data_dir: str | None = None,
        target_classes: list[str] | None = None,
        classes: dict[int, str] | None = None,
        ignore: list[int | str] | None = None,
        test_institutes: list[str] | None = None,
        test_fraction: float | None = None,
        synthetic: SyntheticBCSS | None = None,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        if classes is not None and target_classes is not None:
            raise ConfigError("Give the bcss data module 'target_classes' or 'classes', not both.")
        if test_institutes is not None and test_fraction is not None:
            raise ConfigError(
                f"Give the bcss data module 'test_institutes' or 'test_fraction', not both. Got test_institutes "
                f"{test_institutes} and test_fraction {test_fraction}."
            )
        if synthetic is not None and data_dir is not None:
            raise ConfigError(
                f"The 'synthetic' option of the bcss data module applies without a 'data_dir' only. Got data_dir "
                f"{data_dir!r} and synthetic {synthetic}."
            )
        ignored = [bcss_value(label, "ignore") for label in ignore or ()]
        if classes is None:
            classes = bcss_class_map(DEFAULT_TARGET_CLASSES if target_classes is None else target_classes, ignored)
        fraction = 0.0 if test_institutes is not None else 0.2 if test_fraction is None else test_fraction
        super().__init__(
            data_dir=data_dir or "", classes=classes, ignore=ignored, channels=3, test_fraction=fraction, **kwargs
        )
        self.data_dir = data_dir  # None: folder() generates the data
        self.test_institutes = None if test_institutes is None else [str(code) for code in test_institutes]
        self.synthetic = synthetic or SyntheticBCSS()
        self.cache_root = cache_root(cache_dir)

    def folder(self) -> Path:
        """The BCSS folder; without ``data_dir``, the synthetic data (generated on first use)."""
        if self.data_dir is None:
            return ensure_synthetic_bcss(self.cache_root / "synthetic", self.synthetic)
        return Path(self.data_dir).expanduser()

    def case_of(self, pair: ImagePair) -> str:
        """The TCGA patient of a tile, e.g. ``TCGA-A1-A0SK``.

        Raises:
            DataError: The tile's name does not follow the BCSS convention (the message names the file).
        """
        return parse_tile_name(pair.stem, pair.image).case_id

    def split(self, cases: dict[str, str]) -> CaseSplit:
        """The split stratified by institute (or with the ``test_institutes`` as test set)."""
        institutes = {case: parse_tile_name(case).institute for case in cases.values()}
        return split_stratified(
            cases,
            institutes,
            self.val_fraction,
            self.test_fraction,
            self.split_seed,
            test_strata=self.test_institutes,
            stratum_name="institute",
        )
