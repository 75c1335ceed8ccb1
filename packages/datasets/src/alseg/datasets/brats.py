"""BraTS (2020, 2021, 2023 GLI) as an active-learning data module; with no folder, a synthetic benchmark."""

from pathlib import Path
from typing import Any, Literal

from alseg.core.errors import ConfigError
from alseg.datasets.brats_layout import detect_release, discover_brats, resolve_modalities
from alseg.datasets.labels import brats_label_scheme
from alseg.datasets.synthetic import SyntheticBraTS, ensure_synthetic_brats
from alseg.datasets.volume_data_module import DatasetSource, VolumeDataModule


class BraTSDataModule(VolumeDataModule):
    """A BraTS training folder (one sub-folder per case, see :mod:`alseg.datasets.brats_layout`).

    ``data_dir=None`` selects generated data (:func:`~alseg.datasets.synthetic.ensure_synthetic_brats`),
    made once into ``<cache root>/synthetic/`` and reused. By default (``synthetic=None``) that is the
    built-in synthetic benchmark: 12 cases of ``48 x 48 x 32`` voxels, with the default split 8
    training cases (about 200 non-empty axial slices), 2 validation and 2 test cases — small enough
    for a 2D experiment of a few rounds in about two minutes on two CPU cores. ``synthetic``
    chooses other generated data (more cases for stable validation and test metrics, say).

    Args:
        data_dir: The BraTS folder (its cases need ``seg`` files), or ``None`` for synthetic data.
        release: ``"2020"``, ``"2021"`` or ``"2023"``; ``None`` detects it from folder names.
        modalities: Channels in order, any release's names; default ``flair, t1, t1ce, t2``.
        synthetic: Options of the generated data when ``data_dir`` is None (default: the built-in
            benchmark's, :class:`~alseg.datasets.synthetic.SyntheticBraTS`).
        label_mode: ``"multilabel"``: channels TC, WT, ET, ``uint8 [3, *spatial]`` (sigmoid
            outputs); ``"multiclass"``: classes background, necrotic core, edema, enhancing,
            ``int64 [1, *spatial]`` (softmax outputs); ``"binary"``: classes background, tumour (every
            label merged into one foreground class), ``int64 [1, *spatial]``.
        **kwargs: Options of :class:`~alseg.datasets.volume_data_module.VolumeDataModule`
            (``dim``, split, initial set, cache and loader options).
    """

    def __init__(
        self,
        data_dir: str | None = None,
        release: Literal["2020", "2021", "2023"] | None = None,
        modalities: list[str] | None = None,
        label_mode: Literal["multilabel", "multiclass", "binary"] = "multilabel",
        synthetic: SyntheticBraTS | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if synthetic is not None and data_dir is not None:
            raise ConfigError(
                f"The 'synthetic' option of the brats data module applies without a 'data_dir' only. Got data_dir "
                f"{data_dir!r} and synthetic {synthetic}."
            )
        brats_label_scheme(release or "2021", label_mode)  # checks both options now; the scheme needs the data
        self.data_dir = data_dir
        self.release = release
        self.modalities = resolve_modalities(modalities)
        self.label_mode = label_mode
        self.synthetic = synthetic or SyntheticBraTS()

    def _discover(self, cache_root: Path) -> DatasetSource:
        if self.data_dir is None:
            data_dir = ensure_synthetic_brats(cache_root / "synthetic", self.synthetic, self.release or "2021")
        else:
            data_dir = Path(self.data_dir).expanduser()
        cases = discover_brats(data_dir, self.release, self.modalities)
        scheme = brats_label_scheme(self.release or detect_release(data_dir), self.label_mode)
        return DatasetSource(data_dir, cases, scheme)
