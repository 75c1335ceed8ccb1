import gzip
import re

import nibabel as nib
import numpy as np
import pytest

from alseg.core.errors import DataError
from alseg.datasets.brats_layout import discover_brats
from alseg.datasets.cases import Case, ImageSource
from alseg.datasets.labels import brats_label_scheme, decathlon_label_scheme
from alseg.datasets.msd_layout import discover_decathlon, read_dataset_json
from alseg.datasets.synthetic import write_brats
from alseg.datasets.volumes import read_case

SCHEME = brats_label_scheme("2021", "multiclass")


def _first_case(brats_dir, **options):
    return discover_brats(brats_dir, **options)[0]


def test_reads_channels_in_case_order_reoriented_to_ras(brats_dir):
    case = _first_case(brats_dir, modalities=["t2", "flair"])
    volume = read_case(case, SCHEME)
    assert volume.image.dtype == np.float32 and volume.image.shape == (2, 8, 8, 6)
    # The synthetic affine flips x and y (like BraTS files); arrays come back in RAS+ order.
    for channel, modality in enumerate(["t2", "flair"]):
        stored = nib.load(case.images[modality].path).get_fdata()
        np.testing.assert_array_equal(volume.image[channel], stored[::-1, ::-1, :])
    stored_label = np.asarray(nib.load(case.label).dataobj).astype(int)
    expected = np.select([stored_label == 4, stored_label > 0], [3, stored_label])
    np.testing.assert_array_equal(volume.label, expected[::-1, ::-1, :])
    assert volume.spacing == (1.0, 1.0, 1.5)
    assert np.allclose(np.diag(volume.affine), [1.0, 1.0, 1.5, 1.0])
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")


def test_reads_uncompressed_2023_case_with_enhancing_label_3(tmp_path):
    folder = write_brats(tmp_path / "d", 1, (12, 12, 8), release="2023", extension=".nii", tumour_fraction=1.0)
    case = discover_brats(folder)[0]
    volume = read_case(case, brats_label_scheme("2023", "multilabel"))
    raw = np.asarray(nib.load(case.label).dataobj)[::-1, ::-1, :]
    assert raw.max() == 3
    np.testing.assert_array_equal(volume.label[2], raw == 3)  # ET
    np.testing.assert_array_equal(volume.label[1], raw > 0)  # WT
    np.testing.assert_array_equal(volume.label[0], (raw == 1) | (raw == 3))  # TC


def test_reads_4d_decathlon_channels_and_3d_label(msd_dir):
    labels = read_dataset_json(msd_dir).labels
    case = discover_decathlon(msd_dir, modalities=["T2w", "FLAIR"])[0]
    volume = read_case(case, decathlon_label_scheme(labels))
    stored = nib.load(case.images["T2w"].path).get_fdata()[::-1, ::-1]
    np.testing.assert_array_equal(volume.image, np.moveaxis(stored[..., [3, 0]], -1, 0))
    assert volume.label.shape == (8, 8, 6)


def test_without_label_scheme_no_label_is_read(brats_dir):
    case = _first_case(brats_dir)
    case.label.write_bytes(b"not a nifti")
    assert read_case(case, None).label is None


def test_truncated_file_names_case_and_file(brats_dir):
    case = _first_case(brats_dir)
    path = case.images["t1ce"].path
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match=rf"Case BraTS2021_00000: cannot read NIfTI file {re.escape(str(path))}"):
        read_case(case, SCHEME)


def test_corrupt_header_names_case_and_file(brats_dir):
    case = _first_case(brats_dir)
    path = case.images["t2"].path
    path.write_bytes(gzip.compress(b"\0" * 400))
    with pytest.raises(DataError, match=r"Case BraTS2021_00000: cannot read NIfTI file .*_t2\.nii\.gz"):
        read_case(case, SCHEME)


def test_shape_mismatch_names_case_and_files(brats_dir, rewrite_nifti):
    case = _first_case(brats_dir)
    rewrite_nifti(case.images["t1"].path, data=np.ones((8, 8, 5), np.float32))
    with pytest.raises(
        DataError,
        match=r"Case BraTS2021_00000: file BraTS2021_00000_t1\.nii\.gz has shape \(8, 8, 5\), "
        r"but BraTS2021_00000_flair\.nii\.gz has \(8, 8, 6\)",
    ):
        read_case(case, SCHEME)


def test_affine_mismatch_beyond_tolerance(brats_dir, rewrite_nifti):
    case = _first_case(brats_dir)
    affine = nib.load(case.label).affine.copy()
    affine[2, 3] += 0.01
    rewrite_nifti(case.label, affine=affine)
    with pytest.raises(DataError, match=r"Case BraTS2021_00000: the affine of file .*_seg\.nii\.gz differs"):
        read_case(case, SCHEME)
    assert read_case(case, SCHEME, affine_tolerance=0.1).label is not None


def test_nan_voxels_name_case_file_and_count(brats_dir, rewrite_nifti):
    case = _first_case(brats_dir)
    data = nib.load(case.images["flair"].path).get_fdata().astype(np.float32)
    data[0, 0, :2] = [np.nan, np.inf]
    rewrite_nifti(case.images["flair"].path, data=data)
    with pytest.raises(DataError, match=r"Case BraTS2021_00000: image file .*_flair\.nii\.gz holds 2 NaN/Inf"):
        read_case(case, SCHEME)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_finite_voxels_are_accepted_and_a_lone_minus_inf_is_not(brats_dir, rewrite_nifti, dtype):
    case = _first_case(brats_dir)
    data = nib.load(case.images["flair"].path).get_fdata().astype(dtype)
    data[0, 0, :3] = np.finfo(np.float32).max  # finite, though the float32 sum of a few of them is not
    rewrite_nifti(case.images["flair"].path, data=data)
    assert read_case(case, SCHEME).image.shape[0] == 4
    data[0, 1, 0] = -np.inf
    rewrite_nifti(case.images["flair"].path, data=data)
    with pytest.raises(DataError, match=r"holds 1 NaN/Inf"):
        read_case(case, SCHEME)


def test_unexpected_label_values_name_case_and_file(brats_dir, rewrite_nifti):
    case = _first_case(brats_dir)
    label = np.asarray(nib.load(case.label).dataobj).copy()
    label[0, 0, 0] = 7
    rewrite_nifti(case.label, data=label)
    with pytest.raises(DataError, match=r"Case BraTS2021_00000: label file .*_seg\.nii\.gz holds values \[7\]"):
        read_case(case, SCHEME)


def test_3d_file_where_4d_expected(msd_dir, rewrite_nifti):
    case = discover_decathlon(msd_dir)[0]
    rewrite_nifti(case.images["FLAIR"].path, data=np.ones((8, 8, 6), np.float32))
    with pytest.raises(DataError, match=r"Case BRATS_001: file BRATS_001\.nii\.gz should hold a 4D image"):
        read_case(case, None)


def _permuted(columns, signs, shape):
    """An affine whose voxel axes are a permutation of RAS with the given flips, spacing 1, 2, 3 mm."""
    affine = np.zeros((4, 4))
    for voxel_axis, (world_axis, sign) in enumerate(zip(columns, signs, strict=True)):
        affine[world_axis, voxel_axis] = sign * (voxel_axis + 1.0)
    affine[:3, 3] = [-11.0, 0.5, -2.0]
    affine[3, 3] = 1.0
    return affine


@pytest.mark.parametrize(
    ("columns", "signs"),
    [
        ((0, 1, 2), (-1, -1, 1)),  # flips only, like BraTS files
        ((1, 0, 2), (1, 1, 1)),  # permutation only
        ((2, 0, 1), (-1, 1, -1)),  # permutation and flips
        ((1, 2, 0), (1, -1, -1)),
    ],
)
def test_reoriented_arrays_and_affine_equal_closest_canonical(tmp_path, columns, signs):
    shape = (5, 4, 3)
    affine = _permuted(columns, signs, shape)
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1
    label = (np.arange(np.prod(shape)).reshape(shape) % 2).astype(np.uint8)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "image.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), tmp_path / "label.nii.gz")
    case = Case("c", {"ct": ImageSource(tmp_path / "image.nii.gz")}, tmp_path / "label.nii.gz")
    volume = read_case(case, decathlon_label_scheme({0: "background", 1: "a"}))
    canonical = nib.as_closest_canonical(nib.load(tmp_path / "image.nii.gz"))
    np.testing.assert_allclose(volume.affine, canonical.affine)
    np.testing.assert_array_equal(volume.image[0], canonical.get_fdata())
    np.testing.assert_array_equal(volume.label, np.asarray(nib.as_closest_canonical(nib.load(case.label)).dataobj))
    assert volume.spacing == tuple(float(s) for s in nib.affines.voxel_sizes(canonical.affine))
