"""Decode-once cache of preprocessed case arrays, read back memory-mapped.

Layout: ``<cache_dir>/<options key>/<case_id>/{image.npy, label.npy, foreground_sample.npy,
foreground_voxels.npy, meta.json}`` plus ``<cache_dir>/<options key>/options.json`` describing the options. The key is a
hash of the preprocessing options (modalities, label scheme, cache version), so changing an option
never reads stale arrays. ``image.npy`` holds the decoded intensities: normalisation is applied on
read (see :mod:`alseg.datasets.normalization`), from the statistics recorded while decoding (the
per-channel non-zero mean/std in ``meta.json``, a foreground intensity sample in
``foreground_sample.npy``), so the arrays depend neither on the normalisation nor on the split.
``foreground_voxels.npy`` lists the flat indices of the label's foreground voxels, so that a training patch is
centred on foreground without reading the whole label (:mod:`alseg.datasets.patches`).

``meta.json`` records the content fingerprint of the source files (a hash of their bytes, see
:mod:`alseg.datasets.fingerprints`); :meth:`VolumeCache.ensure` hashes the files again and decodes
a case only when a file's content changed, whatever its size and modification time. The files are
hashed before they are decoded, so a file replaced in between is decoded again at the next start
(its new bytes do not match the recorded hash).

Arrays are stored in Fortran order, so a slice along the last axis (axial, see
:mod:`alseg.datasets.volumes`) is one contiguous block on disk and a memory-mapped read of one
slice touches only that block. Every file is written to a temporary name and renamed, so
readers (e.g. other DataLoader workers or ranks) never see a partial file; ``meta.json`` is
written last and marks a complete entry.
"""

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alseg.core import progress
from alseg.datasets.atomic_files import atomic_write
from alseg.datasets.cases import Case
from alseg.datasets.fingerprints import DigestMemo, case_fingerprint, json_digest
from alseg.datasets.labels import LabelScheme
from alseg.datasets.normalization import foreground_sample, nonzero_statistics
from alseg.datasets.patches import foreground_indices
from alseg.datasets.volumes import CaseVolume, read_case

CACHE_VERSION = 3  # 2: decoded intensities (normalised on read), content fingerprints, intensity statistics;
# 3: foreground voxel indices


@dataclass(frozen=True)
class PreprocessOptions:
    """Everything that determines the cached arrays of a case.

    Attributes:
        modalities: Modality names in channel order (must equal each cached case's).
        label_scheme: Converts label maps to targets; ``None`` caches images only.
        affine_tolerance: See :func:`alseg.datasets.volumes.read_case` (not part of the key:
            it does not change the arrays).
    """

    modalities: tuple[str, ...]
    label_scheme: LabelScheme | None
    affine_tolerance: float = 1e-3

    def key(self) -> str:
        """16 hex digits identifying the preprocessing."""
        return json_digest(self.description())[:16]

    def description(self) -> dict:
        """JSON-able description of the options that the key hashes."""
        scheme = self.label_scheme
        return {
            "version": CACHE_VERSION,
            "modalities": list(self.modalities),
            "labels": None if scheme is None else [scheme.name, list(scheme.class_names)],
        }


@dataclass(frozen=True)
class CaseMeta:
    """Metadata of one cached case.

    Attributes:
        case_id: The case id.
        shape: Spatial shape ``(X, Y, Z)``.
        spacing: Voxel size in mm along X, Y, Z.
        affine: Voxel → RAS+ mm map (4 rows of 4) of the cached arrays.
        has_label: Whether a target (and a foreground sample) is cached.
        nonzero: Per channel, ``(mean, std)`` of the non-zero voxels of the decoded image
            (:func:`~alseg.datasets.normalization.nonzero_statistics`).
        nonempty_slices: Per axis, indices of slices with any non-zero image voxel.
        foreground_slices: Per axis, indices of slices with any foreground in the target, or
            ``None`` without a label. For analysis only: never use it to build the pool.
        source: Content fingerprint of the source files
            (:func:`~alseg.datasets.fingerprints.case_fingerprint`).
    """

    case_id: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: tuple[tuple[float, ...], ...]
    has_label: bool
    nonzero: tuple[tuple[float, float], ...]
    nonempty_slices: tuple[tuple[int, ...], ...]
    foreground_slices: tuple[tuple[int, ...], ...] | None
    source: str


def _slices_with(mask: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Per axis of a 3D mask, the indices of slices holding any True voxel."""
    axes = ((1, 2), (0, 2), (0, 1))
    return tuple(tuple(int(i) for i in np.flatnonzero(mask.any(axis=a))) for a in axes)


def _any_channel(array: np.ndarray) -> np.ndarray:
    """``(array != 0).any(0)`` of a Fortran-ordered ``[C, X, Y, Z]``, channel by channel.

    numpy reduces over the innermost axis of a Fortran-ordered array several times slower than it ORs the channels.
    """
    result = array[0] != 0
    for channel in array[1:]:
        result |= channel != 0
    return result


def _save_array(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda stream: np.save(stream, np.asfortranarray(array)))


def _save_json(path: Path, content: dict) -> None:
    atomic_write(path, lambda stream: stream.write(json.dumps(content).encode()))


class VolumeCache:
    """Decodes each case once into ``.npy`` files and serves memory-mapped reads.

    Every process maps a case's arrays once and keeps them mapped: DataLoader workers read items without opening
    files (pickling the cache for a spawned worker leaves the mappings behind).

    Attributes:
        root: The folder of this set of options, ``<cache_dir>/<options key>``.
        digests: File digests remembered across starts (``<cache_dir>/file_digests.json``), so that a warm start
            hashes only files that changed.
    """

    def __init__(self, cache_dir: str | Path, options: PreprocessOptions) -> None:
        self.options = options
        self.root = Path(cache_dir) / options.key()
        self._decoded: list[str] = []  # appended by the threads of ensure_all
        self._mapped: dict[tuple[str, str], np.ndarray] = {}  # arrays mapped by this process, by case and file
        self.digests = DigestMemo(Path(cache_dir) / "file_digests.json")

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_mapped": {}}

    @property
    def decodes(self) -> int:
        """Number of cases decoded from NIfTI by this instance (for tests and logging)."""
        return len(self._decoded)

    def ensure(self, case: Case) -> CaseMeta:
        """Metadata of a case, decoding and caching it first if needed.

        Raises:
            DataError: The case cannot be read (see :func:`~alseg.datasets.volumes.read_case`).
            ValueError: The case's modalities differ from the options'.
        """
        if case.modalities != self.options.modalities:
            raise ValueError(
                f"Case {case.case_id} has modalities {case.modalities}, but the cache was "
                f"configured for {self.options.modalities}."
            )
        source = case_fingerprint(case, self.digests)
        meta_path = self._dir(case.case_id) / "meta.json"
        if meta_path.is_file():
            meta = self.meta(case.case_id)
            if meta.source == source:
                return meta
        return self._build(case, source)

    def ensure_all(self, cases: Sequence[Case], workers: int = 1) -> list[CaseMeta]:
        """:meth:`ensure` every case, up to ``workers`` at a time; then remembers the file digests for the next start.

        On a terminal a bar shows the cases done with an ETA (:func:`alseg.core.progress.bar`).

        Threads, not processes: gzip decompression and numpy release the GIL, and nothing has to be pickled or
        imported again (spawned processes would import torch and MONAI first).

        Returns:
            The metadata of ``cases``, in order.

        Raises:
            DataError: The first unreadable case in order (see :meth:`ensure`); the others are cached meanwhile.
        """
        with (
            ThreadPoolExecutor(max(1, workers), thread_name_prefix="alseg-cache") as pool,
            progress.bar(len(cases), "cases decoded or checked", unit="case") as bar,
        ):
            futures = [pool.submit(self.ensure, case) for case in cases]
            for _ in as_completed(futures):  # every case ends, failed or not, before the first error is raised
                bar.update()
        metas = [future.result() for future in futures]
        if self.digests.hashed:
            self.digests.save()
        return metas

    def _dir(self, case_id: str) -> Path:
        return self.root / case_id

    def _build(self, case: Case, source: str) -> CaseMeta:
        volume: CaseVolume = read_case(case, self.options.label_scheme, self.options.affine_tolerance)
        self._decoded.append(case.case_id)
        for name in ("image.npy", "label.npy", "foreground_voxels.npy"):
            self._mapped.pop((case.case_id, name), None)  # a rebuilt case is read from its new files
        image = volume.image  # decoded intensities; items are normalised on read
        case_dir = self._dir(case.case_id)
        case_dir.mkdir(parents=True, exist_ok=True)
        _save_json(self.root / "options.json", self.options.description())
        _save_array(case_dir / "image.npy", image)
        foreground = None
        if volume.label is not None:
            _save_array(case_dir / "label.npy", volume.label)
            is_foreground = _any_channel(volume.label) if volume.label.ndim == 4 else volume.label > 0
            _save_array(case_dir / "foreground_sample.npy", foreground_sample(image, is_foreground))
            _save_array(case_dir / "foreground_voxels.npy", foreground_indices(is_foreground))
            foreground = _slices_with(is_foreground)
        meta = CaseMeta(
            case_id=case.case_id,
            shape=tuple(int(n) for n in image.shape[1:]),
            spacing=volume.spacing,
            affine=tuple(tuple(float(v) for v in row) for row in volume.affine),
            has_label=volume.label is not None,
            nonzero=nonzero_statistics(image),
            nonempty_slices=_slices_with(_any_channel(image)),
            foreground_slices=foreground,
            source=source,
        )
        _save_json(case_dir / "meta.json", asdict(meta))
        return meta

    def meta(self, case_id: str) -> CaseMeta:
        """Metadata of a cached case."""
        raw = json.loads((self._dir(case_id) / "meta.json").read_text())
        nested = ("affine", "nonzero", "nonempty_slices", "foreground_slices")
        for key in nested:
            if raw[key] is not None:
                raw[key] = tuple(tuple(row) for row in raw[key])
        return CaseMeta(**{**raw, "shape": tuple(raw["shape"]), "spacing": tuple(raw["spacing"])})

    def image(self, case_id: str) -> np.ndarray:
        """Memory-mapped, read-only ``float32 [C, X, Y, Z]`` (Fortran order) decoded intensities of a cached case."""
        return self._map(case_id, "image.npy")

    def label(self, case_id: str) -> np.ndarray:
        """Memory-mapped, read-only target of a cached case.

        Returns:
            ``uint8 [R, X, Y, Z]`` (multilabel) or ``uint8 [X, Y, Z]`` (multiclass).

        Raises:
            FileNotFoundError: The case has no cached label.
        """
        return self._map(case_id, "label.npy")

    def _map(self, case_id: str, name: str) -> np.ndarray:
        """The read-only memory map of one array file of a case, opened once per process."""
        key = (case_id, name)
        if key not in self._mapped:
            self._mapped[key] = np.load(self._dir(case_id) / name, mmap_mode="r")
        return self._mapped[key]

    def foreground_sample(self, case_id: str) -> np.ndarray:
        """``float32 [C, N]`` foreground intensities of a labelled cached case, ``N`` = 0 without foreground.

        See :func:`~alseg.datasets.normalization.foreground_sample`.

        Raises:
            FileNotFoundError: The case has no cached label.
        """
        return np.load(self._dir(case_id) / "foreground_sample.npy")

    def foreground_voxels(self, case_id: str) -> np.ndarray:
        """Memory-mapped ``int [N]`` flat (C-order) indices of the ground truth's foreground voxels of a cached case.

        See :func:`~alseg.datasets.patches.foreground_indices`.

        Raises:
            FileNotFoundError: The case has no cached label.
        """
        return self._map(case_id, "foreground_voxels.npy")
