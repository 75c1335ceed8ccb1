import sys

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from alseg.core.errors import ConfigError, DataError
from alseg.strategies.label_interpolation import METHODS, _signed_distance_labels, interpolate_labels

# SWIG's wrappers of ITK warn once per type at import.
pytestmark = pytest.mark.filterwarnings("ignore:builtin type .* has no __module__ attribute:DeprecationWarning")

N = 48


def disk(radius, center=(N // 2, N // 2), size=N):
    rows, cols = np.mgrid[:size, :size]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def multi(*masks):
    """A multi-label item [C, H, W] (uint8) of binary masks [H, W]."""
    return np.stack(masks).astype(np.uint8)


def single(*masks):
    """A single-label item [1, H, W] (int64): mask k (0-based) gets class k + 1, later masks overwrite."""
    label = np.zeros((1, *masks[0].shape), np.int64)
    for k, mask in enumerate(masks, start=1):
        label[0][mask] = k
    return label


def masks_at(top, bottom, ts, multi_label=True, num_classes=1):
    return _signed_distance_labels(top, bottom, np.asarray(ts, float), multi_label, num_classes)


def stripes(width, *ranges):
    """A mask [3, width] that is True on the column ranges [start, stop)."""
    mask = np.zeros((3, width), bool)
    for start, stop in ranges:
        mask[:, start:stop] = True
    return mask


# --------------------------------------------------------------------------------------------- signed distance
@pytest.mark.parametrize("multi_label", [True, False])
def test_disk_with_linearly_changing_radius(multi_label):
    count, r_top, r_bottom = 5, 4, 16
    make = multi if multi_label else single
    inner = interpolate_labels(
        make(disk(r_top)), make(disk(r_bottom)), count, multi_label=multi_label, num_classes=1 if multi_label else 2
    )
    assert len(inner) == count
    for j, label in enumerate(inner, start=1):
        t = j / (count + 1)
        truth = disk((1 - t) * r_top + t * r_bottom)
        assert dice(label[0], truth) >= 0.9, j


def test_translating_disk_moves_through_the_middle():
    count, radius, start, stop = 3, 10, 18, 26
    top, bottom = disk(radius, (24, start)), disk(radius, (24, stop))
    assert (top & bottom).any()
    inner = interpolate_labels(multi(top), multi(bottom), count, multi_label=True, num_classes=1)
    for j, label in enumerate(inner, start=1):
        center = start + (stop - start) * j / (count + 1)
        rows, cols = np.nonzero(label[0])
        assert abs(cols.mean() - center) < 0.5 and abs(rows.mean() - 24) < 0.5, j
        assert dice(label[0], disk(radius, (24, center))) >= 0.9, j


END_PAIRS = {
    "overlapping": (disk(6, (20, 20)), disk(12, (26, 24))),
    "one_sided_top": (disk(8), np.zeros((N, N), bool)),
    "one_sided_bottom": (np.zeros((N, N), bool), disk(8)),
    "disjoint": (disk(5, (10, 10)), disk(7, (34, 34))),
    "touching_the_border": (disk(10, (0, 5)), disk(14, (3, 0))),
    "full_slice": (np.ones((N, N), bool), disk(9)),
    "single_pixels": (disk(0, (5, 5)), disk(0, (5, 5))),
}


@pytest.mark.parametrize("name", END_PAIRS)
def test_ends_are_reproduced_exactly(name):
    top, bottom = END_PAIRS[name]
    at_top, at_bottom = masks_at(multi(top), multi(bottom), [0.0, 1.0])
    assert np.array_equal(at_top, multi(top)) and np.array_equal(at_bottom, multi(bottom))


def test_single_label_ends_are_reproduced_exactly():
    top = single(disk(14), disk(6, (20, 20)), disk(4, (30, 28)))
    bottom = single(disk(12, (26, 22)), disk(3, (30, 30)), np.zeros((N, N), bool))
    at_top, at_bottom = masks_at(top, bottom, [0.0, 1.0], multi_label=False, num_classes=4)
    assert np.array_equal(at_top, top) and np.array_equal(at_bottom, bottom)


@pytest.mark.parametrize("name", END_PAIRS)
def test_inner_masks_lie_between_intersection_and_union_and_change_once(name):
    top, bottom = END_PAIRS[name]
    inner = [label[0].astype(bool) for label in masks_at(multi(top), multi(bottom), np.linspace(0, 1, 11))]
    for mask in inner:
        assert not (mask & ~(top | bottom)).any() and not ((top & bottom) & ~mask).any()
    flips = np.diff(np.stack(inner).astype(int), axis=0)
    assert (np.abs(flips).sum(axis=0) <= 1).all()


@pytest.mark.parametrize("name", ["overlapping", "touching_the_border", "full_slice"])
def test_blend_of_the_whole_slices_signed_distances(name):
    top, bottom = END_PAIRS[name]
    ts = np.array([0.1, 0.25, 0.5, 0.75, 0.9])[:, None, None]
    signed = [distance_transform_edt(~m) - distance_transform_edt(m) for m in (top, bottom)]
    if top.all():  # the depth of a full slice is measured to beyond its border
        rows, cols = np.indices(top.shape)
        signed[0] = -np.minimum.reduce([rows + 1, cols + 1, N - rows, N - cols]).astype(float)
    expected = ((1 - ts) * signed[0] + ts * signed[1]) < 0
    got = masks_at(multi(top), multi(bottom), ts.ravel())
    assert np.array_equal(np.stack(got)[:, 0], expected)


def test_class_absent_in_both_ends_stays_absent():
    empty = np.zeros((N, N), bool)
    inner = interpolate_labels(multi(disk(5), empty), multi(disk(9), empty), 3, multi_label=True, num_classes=2)
    assert all(label[1].sum() == 0 and label[0].sum() > 0 for label in inner)
    inner = interpolate_labels(single(disk(5), empty), single(disk(9), empty), 3, multi_label=False, num_classes=3)
    assert all(not (label == 2).any() and (label == 1).any() for label in inner)
    background_only = np.zeros((1, N, N), np.int64)
    inner = interpolate_labels(background_only, background_only, 2, multi_label=False, num_classes=1)
    assert all(np.array_equal(label, background_only) for label in inner)


@pytest.mark.parametrize("present", ["top", "bottom"])
def test_one_sided_class_erodes_to_nothing_at_the_midpoint(present):
    mask, empty = disk(10), np.zeros((N, N), bool)
    ends = (mask, empty) if present == "top" else (empty, mask)
    inner = [
        label[0].astype(bool) for label in interpolate_labels(*map(multi, ends), 5, multi_label=True, num_classes=1)
    ]
    if present == "bottom":
        inner = inner[::-1]  # now ordered by distance from the present end, t = 1/6 .. 5/6
    depth = distance_transform_edt(mask)
    for j, label in enumerate(inner, start=1):
        t = j / 6
        assert np.array_equal(label, depth > depth.max() * t / (1 - t)), j
    assert inner[1].any() and not inner[2].any()  # t = 1/3 keeps a core; nothing from t = 1/2 on


def test_disjoint_masks_are_one_sided_twice():
    top, bottom = END_PAIRS["disjoint"]
    empty = np.zeros((N, N), bool)
    both = interpolate_labels(multi(top), multi(bottom), 5, multi_label=True, num_classes=1)
    shrinking = interpolate_labels(multi(top), multi(empty), 5, multi_label=True, num_classes=1)
    growing = interpolate_labels(multi(empty), multi(bottom), 5, multi_label=True, num_classes=1)
    for label, a, b in zip(both, shrinking, growing, strict=True):
        assert np.array_equal(label, a | b)
    assert both[1][0].any() and not both[2][0].any() and both[3][0].any()  # t = 1/3, 1/2, 2/3
    assert not (both[1][0] & ~top).any() and not (both[3][0] & ~bottom).any()


def nested_stripes(nested_class):
    """Single-label ends [1, 3, 40]: a one-sided 5-column stripe (cols 18..22) nested in a surrounding class that
    fills cols 6..34 at the bottom. At t = 1/4, column 20 has the field -1.5 for both classes (a tie), columns 19
    and 21 have -0.75 (nested) and -2 (surrounding)."""
    nested, surround = stripes(40, (18, 23)), stripes(40, (12, 18), (23, 29))
    top = np.where(nested, nested_class, np.where(surround, 3 - nested_class, 0))[None]
    bottom = np.where(stripes(40, (6, 35)), 3 - nested_class, 0)[None]
    return top, bottom


def test_single_label_overlap_goes_to_the_deepest_class_and_ties_to_the_lower_index():
    top, bottom = nested_stripes(nested_class=1)
    (label,) = masks_at(top, bottom, [0.25], multi_label=False, num_classes=3)
    assert label[0, 0, 17:24].tolist() == [2, 2, 2, 1, 2, 2, 2]
    assert (np.flatnonzero(label[0, 0]) == np.arange(11, 30)).all() and (label[0] == label[0, :1]).all()
    top, bottom = nested_stripes(nested_class=2)
    (label,) = masks_at(top, bottom, [0.25], multi_label=False, num_classes=3)
    assert label[0, 0, 17:24].tolist() == [1] * 7


@pytest.mark.parametrize("method", METHODS)
def test_shapes_and_dtypes(method):
    if method == "morphological_contour":
        pytest.importorskip("itk")
    ends = multi(disk(6), disk(3)).astype(bool), multi(disk(8), disk(4))
    inner = interpolate_labels(*ends, 2, multi_label=True, num_classes=2, method=method)
    assert len(inner) == 2 and all(x.shape == (2, N, N) and x.dtype == np.uint8 for x in inner)
    ends = single(disk(6), disk(3)).astype(np.int32), single(disk(8), disk(4)).astype(np.uint8)
    inner = interpolate_labels(*ends, 3, multi_label=False, num_classes=3, method=method)
    assert len(inner) == 3 and all(x.shape == (1, N, N) and x.dtype == np.int64 for x in inner)
    assert interpolate_labels(*ends, 0, multi_label=False, num_classes=3, method=method) == []


def test_unknown_method_names_the_options():
    with pytest.raises(
        ConfigError,
        match=r"Unknown label interpolation method 'linear'\. Available: signed_distance, morphological_contour\.$",
    ):
        interpolate_labels(multi(disk(3)), multi(disk(3)), 1, multi_label=True, num_classes=1, method="linear")


@pytest.mark.parametrize(
    ("top", "bottom", "count", "multi_label", "num_classes"),
    [
        (multi(disk(3)), multi(disk(3))[:, :-1], 1, True, 1),  # different shapes
        (multi(disk(3), disk(2)), multi(disk(3), disk(2)), 1, True, 3),  # channels != num_classes
        (single(disk(3))[0], single(disk(3))[0], 1, False, 2),  # not [1, H, W]
        (multi(disk(3)), multi(disk(3)), -1, True, 1),  # count < 0
    ],
)
def test_caller_bugs_raise_value_error(top, bottom, count, multi_label, num_classes):
    with pytest.raises(ValueError):
        interpolate_labels(top, bottom, count, multi_label=multi_label, num_classes=num_classes)


def test_class_index_out_of_range_is_a_data_error():
    with pytest.raises(DataError, match=r"Class indices must be in \[0, 1\]. Got values \[0, 1, 2\]."):
        interpolate_labels(single(disk(3), disk(1)), single(disk(3)), 1, multi_label=False, num_classes=2)


# --------------------------------------------------------------------------------------------------------- ITK
@pytest.mark.parametrize("multi_label", [True, False])
def test_morphological_contour_on_disk_with_changing_radius(multi_label):
    pytest.importorskip("itk")
    count, r_top, r_bottom = 3, 6, 16
    make = multi if multi_label else single
    inner = interpolate_labels(
        make(disk(r_top)),
        make(disk(r_bottom)),
        count,
        multi_label=multi_label,
        num_classes=1 if multi_label else 2,
        method="morphological_contour",
    )
    for j, label in enumerate(inner, start=1):
        t = j / (count + 1)
        assert dice(label[0], disk((1 - t) * r_top + t * r_bottom)) >= 0.85, j


def test_morphological_contour_single_label_is_per_class_with_the_lower_index_winning():
    pytest.importorskip("itk")
    top, bottom = single(disk(10), disk(4), disk(3, (8, 8))), single(disk(14, (26, 22)), disk(7, (22, 22)))
    one_hot = [np.stack([end[0] == k for k in (1, 2, 3)]).astype(np.uint8) for end in (top, bottom)]
    channels = interpolate_labels(*one_hot, 3, multi_label=True, num_classes=3, method="morphological_contour")
    inner = interpolate_labels(top, bottom, 3, multi_label=False, num_classes=4, method="morphological_contour")
    for label, masks in zip(inner, channels, strict=True):
        expected = np.select([masks[0] == 1, masks[1] == 1, masks[2] == 1], [1, 2, 3], 0)
        assert np.array_equal(label[0], expected)
    assert any(label[0].max() == 3 for label in inner)  # the one-sided class 3 is extrapolated


def test_morphological_contour_extrapolates_a_one_sided_class_to_the_other_end():
    pytest.importorskip("itk")
    mask, empty = disk(10), np.zeros((N, N), bool)
    inner = interpolate_labels(
        multi(mask), multi(empty), 5, multi_label=True, num_classes=1, method="morphological_contour"
    )
    areas = [label[0].sum() for label in inner]
    assert all(a >= b for a, b in zip([mask.sum(), *areas], areas, strict=False)) and areas[-1] > 0
    assert all(not (label[0].astype(bool) & ~mask).any() for label in inner)


def test_morphological_contour_keeps_masks_one_pixel_thin():
    pytest.importorskip("itk")
    line = np.zeros((N, N), bool)
    line[20, 10:30] = True
    inner = interpolate_labels(
        single(line), single(line), 2, multi_label=False, num_classes=2, method="morphological_contour"
    )
    assert all(np.array_equal(label[0], line.astype(np.int64)) for label in inner)


def test_morphological_contour_without_itk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "itk", None)
    with pytest.raises(ConfigError, match=r"pip install 'alseg-strategies\[itk\]'"):
        interpolate_labels(
            multi(disk(3)), multi(disk(3)), 1, multi_label=True, num_classes=1, method="morphological_contour"
        )
