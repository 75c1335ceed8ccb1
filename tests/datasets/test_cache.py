import json
import os
import pickle

import nibabel as nib
import numpy as np
import pytest

from alseg.core import progress
from alseg.core.errors import DataError
from alseg.datasets import fingerprints
from alseg.datasets.brats_layout import CANONICAL_MODALITIES, discover_brats
from alseg.datasets.cache import PreprocessOptions, VolumeCache
from alseg.datasets.items import item_ids, read_item_image, read_item_label
from alseg.datasets.labels import brats_label_scheme
from alseg.datasets.normalization import foreground_sample, nonzero_statistics
from alseg.datasets.synthetic import write_brats
from alseg.datasets.volumes import read_case

SCHEME = brats_label_scheme("2021", "multilabel")
OPTIONS = PreprocessOptions(CANONICAL_MODALITIES, SCHEME)


def test_second_pass_decodes_nothing(brats_dir, tmp_path, monkeypatch):
    cases = discover_brats(brats_dir)
    cache = VolumeCache(tmp_path / "cache", OPTIONS)
    first = cache.ensure_all(cases)
    assert cache.decodes == 3
    ids = item_ids(first, dim=2)
    epoch_one = [read_item_image(cache, i) for i in ids]

    def no_decoding(*args, **kwargs):
        raise AssertionError("NIfTI decoded on a cache hit")

    monkeypatch.setattr(nib, "load", no_decoding)
    again = VolumeCache(tmp_path / "cache", OPTIONS)  # e.g. a new process
    assert again.ensure_all(cases) == first
    epoch_two = [read_item_image(again, i) for i in ids]
    assert again.decodes == 0 and cache.decodes == 3
    assert all(np.array_equal(a, b) for a, b in zip(epoch_one, epoch_two, strict=True))


def test_cached_arrays_equal_preprocessed_volume(brats_dir, tmp_path):
    case = discover_brats(brats_dir)[0]
    cache = VolumeCache(tmp_path, OPTIONS)
    cache.ensure(case)
    volume = read_case(case, SCHEME)
    image, label = cache.image(case.case_id), cache.label(case.case_id)
    assert isinstance(image, np.memmap) and image.dtype == np.float32
    # An axial slice is one contiguous block of the file, so reading it touches nothing else.
    assert image[..., 3].flags.f_contiguous and label[..., 3].flags.f_contiguous
    np.testing.assert_array_equal(image, volume.image)  # decoded intensities; items are normalised on read
    np.testing.assert_array_equal(label, volume.label)
    assert label.dtype == np.uint8 and label.shape == (3, 8, 8, 6)


def test_metadata_records_shape_spacing_and_slices(brats_dir, tmp_path):
    case = discover_brats(brats_dir)[1]
    cache = VolumeCache(tmp_path, OPTIONS)
    meta = cache.ensure(case)
    assert meta.case_id == case.case_id and meta.shape == (8, 8, 6) and meta.spacing == (1.0, 1.0, 1.5)
    assert meta.has_label
    label = np.asarray(cache.label(case.case_id)).any(0)
    image = np.asarray(cache.image(case.case_id))
    assert meta.foreground_slices[2] == tuple(np.flatnonzero(label.any((0, 1))))
    assert meta.foreground_slices[0] == tuple(np.flatnonzero(label.any((1, 2))))
    assert meta.nonempty_slices[2] == tuple(np.flatnonzero((image != 0).any((0, 1, 2))))
    assert 0 < len(meta.foreground_slices[2]) < 6
    assert cache.meta(case.case_id) == meta
    on_disk = json.loads((cache.root / case.case_id / "meta.json").read_text())
    assert on_disk["spacing"] == [1.0, 1.0, 1.5]


def test_unlabelled_cache_has_no_label(brats_dir, tmp_path):
    case = discover_brats(brats_dir)[0]
    cache = VolumeCache(tmp_path, PreprocessOptions(CANONICAL_MODALITIES, None))
    meta = cache.ensure(case)
    assert not meta.has_label and meta.foreground_slices is None
    np.testing.assert_array_equal(cache.image(case.case_id), read_case(case, None).image)
    with pytest.raises(FileNotFoundError):
        cache.label(case.case_id)


def test_key_changes_with_every_option():
    keys = {
        OPTIONS.key(),
        PreprocessOptions(("flair", "t1"), SCHEME).key(),
        PreprocessOptions(("t1", "flair"), SCHEME).key(),
        PreprocessOptions(CANONICAL_MODALITIES, brats_label_scheme("2023")).key(),
        PreprocessOptions(CANONICAL_MODALITIES, brats_label_scheme("2021", "multiclass")).key(),
        PreprocessOptions(CANONICAL_MODALITIES, None).key(),
    }
    assert len(keys) == 6
    assert PreprocessOptions(CANONICAL_MODALITIES, brats_label_scheme("2021")).key() == OPTIONS.key()
    assert PreprocessOptions(CANONICAL_MODALITIES, SCHEME, affine_tolerance=0.5).key() == OPTIONS.key()


def test_changed_source_file_is_decoded_again(brats_dir, tmp_path, rewrite_nifti):
    case = discover_brats(brats_dir)[0]
    cache = VolumeCache(tmp_path, OPTIONS)
    cache.ensure(case)
    before = cache.image(case.case_id)
    assert cache.image(case.case_id) is before  # mapped once per process
    path = case.images["flair"].path
    checkerboard = (np.indices((8, 8, 6)).sum(0) % 2 * 2 + 1).astype(np.float32)  # 1s and 3s
    rewrite_nifti(path, data=checkerboard)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-grained file systems
    cache.ensure(case)
    assert cache.decodes == 2
    assert set(np.unique(cache.image(case.case_id)[0]).tolist()) == {1.0, 3.0}


def test_cases_decoded_by_several_threads_equal_one_by_one(tmp_path):
    data = write_brats(tmp_path / "brats", n_cases=5, shape=(8, 8, 6), tumour_fraction=0.6)
    cases = discover_brats(data)
    one = VolumeCache(tmp_path / "one", OPTIONS)
    two = VolumeCache(tmp_path / "two", OPTIONS)
    assert two.ensure_all(cases, workers=3) == one.ensure_all(cases) and one.decodes == two.decodes == 5
    assert two.digests.hashed == 25  # 4 modalities and a label per case, each hashed once
    for case in cases:
        np.testing.assert_array_equal(two.image(case.case_id), one.image(case.case_id))
        np.testing.assert_array_equal(two.label(case.case_id), one.label(case.case_id))


def test_a_cache_build_counts_its_cases_on_a_terminal_only(brats_dir, tmp_path, capsys):
    cases = discover_brats(brats_dir)
    for mode in ("tty", "plain"):
        with progress.using(mode):
            VolumeCache(tmp_path / mode, OPTIONS).ensure_all(cases, workers=2)
        out = capsys.readouterr().out
        assert ("cases decoded or checked: 100%" in out and "3/3" in out) if mode == "tty" else out == ""


def test_a_bad_case_among_threads_is_named_and_the_others_are_cached(tmp_path):
    data = write_brats(tmp_path / "brats", n_cases=4, shape=(8, 8, 6))
    cases = discover_brats(data)
    cases[1].images["t2"].path.write_bytes(b"not a NIfTI file")
    cache = VolumeCache(tmp_path / "cache", OPTIONS)
    with pytest.raises(DataError, match=f"Case {cases[1].case_id}: cannot read NIfTI file"):
        cache.ensure_all(cases, workers=2)
    assert all((cache.root / case.case_id / "meta.json").is_file() for case in (cases[0], cases[2], cases[3]))


def test_a_pickled_cache_leaves_its_mappings_behind(brats_dir, tmp_path):
    cases = discover_brats(brats_dir)
    cache = VolumeCache(tmp_path, OPTIONS)
    cache.ensure_all(cases)
    image = cache.image(cases[0].case_id)
    copy = pickle.loads(pickle.dumps(cache))  # as for a spawned DataLoader worker
    assert len(pickle.dumps(cache)) < image.nbytes
    np.testing.assert_array_equal(copy.image(cases[0].case_id), image)
    assert copy.image(cases[0].case_id) is not image


def test_no_temporary_files_are_left(brats_dir, tmp_path):
    cache = VolumeCache(tmp_path / "c", OPTIONS)
    cache.ensure_all(discover_brats(brats_dir))
    names = {p.name for p in (tmp_path / "c").rglob("*")}
    assert not [n for n in names if ".tmp" in n]
    assert {"image.npy", "label.npy", "meta.json", "options.json"} <= names


def test_modalities_must_match_options(brats_dir, tmp_path):
    case = discover_brats(brats_dir, modalities=["flair"])[0]
    with pytest.raises(ValueError, match=r"has modalities \('flair',\), but the cache was configured"):
        VolumeCache(tmp_path, OPTIONS).ensure(case)


def test_slice_reads_equal_volume_slices(brats_dir, tmp_path):
    cache = VolumeCache(tmp_path, OPTIONS)
    meta = cache.ensure(discover_brats(brats_dir)[2])
    volume = read_item_image(cache, meta.case_id)
    target = read_item_label(cache, meta.case_id)
    assert volume.shape == (4, 8, 8, 6) and target.shape == (3, 8, 8, 6)
    for index in range(6):
        np.testing.assert_array_equal(read_item_image(cache, f"{meta.case_id}:{index}"), volume[..., index])
        np.testing.assert_array_equal(read_item_label(cache, f"{meta.case_id}:{index}"), target[..., index])
    sagittal = read_item_image(cache, f"{meta.case_id}:3", axis=0)
    np.testing.assert_array_equal(sagittal, volume[:, 3])
    assert sagittal.flags.c_contiguous and not isinstance(sagittal, np.memmap)


def test_label_replaced_with_same_size_and_mtime_is_decoded_again(tmp_path, replace_keeping_mtime):
    folder = write_brats(tmp_path / "b", n_cases=3, shape=(8, 8, 6), tumour_fraction=1.0, extension=".nii")
    cases = discover_brats(folder)
    cache = VolumeCache(tmp_path / "cache", OPTIONS)
    cache.ensure_all(cases)
    target, other = cases[0].label, cases[1].label
    assert not np.array_equal(cache.label(cases[0].case_id), cache.label(cases[1].case_id))
    before = target.stat()
    replace_keeping_mtime(target, other)  # another valid label of the same shape: same size, same time
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again = VolumeCache(tmp_path / "cache", OPTIONS)
    again.ensure_all(cases)
    assert again.decodes == 1  # only the changed case
    np.testing.assert_array_equal(again.label(cases[0].case_id), again.label(cases[1].case_id))


def test_metadata_records_intensity_statistics_and_foreground_sample(brats_dir, tmp_path):
    case = discover_brats(brats_dir)[0]
    cache = VolumeCache(tmp_path, OPTIONS)
    meta = cache.ensure(case)
    image, foreground = read_case(case, SCHEME).image, np.asarray(cache.label(case.case_id)).any(0)
    assert meta.nonzero == nonzero_statistics(image) and cache.meta(case.case_id).nonzero == meta.nonzero
    sample = cache.foreground_sample(case.case_id)
    np.testing.assert_array_equal(sample, foreground_sample(image, foreground))
    assert sample.shape == (4, 10_000)


def test_a_warm_start_hashes_no_unchanged_file(brats_dir, tmp_path, monkeypatch):
    cases = discover_brats(brats_dir)
    first = VolumeCache(tmp_path / "cache", OPTIONS)
    metas = first.ensure_all(cases)
    assert first.digests.hashed == sum(len(case.files) for case in cases)

    def no_hashing(*args, **kwargs):
        raise AssertionError("an unchanged file was hashed again")

    monkeypatch.setattr(fingerprints, "file_digest", no_hashing)
    again = VolumeCache(tmp_path / "cache", OPTIONS)  # a new process: the records come from the memo file
    assert again.ensure_all(cases) == metas and again.digests.hashed == 0


def test_a_damaged_digest_memo_only_costs_hashing_again(brats_dir, tmp_path):
    cases = discover_brats(brats_dir)
    metas = VolumeCache(tmp_path / "cache", OPTIONS).ensure_all(cases)
    (tmp_path / "cache" / "file_digests.json").write_text("{not json")
    again = VolumeCache(tmp_path / "cache", OPTIONS)
    assert again.ensure_all(cases) == metas and again.decodes == 0 and again.digests.hashed > 0
