"""Shared base of the reference data modules: cases on disk → decode-once cache → split, pool and oracle.

Subclasses only say how to find the cases and their label scheme (:meth:`VolumeDataModule._discover`).
"""

import hashlib
import json
import math
import os
from abc import abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.cache import PreprocessOptions, VolumeCache
from alseg.datasets.cases import Case
from alseg.datasets.fingerprints import json_digest
from alseg.datasets.item_datasets import ItemDataset, ItemReader
from alseg.datasets.item_set_data_module import ItemSetDataModule
from alseg.datasets.item_sets import ItemSets
from alseg.datasets.items import AXIAL, item_ids
from alseg.datasets.labels import LabelScheme
from alseg.datasets.normalization import Normalizer, channel_schemes, check_normalization, fit_normalizer
from alseg.datasets.patch_items import format_patch_id, grid_boxes
from alseg.datasets.patch_options import PatchOptions, resolve_unit
from alseg.datasets.patch_reader import PatchReader
from alseg.datasets.patch_sets import PatchSets
from alseg.datasets.patches import PatchSampler
from alseg.datasets.splits import CaseSplit, choose_initial, split_cases

CACHE_ENV = "ALSEG_CACHE"
DEFAULT_CACHE_ROOT = Path("~/.cache/alseg")


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache root: ``cache_dir`` if given, else ``$ALSEG_CACHE``, else ``~/.cache/alseg``."""
    chosen = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_ROOT
    return Path(chosen).expanduser()


@dataclass(frozen=True)
class DatasetSource:
    """What a subclass discovers: the dataset folder, its labelled cases and their label scheme."""

    data_dir: Path
    cases: list[Case]
    label_scheme: LabelScheme


@dataclass(frozen=True)
class _Prepared:
    """The decoded dataset, its split, its item sets, its fitted normaliser and its data fingerprint."""

    cache: VolumeCache
    split: CaseSplit
    sets: ItemSets
    normalizer: Normalizer
    fingerprint: str
    training_voxels: int


class VolumeDataModule(ItemSetDataModule):
    """Cases of 3D volumes as 2D slice items (``dim=2``), whole-volume items or box items (``dim=3``).

    On first use (``prepare_data``/``setup``, in the main process) every case is decoded once
    into ``<cache root>/volumes/<data_dir name>-<hash>/`` (see :mod:`alseg.datasets.cache`);
    items are then memory-mapped reads, so later epochs and rounds never decompress NIfTI. The
    cache root is ``cache_dir``, else ``$ALSEG_CACHE``, else ``~/.cache/alseg``.

    Cases are split by patient (see :func:`~alseg.datasets.splits.split_cases`): the timepoints of one
    BraTS 2023 patient share a split; fractions count patients. The items of the
    training cases form the pool, from which ``initial_training_set_size`` items are labelled at
    the start by a seeded random choice that does not look at labels. Items are described in
    :mod:`alseg.datasets.item_datasets`: slice ids ``"<case_id>:<slice_index>"`` along ``axis``,
    volume ids ``"<case_id>"``. With ``dim=3``, training items are random patches of
    ``patch_size``; validation, test and pool items are whole volumes as stored (any shape; a
    model infers on them with sliding windows), loaded one volume per validation/test batch.

    With ``annotation_unit="patch"`` the items to label are boxes of ``query_patch_size`` (ids in
    :mod:`alseg.datasets.patch_items`): the pool is a grid of candidate boxes (step ``query_stride``)
    over every training case, ``label_items`` reveals the ground truth inside the box only (every other
    voxel stays :data:`~alseg.core.partial_labels.UNKNOWN`; boxes of one case add up), and training
    patches are centred on a voxel of a labelled box (:class:`~alseg.datasets.patch_reader.PatchTrainingDataset`).
    Validation and test items stay whole, fully labelled volumes. Strategies see the boxes through
    :meth:`patch_pool` and the whole pool cases through :meth:`pool_case_dataloader`.

    Images are normalised by modality (``normalization``, see :mod:`alseg.datasets.normalization`):
    CT with clipping and z-scoring by the foreground statistics of the training cases, MRI by a
    per-case z-score over non-zero voxels.

    Args:
        dim: 2 (slice items) or 3 (volume or patch items).
        annotation_unit: ``slice``, ``volume`` or ``patch`` (:mod:`alseg.datasets.patch_options`); default
            ``slice`` for ``dim=2``, ``volume`` for ``dim=3``.
        query_patch_size: ``patch`` unit: the box of one query ``(sx, sy, sz)``; it must fit in every training
            volume.
        query_stride: ``patch`` unit: grid step of the candidate boxes; default ``query_patch_size`` (a tiling).
        max_overlap: ``patch`` unit: the largest fraction, in [0, 1), of a selected box that labelled boxes (or
            boxes picked before it in the round) may cover; default 0, no overlap.
        axis: Slicing axis of ``(X, Y, Z)`` for ``dim=2``; 2 (axial) by default.
        patch_size: Training patch size ``(X, Y, Z)`` for ``dim=3``.
        foreground_patch_probability: ``dim=3``: probability that a training patch is centred on
            foreground (0.33, as in nnU-Net).
        val_fraction: Fraction of patients for validation, unless ``val_cases`` lists cases.
        test_fraction: Fraction of patients for testing, unless ``test_cases`` lists cases.
        val_cases: Case ids for validation (every case of each patient named).
        test_cases: Case ids for testing (every case of each patient named).
        split_seed: Seed of the case split (kept apart from ``seed`` so that runs with different
            seeds share one test set).
        initial_training_set_size: Items labelled at the start; default 16 slices, 2 volumes or 8 boxes.
        initial_set_from_foreground_only: Draw the initial items only among items whose ground
            truth has foreground. This peeks at labels, hence off by default.
        skip_empty_slices: ``dim=2``: leave out slices whose image is all zero (outside the
            body), in every split; judged from the image only.
        unlabeled_images: A folder of cases without labels, in the layout ``alseg-predict --images`` reads (a
            BraTS folder; Decathlon-style 4D files): their items join the training pool, never the initial set,
            validation or test. Only an oracle that asks a person (``--oracle folder``) labels them; the simulated
            oracle refuses them (:meth:`ids_without_ground_truth`).
        normalization: ``"auto"`` (per channel from its modality name: CT channels ``"ct"``,
            others ``"nonzero_zscore"``), ``"ct"`` (clip to the 0.5-99.5 percentiles of the training
            cases' foreground, z-score with its mean and std) or ``"nonzero_zscore"`` (per case and
            channel over non-zero voxels; zeros stay 0).
        seed: Seed of the initial labelled set; None takes the run's seed under ``alseg-train`` (so that benchmark
            seeds also vary the initial set) and 0 elsewhere.
        cache_dir: Cache root (default: ``$ALSEG_CACHE`` or ``~/.cache/alseg``).
        batch_size: Batch size of training (slices or patches) and of ``dim=2`` validation/test.
        pool_batch_size: Batch size over the pool; default ``batch_size`` for slices, 1 for
            volumes (volumes of different shapes cannot share a batch).
        num_workers: DataLoader worker processes.
        pin_memory: Passed to every DataLoader.
        items_per_epoch: Training items (slices or patches) per epoch, drawn with replacement from the labelled
            set; None: each labelled item once (:class:`~alseg.core.data_module.ActiveLearningDataModule`).
    """

    def __init__(
        self,
        dim: int = 2,
        axis: int = AXIAL,
        annotation_unit: str | None = None,
        query_patch_size: tuple[int, int, int] = (16, 16, 16),
        query_stride: tuple[int, int, int] | None = None,
        max_overlap: float = 0.0,
        patch_size: tuple[int, int, int] = (32, 32, 32),
        foreground_patch_probability: float = 0.33,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        val_cases: list[str] | None = None,
        test_cases: list[str] | None = None,
        split_seed: int = 0,
        initial_training_set_size: int | None = None,
        initial_set_from_foreground_only: bool = False,
        skip_empty_slices: bool = True,
        unlabeled_images: str | None = None,
        normalization: str = "auto",
        seed: int | None = None,
        cache_dir: str | None = None,
        batch_size: int = 4,
        pool_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        items_per_epoch: int | None = None,
    ) -> None:
        volume_pool_batch = 1 if dim == 3 and pool_batch_size is None else pool_batch_size
        super().__init__(batch_size, volume_pool_batch, num_workers, pin_memory, items_per_epoch)
        item_ids([], dim, axis)  # checks dim and axis now rather than at setup
        self.annotation_unit = resolve_unit(dim, annotation_unit)
        self.patch_options = PatchOptions.checked(query_patch_size, query_stride, max_overlap)
        if self.annotation_unit == "patch" and initial_set_from_foreground_only:
            raise ConfigError(
                "The 'initial_set_from_foreground_only' option of the data module applies to slice and volume units "
                "only. Got True with annotation_unit 'patch'."
            )
        self.patches = PatchSampler(patch_size, foreground_patch_probability) if dim == 3 else None
        self.patch_size = tuple(patch_size)
        self.dim, self.axis = dim, axis
        self.split_options = {"val_fraction": val_fraction, "test_fraction": test_fraction}
        self.split_options |= {"val_cases": val_cases, "test_cases": test_cases, "seed": split_seed}
        default_initial = {"slice": 16, "volume": 2, "patch": 8}[self.annotation_unit]
        self.initial_training_set_size = (
            default_initial if initial_training_set_size is None else initial_training_set_size
        )
        self.initial_set_from_foreground_only = initial_set_from_foreground_only
        self.skip_empty_slices = skip_empty_slices
        self.unlabeled_images = unlabeled_images
        self._unlabeled_cases: list[Case] | None = None
        self.normalization = check_normalization(normalization)
        self.seed = 0 if seed is None else seed
        self.cache_root = cache_root(cache_dir)
        self._source: DatasetSource | None = None
        self._prepared_state: _Prepared | None = None

    @abstractmethod
    def _discover(self, cache_root: Path) -> DatasetSource:
        """Finds the labelled cases and the label scheme (``cache_root`` may hold generated data)."""

    def source(self) -> DatasetSource:
        """The discovered dataset (discovery runs once; no decoding)."""
        if self._source is None:
            self._source = self._discover(self.cache_root)
            if not self._source.cases:
                raise DataError(f"{type(self).__name__}: {self._source.data_dir} holds no labelled cases.")
        return self._source

    def unlabeled_cases(self) -> list[Case]:
        """The cases of ``unlabeled_images`` (none without it); found once, nothing decoded.

        Raises:
            DataError: The folder holds no images in the dataset's layout, or a case id of a labelled case.
        """
        if self._unlabeled_cases is None:
            cases: list[Case] = []
            if self.unlabeled_images is not None:
                from alseg.datasets.prediction_cases import folder_cases  # it imports this module

                cases = folder_cases(self, Path(self.unlabeled_images).expanduser())
                clash = sorted({c.case_id for c in cases} & {c.case_id for c in self.source().cases})
                if clash:
                    raise DataError(
                        f"unlabeled_images {self.unlabeled_images} holds cases that are also labelled cases of "
                        f"{self.source().data_dir}: {clash[:10]}. Case ids must be unique."
                    )
            self._unlabeled_cases = cases
        return self._unlabeled_cases

    def case(self, case_id: str) -> Case:
        """The files of a labelled or unlabelled case.

        Raises:
            KeyError: No such case.
        """
        return {c.case_id: c for c in (*self.source().cases, *self.unlabeled_cases())}[case_id]

    def _prepared(self) -> _Prepared:
        if self._prepared_state is None:
            self._prepared_state = self._prepare()
        return self._prepared_state

    def _prepare(self) -> _Prepared:
        source = self.source()
        folder = hashlib.sha256(str(source.data_dir.resolve()).encode()).hexdigest()[:8]
        options = PreprocessOptions(source.cases[0].modalities, source.label_scheme)
        cache = VolumeCache(self.cache_root / "volumes" / f"{source.data_dir.name}-{folder}", options)
        metas = {meta.case_id: meta for meta in cache.ensure_all(source.cases, workers=self.num_workers)}
        unlabeled_metas = {
            meta.case_id: meta for meta in cache.ensure_all(self.unlabeled_cases(), workers=self.num_workers)
        }
        unlabeled = list(unlabeled_metas)
        patients = {case.case_id: case.patient_id for case in source.cases}
        split = split_cases(sorted(metas), **self.split_options, patients=patients)
        schemes = channel_schemes(self.normalization, options.modalities)
        samples = (cache.foreground_sample(case_id) for case_id in split.train)
        normalizer = fit_normalizer(schemes, options.modalities, samples)
        scheme = source.label_scheme
        reader = ItemReader(cache, metas, self.axis, scheme.class_names, scheme.multilabel, normalizer)
        ids = {
            name: item_ids([metas[c] for c in cases], self.dim, self.axis, self.skip_empty_slices)
            for name, cases in (("train", split.train), ("val", split.val), ("test", split.test))
        }
        ids["unlabeled"] = item_ids(
            [unlabeled_metas[c] for c in unlabeled], self.dim, self.axis, self.skip_empty_slices
        )
        metas |= unlabeled_metas  # after the split: unlabelled cases are pool items only
        items = {"dim": self.dim, "axis": self.axis, "skip_empty_slices": self.skip_empty_slices}
        if self.annotation_unit == "patch":
            if unlabeled:
                raise ConfigError(
                    "The 'unlabeled_images' option of the data module needs annotation_unit 'slice' or 'volume': "
                    "patches of cases without ground truth cannot be annotated yet. Got annotation_unit 'patch'."
                )
            sets = self._patch_sets(reader, {c: metas[c].shape for c in split.train}, ids)
            items |= {"annotation_unit": "patch", "query": asdict(self.patch_options)}
        else:
            sets = self._item_sets_of(reader, [metas[c].shape for c in (*split.train, *unlabeled)], ids)
        fingerprint = {
            "cases": {case_id: json.loads(meta.source) for case_id, meta in sorted(metas.items())},
            "split": {"train": split.train, "val": split.val, "test": split.test},
            "preprocessing": options.description(),
            "normalization": normalizer.description(),
            "items": items,
        }
        if unlabeled:  # only then: fingerprints of runs without unlabelled cases stay as they were
            fingerprint["unlabeled_cases"] = {c: json.loads(metas[c].source) for c in unlabeled}
        training_voxels = sum(math.prod(metas[c].shape) for c in (*split.train, *unlabeled))
        return _Prepared(cache, split, sets, normalizer, json_digest(fingerprint), training_voxels)

    def _item_sets_of(self, reader: ItemReader, shapes: list[tuple[int, int, int]], ids: dict) -> ItemSets:
        """Slice or volume items: an initial set of training items; the pool holds the rest and the unlabelled cases."""
        self._check_pool_batch(shapes)
        candidates = ids["train"]
        if self.initial_set_from_foreground_only:
            candidates = [i for i in candidates if reader.has_foreground(i)]
        initial = choose_initial(candidates, self.initial_training_set_size, self.seed)
        chosen = set(initial)
        pool = [i for i in ids["train"] if i not in chosen]
        pool += ids["unlabeled"]
        return ItemSets(reader, initial, pool, ids["val"], ids["test"], type(self).__name__)

    def _patch_sets(self, reader: ItemReader, shapes: dict[str, tuple[int, int, int]], ids: dict) -> PatchSets:
        """Box items: the grid of candidate boxes of every training case, a seeded initial set of them."""
        options = self.patch_options
        options.check_fits(shapes)
        candidates = [format_patch_id(b) for c, shape in shapes.items() for b in grid_boxes(c, shape, *options.grid)]
        geometry = options.geometry(self.patch_size, shapes)
        return PatchSets(
            PatchReader(reader, []),
            candidates,
            ids["val"],
            ids["test"],
            type(self).__name__,
            geometry,
            self.initial_training_set_size,
            self.seed,
        )

    def _check_pool_batch(self, shapes: list[tuple[int, int, int]]) -> None:
        if self.dim == 3 and self.pool_batch_size > 1 and len(set(shapes)) > 1:
            raise ConfigError(
                f"The 'pool_batch_size' option must be 1 for dim=3: the training volumes differ in shape "
                f"(e.g. {shapes[0]} and {next(s for s in shapes if s != shapes[0])}). Got {self.pool_batch_size}."
            )

    @property
    def volume_cache(self) -> VolumeCache:
        """The cache of decoded cases (prepares the data on first access)."""
        return self._prepared().cache

    @property
    def split(self) -> CaseSplit:
        """The case split (prepares the data on first access)."""
        return self._prepared().split

    @property
    def normalizer(self) -> Normalizer:
        """The normaliser of every image read, fitted on the training cases (prepares the data on first access).

        Apply it to decoded intensities ``[C, X, Y, Z]`` with their
        :func:`~alseg.datasets.normalization.nonzero_statistics` to normalise an image as training did.
        """
        return self._prepared().normalizer

    def prepare_data(self) -> None:
        """Decodes every case into the cache (Lightning calls this once, in the main process)."""
        self._prepared()

    def _item_sets(self) -> ItemSets:
        return self._prepared().sets

    def data_fingerprint(self) -> str:
        """64 hex digits over the data a run depends on; it changes whenever the images, labels or split do.

        Hashes the content fingerprint of every case's files (hashes of their bytes, not sizes or
        times; file paths are left out, so a moved copy of the dataset keeps its fingerprint), the
        case split, the preprocessing (modalities, label scheme, normalisation and its statistics)
        and what makes the items (``dim``, ``axis``, ``skip_empty_slices``). It is computed when the
        data is prepared, which on a warm cache hashes the files and decodes nothing.
        """
        return self._prepared().fingerprint

    def id_to_class_names(self) -> dict[int, str]:
        """Channel (multi-label) or class (single-label) names by index, from the label scheme."""
        return dict(enumerate(self.source().label_scheme.class_names))

    def multi_label(self) -> bool:
        """Whether labels are binary channels (sigmoid outputs) rather than classes."""
        return self.source().label_scheme.multilabel

    def data_channels(self) -> int:
        """The number of image channels (selected modalities)."""
        return len(self.source().cases[0].modalities)

    def nifti_of_item(self, item_id: str, array: np.ndarray, description: str) -> Any:
        """A NIfTI image of a reader-frame item array ``[X, Y, Z]`` in the geometry of its case's file (heatmaps)."""
        from alseg.datasets.annotation_items import AnnotationItem

        return AnnotationItem.of(self, item_id).to_file(array, description)

    def labeled_dataloader(self) -> DataLoader:
        """The training items in a fixed order, with ``pool_batch_size``; whole volumes for ``dim=3``.

        Unlike :meth:`train_dataloader`, items are not cropped to patches, so that their
        embeddings compare with those of the pool's whole volumes. With ``annotation_unit="patch"`` they are the
        labelled boxes with their labels, like the pool's box crops.
        """
        sets = self._prepared().sets
        dataset = ItemDataset(sets.reader, sets.train, "train")
        return DataLoader(dataset, self.pool_batch_size, num_workers=self.num_workers, pin_memory=self.pin_memory)

    def val_dataloader(self) -> DataLoader:
        """Validation loader; one volume per batch for ``dim=3``."""
        return self._loader("val", self.batch_size if self.dim == 2 else 1, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test loader; one volume per batch for ``dim=3``."""
        return self._loader("test", self.batch_size if self.dim == 2 else 1, shuffle=False)

    def annotation_cost(self, ids: list[str]) -> dict[str, int | float]:
        """Items, slices, voxels and foreground voxels; ``new_voxels`` and the ``labelled_fraction`` they add.

        ``new_voxels`` counts the voxels of ``ids`` that no other oracle-labelled item covers (overlapping boxes count
        once; slices and volumes never overlap), ``labelled_fraction`` them over all voxels of the training volumes,
        so that both add up over the rounds to the labelled share of the training data.

        Raises:
            PluginError: An id is not an item of this data module.
        """
        cost: dict[str, int | float] = dict(super().annotation_cost(ids))
        prepared = self._prepared()
        sets = prepared.sets
        new = sets.new_voxels(ids)
        new = int(cost["voxels"]) if new is None else new
        return cost | {"new_voxels": new, "labelled_fraction": new / prepared.training_voxels}
