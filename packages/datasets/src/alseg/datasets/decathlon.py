"""A Medical Segmentation Decathlon task as an active-learning data module."""

from pathlib import Path
from typing import Any, Literal

from alseg.datasets.labels import decathlon_label_scheme
from alseg.datasets.msd_layout import discover_decathlon, read_dataset_json
from alseg.datasets.volume_data_module import DatasetSource, VolumeDataModule


class DecathlonDataModule(VolumeDataModule):
    """The labelled ``training`` cases of a task folder (see :mod:`alseg.datasets.msd_layout`).

    Validation and test cases are split off the training cases: ``imagesTs`` has no labels, so it
    is never used as a test set.

    Args:
        data_dir: The task folder, holding ``dataset.json``.
        modalities: Channels in order, by their ``dataset.json`` names (case-insensitive);
            default all, in file order.
        regions: Region name → member label values for multi-label targets ``uint8 [R,
            *spatial]`` (e.g. :data:`~alseg.datasets.labels.MSD_BRAIN_TUMOUR_REGIONS` for
            Task01); default single-label classes of ``dataset.json``, ``int64 [1, *spatial]``.
        label_mode: ``"multilabel"`` (needs ``regions``), ``"multiclass"`` (the classes of ``dataset.json``) or
            ``"binary"`` (background and one foreground class, every non-zero label merged), see
            :func:`~alseg.datasets.labels.decathlon_label_scheme`; ``None``: ``"multilabel"`` with ``regions``,
            else ``"multiclass"``.
        **kwargs: Options of :class:`~alseg.datasets.volume_data_module.VolumeDataModule`
            (``dim``, split, initial set, cache and loader options).
    """

    def __init__(
        self,
        data_dir: str,
        modalities: list[str] | None = None,
        regions: dict[str, list[int]] | None = None,
        label_mode: Literal["multilabel", "multiclass", "binary"] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_dir = data_dir
        self.modalities = modalities
        self.regions = regions
        self.label_mode = label_mode

    def _discover(self, cache_root: Path) -> DatasetSource:
        data_dir = Path(self.data_dir).expanduser()
        labels = read_dataset_json(data_dir).labels
        cases = discover_decathlon(data_dir, "training", self.modalities)
        return DatasetSource(data_dir, cases, decathlon_label_scheme(labels, self.regions, self.label_mode))
