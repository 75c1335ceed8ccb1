"""Shared base of the reference data modules: cases on disk → decode-once cache → split, pool and oracle.

Subclasses only say how to find the cases and their label scheme (:meth:`VolumeDataModule._discover`).
"""

import hashlib
import json
import os
from abc import abstractmethod
from dataclasses import dataclass
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


class VolumeDataModule(ItemSetDataModule):
    """Cases of 3D volumes as 2D slice items (``dim=2``) or whole-volume items (``dim=3``).

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

    Images are normalised by modality (``normalization``, see :mod:`alseg.datasets.normalization`):
    CT with clipping and z-scoring by the foreground statistics of the training cases, MRI by a
    per-case z-score over non-zero voxels.

    Args:
        dim: 2 (slice items) or 3 (volume items).
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
        initial_training_set_size: Items labelled at the start; default 16 slices (``dim=2``) or
            2 volumes (``dim=3``).
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
    """

    def __init__(
        self,
        dim: int = 2,
        axis: int = AXIAL,
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
    ) -> None:
        volume_pool_batch = 1 if dim == 3 and pool_batch_size is None else pool_batch_size
        super().__init__(batch_size, volume_pool_batch, num_workers, pin_memory)
        item_ids([], dim, axis)  # checks dim and axis now rather than at setup
        self.patches = PatchSampler(patch_size, foreground_patch_probability) if dim == 3 else None
        self.dim, self.axis = dim, axis
        self.split_options = {"val_fraction": val_fraction, "test_fraction": test_fraction}
        self.split_options |= {"val_cases": val_cases, "test_cases": test_cases, "seed": split_seed}
        default_initial = 16 if dim == 2 else 2
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
        metas |= unlabeled_metas  # after the split: unlabelled cases are pool items only
        self._check_pool_batch([metas[c].shape for c in (*split.train, *unlabeled)])
        candidates = ids["train"]
        if self.initial_set_from_foreground_only:
            candidates = [i for i in candidates if reader.has_foreground(i)]
        initial = choose_initial(candidates, self.initial_training_set_size, self.seed)
        chosen = set(initial)
        pool = [i for i in ids["train"] if i not in chosen]
        pool += item_ids([metas[c] for c in unlabeled], self.dim, self.axis, self.skip_empty_slices)
        sets = ItemSets(reader, initial, pool, ids["val"], ids["test"], type(self).__name__)
        fingerprint = {
            "cases": {case_id: json.loads(meta.source) for case_id, meta in sorted(metas.items())},
            "split": {"train": split.train, "val": split.val, "test": split.test},
            "preprocessing": options.description(),
            "normalization": normalizer.description(),
            "items": {"dim": self.dim, "axis": self.axis, "skip_empty_slices": self.skip_empty_slices},
        }
        if unlabeled:  # only then: fingerprints of runs without unlabelled cases stay as they were
            fingerprint["unlabeled_cases"] = {c: json.loads(metas[c].source) for c in unlabeled}
        return _Prepared(cache, split, sets, normalizer, json_digest(fingerprint))

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
        embeddings compare with those of the pool's whole volumes.
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
