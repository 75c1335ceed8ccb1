"""Items as files: a slice of a permuted and flipped file is a single-slice NIfTI at the right place in the world."""

import nibabel as nib
import numpy as np
import pytest

from alseg.core.patch_pool import Box
from alseg.datasets.annotation_items import AnnotationItem
from alseg.datasets.nifti_output import SourceGeometry


@pytest.mark.parametrize("ornt", [[[0, 1], [1, 1], [2, 1]], [[2, -1], [0, 1], [1, -1]], [[1, 1], [2, -1], [0, -1]]])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_slice_file_overlays_its_case(tmp_path, ornt, axis):
    rng = np.random.default_rng(0)
    canonical = rng.normal(size=(5, 6, 7)).astype(np.float32)  # the reader's RAS+ frame
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [-4.0, 5.0, -6.0]
    ornt = np.array(ornt)
    data = nib.orientations.apply_orientation(canonical, ornt)
    path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(data, affine @ nib.orientations.inv_ornt_aff(ornt, canonical.shape)), path)
    geometry = SourceGeometry.of_file(path, "case")
    assert geometry.reoriented_shape == canonical.shape
    for index in (0, canonical.shape[axis] - 1):
        item = AnnotationItem(f"case:{index}", "case", index, axis, geometry)
        image = item.to_file(item.slab(canonical), "test")
        assert image.shape == item.shape and sorted(image.shape)[0] == 1
        np.testing.assert_allclose(image.affine, item.affine)
        voxels = np.indices(image.shape).reshape(3, -1)
        world = image.affine @ np.vstack([voxels, np.ones(voxels.shape[1])])
        where = np.rint(np.linalg.inv(affine) @ world)[:3].astype(int)
        np.testing.assert_array_equal(where[axis], index)  # the slice's voxels lie in that slice of the case
        np.testing.assert_allclose(np.asanyarray(image.dataobj).reshape(-1), canonical[tuple(where)])
        back = item.to_reader(np.asanyarray(image.dataobj))
        np.testing.assert_allclose(np.take(back, 0, axis=axis), np.take(canonical, index, axis=axis))


@pytest.mark.parametrize("ornt", [[[0, 1], [1, 1], [2, 1]], [[2, -1], [0, 1], [1, -1]], [[1, 1], [2, -1], [0, -1]]])
def test_a_box_file_overlays_its_case(tmp_path, ornt):
    canonical = np.random.default_rng(1).normal(size=(5, 6, 7)).astype(np.float32)
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [-4.0, 5.0, -6.0]
    ornt = np.array(ornt)
    path = tmp_path / "case.nii.gz"
    data = nib.orientations.apply_orientation(canonical, ornt)
    nib.save(nib.Nifti1Image(data, affine @ nib.orientations.inv_ornt_aff(ornt, canonical.shape)), path)
    box = Box("case", (1, 2, 3), (3, 2, 4))
    item = AnnotationItem("case:1-2-3:3-2-4", "case", None, None, SourceGeometry.of_file(path, "case"), box)
    assert item.kind == "patch" and item.name == "case_box1-2-3_3-2-4.nii.gz"
    image = item.to_file(item.slab(canonical), "test")
    assert image.shape == item.shape and sorted(image.shape) == [2, 3, 4]
    voxels = np.indices(image.shape).reshape(3, -1)
    where = np.rint(np.linalg.inv(affine) @ image.affine @ np.vstack([voxels, np.ones(voxels.shape[1])]))[:3]
    where = where.astype(int)
    for axis in range(3):  # the file's voxels lie in the box, at the case's values
        assert set(where[axis]) == set(range(box.start[axis], box.start[axis] + box.size[axis]))
    np.testing.assert_allclose(np.asanyarray(image.dataobj).reshape(-1), canonical[tuple(where)])
    start, size = item.file_box
    file_part = data[tuple(slice(a, a + n) for a, n in zip(start, size, strict=True))]
    np.testing.assert_allclose(np.asanyarray(image.dataobj), file_part)
    np.testing.assert_allclose(item.to_reader(np.asanyarray(image.dataobj)), item.slab(canonical))
