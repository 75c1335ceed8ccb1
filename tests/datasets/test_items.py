import pytest

from alseg.core.errors import ConfigError, DataError
from alseg.datasets.cache import CaseMeta
from alseg.datasets.items import format_item_id, item_ids, parse_item_id


def _meta(case_id: str, shape=(4, 3, 5), nonempty=((1, 2), (0,), (1, 3))) -> CaseMeta:
    return CaseMeta(case_id, shape, (1.0, 1.0, 1.5), (), True, ((0.0, 1.0),), nonempty, None, "")


def test_slice_ids_along_each_axis():
    metas = [_meta("A"), _meta("B")]
    assert item_ids(metas, dim=2) == [f"{c}:{i}" for c in "AB" for i in range(5)]
    assert item_ids(metas, dim=2, axis=0) == [f"{c}:{i}" for c in "AB" for i in range(4)]
    assert len(item_ids(metas, dim=2, axis=1)) == 6


def test_volume_ids_and_empty_slices():
    metas = [_meta("A"), _meta("B")]
    assert item_ids(metas, dim=3) == ["A", "B"]
    assert item_ids(metas, dim=2, skip_empty=True) == ["A:1", "A:3", "B:1", "B:3"]
    assert item_ids(metas, dim=2, axis=1, skip_empty=True) == ["A:0", "B:0"]


def test_invalid_arguments_and_case_ids():
    with pytest.raises(ConfigError, match=r"'dim' must be 2 or 3\. Got 4"):
        item_ids([_meta("A")], dim=4)
    with pytest.raises(ConfigError, match=r"'axis' must be 0, 1 or 2\. Got 3"):
        item_ids([_meta("A")], dim=2, axis=3)
    with pytest.raises(DataError, match="Case a:b: case ids must not contain ':'"):
        item_ids([_meta("a:b")], dim=3)


def test_parse_and_format_round_trip():
    assert parse_item_id("BraTS2021_00042:77") == ("BraTS2021_00042", 77)
    assert parse_item_id("BraTS-GLI-00000-000") == ("BraTS-GLI-00000-000", None)
    for case_id, index in [("X", 0), ("BRATS_001", 12), ("Y", None)]:
        assert parse_item_id(format_item_id(case_id, index)) == (case_id, index)
    for malformed in ("X:", ":3", "X:-1", "X:a"):
        with pytest.raises(ValueError, match="Malformed item id"):
            parse_item_id(malformed)
