"""BCSS: tile names, institutes, the stratified split, class maps, the synthetic writer and alseg-train end to end."""

import hashlib
from collections import Counter

import numpy as np
import pytest
import yaml
from PIL import Image

from alseg.core.errors import ConfigError, DataError
from alseg.core.partial_labels import UNKNOWN
from alseg.core.registry import registered
from alseg.datasets.bcss import BCSSDataModule
from alseg.datasets.bcss_layout import BCSS_LABELS, BCSS_TEST_INSTITUTES, bcss_class_map, parse_tile_name
from alseg.datasets.make_data import main
from alseg.datasets.stratified_split import split_stratified
from alseg.datasets.synthetic_bcss import INSTITUTES, SyntheticBCSS, write_bcss

SMALL = SyntheticBCSS(tiles=60, size=(16, 16), institutes=6, tiles_per_case=2)  # 5 cases per institute
"""Six institutes of five cases of two tiles each."""


@pytest.fixture(scope="module")
def bcss_dir(tmp_path_factory):
    return write_bcss(tmp_path_factory.mktemp("data") / "bcss", SMALL)


def make(data_dir, **options):
    module = BCSSDataModule(str(data_dir), **{"initial_training_set_size": 2, **options})
    module.setup()
    return module


def digests(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def institutes_of(ids):
    return Counter(parse_tile_name(i).institute for i in ids)


def test_tile_names_give_case_and_institute():
    tile = parse_tile_name("TCGA-A1-A0SK-DX1_xmin45749_ymin25055_MPP-0.2500")
    assert (tile.case_id, tile.institute) == ("TCGA-A1-A0SK", "A1")
    assert parse_tile_name("TCGA-OL-A66H-DX1_xmin1_ymin2_MPP-0.2500_tile3").case_id == "TCGA-OL-A66H"
    assert parse_tile_name("TCGA-E2-A14Y").institute == "E2"
    for bad in ("TCGA-A1-A0S-DX1", "A1-A0SK-DX1", "TCGA-A1-A0SKX", "tcga-a1-a0sk"):
        with pytest.raises(DataError, match=f"BCSS tile {bad}: the name does not follow the BCSS convention"):
            parse_tile_name(bad)


def test_default_classes_keep_four_and_merge_the_rest_into_other(bcss_dir):
    module = make(bcss_dir)
    names = ["background", "tumor", "stroma", "lymphocytic_infiltrate", "necrosis_or_debris", "other"]
    assert module.id_to_class_names() == dict(enumerate(names)) and not module.multi_label()
    expected = np.zeros(256, np.int64)
    expected[[1, 2, 3, 4]] = [1, 2, 3, 4]
    expected[[v for v in BCSS_LABELS if v > 4]] = 5
    for item in [module.val_dataloader().dataset[i] for i in range(4)]:
        mask = np.asarray(Image.open(bcss_dir / "masks" / f"{item['id']}.png"))
        assert np.array_equal(item["label"][0].numpy(), expected[mask])
        assert item["image"].shape == (3, 16, 16) and item["case_id"] == item["id"]


def test_target_classes_and_ignored_labels(bcss_dir):
    assert bcss_class_map(["tumor", "stroma"]) == {0: "background", 1: "tumor", 2: "stroma"} | {
        v: "other" for v in BCSS_LABELS if v > 2
    }
    module = make(bcss_dir, target_classes=["tumor", "stroma"], ignore=["exclude", 6])
    assert module.id_to_class_names() == {0: "background", 1: "tumor", 2: "stroma", 3: "other"}
    item = module.val_dataloader().dataset[0]
    mask = np.asarray(Image.open(bcss_dir / "masks" / f"{item['id']}.png"))
    assert np.array_equal(
        item["label"][0].numpy(),
        np.where(np.isin(mask, [6, 7]), UNKNOWN, np.select([mask == 1, mask == 2, mask > 2], [1, 2, 3])),
    )
    merged = make(
        bcss_dir, classes={0: "background", 1: "tumor", 3: "immune", 10: "immune", 2: "rest"}, ignore=[4, 6, 7, 9]
    )
    assert merged.id_to_class_names() == {0: "background", 1: "tumor", 2: "rest", 3: "immune"}
    for options, message in [
        ({"target_classes": ["tumour"]}, "unknown BCSS label 'tumour'. Available: outside_roi, tumor, stroma"),
        (
            {"target_classes": ["tumor"], "ignore": ["tumor"]},
            r"\['tumor'\] are both in 'target_classes' and in 'ignore'",
        ),
        ({"ignore": ["outside_roi"]}, "outside_roi .* cannot be ignored"),
        ({"classes": {0: "background", 1: "tumor"}, "target_classes": ["tumor"]}, "'target_classes' or 'classes'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            BCSSDataModule(str(bcss_dir), **options)
    with pytest.raises(DataError, match=r"masks/.*\.png holds values \[.*\] outside the declared labels \[0, 1\]"):
        make(bcss_dir, classes={0: "background", 1: "tumor"})


def test_split_is_stratified_by_institute_and_keeps_cases_together(bcss_dir):
    module = make(bcss_dir)
    split = module.case_split()
    cases = [{parse_tile_name(i).case_id for i in ids} for ids in (split.train, split.val, split.test)]
    assert [len(c) for c in cases] == [18, 6, 6] and len(set().union(*cases)) == 30  # 0.2 x 30 cases each
    for ids in (split.train, split.val, split.test):
        assert set(institutes_of(ids)) == set(INSTITUTES[:6])  # every institute in every split
    assert all(len(ids) == 2 * len(c) for ids, c in zip((split.train, split.val, split.test), cases, strict=True))
    assert make(bcss_dir).case_split() == split and make(bcss_dir, split_seed=1).case_split() != split


def test_stratified_split_shares_out_uneven_institutes_and_keeps_a_training_case_each():
    sizes = {"AA": 10, "BB": 5, "CC": 1}
    case_of = {f"{s}-{i}:{t}": f"{s}-{i}" for s, n in sizes.items() for i in range(n) for t in range(2)}
    split = split_stratified(case_of, {c: c[:2] for c in case_of.values()}, 0.25, 0.25, seed=3)
    # 4 test cases of 16: quotas 2.5, 1.25, 0.25; floors 2, 1, 0 and the largest remainder (AA) one more.
    assert Counter(i[:2] for i in split.test) == {"AA": 6, "BB": 2}
    # 4 validation cases of the 12 left (7, 4, 1): quotas 2.33, 1.33, 0.33 tie; CC must keep its only case.
    val = Counter(i[:2] for i in split.val)
    assert sum(val.values()) == 8 and val["AA"] in (4, 6) and val["BB"] in (2, 4) and "CC" not in val
    assert Counter(i[:2] for i in split.train)["CC"] == 2
    orders = {
        tuple(split_stratified(case_of, {c: c[:2] for c in case_of.values()}, 0.25, 0.25, s).val) for s in range(8)
    }
    assert len({Counter(i[:2] for i in val)["AA"] for val in orders}) == 2  # the tie goes either way by seed
    with pytest.raises(ConfigError, match=r"test split of 0\.5 x 4 cases needs 2 cases but can take only 1"):
        cases = ("A-1", "B-1", "B-2", "C-1")  # only B can give a case and keep one
        split_stratified({c: c for c in cases}, {c: c[0] for c in cases}, 0.0, 0.5)


def test_test_institutes_make_the_test_set(bcss_dir):
    module = make(bcss_dir, test_institutes=["OL", "LL"])
    split = module.case_split()
    assert set(institutes_of(split.test)) == {"OL", "LL"} and len(split.test) == 20  # all their tiles
    assert not {"OL", "LL"} & set(institutes_of(split.train + split.val)) and len(split.val) == 12  # 0.2 x 30 cases
    assert set(institutes_of(split.val)) == {"A1", "A2", "AR", "E2"}
    with pytest.raises(
        ConfigError, match=r"'test_institutes' .* unknown: \['EW', 'GM', 'S3'\]. Available: A1, A2, AR, E2, LL, OL\."
    ):
        make(bcss_dir, test_institutes=list(BCSS_TEST_INSTITUTES))
    with pytest.raises(ConfigError, match="'test_institutes' or 'test_fraction', not both"):
        BCSSDataModule(str(bcss_dir), test_institutes=["OL"], test_fraction=0.2)


def test_official_test_institutes_on_the_default_synthetic_data(tmp_path):
    module = BCSSDataModule(cache_dir=str(tmp_path), test_institutes=list(BCSS_TEST_INSTITUTES))
    split = module.case_split()
    assert (tmp_path / "synthetic").is_dir() and len(split.train + split.val + split.test) == 96
    assert set(institutes_of(split.test)) == set(BCSS_TEST_INSTITUTES) and len(split.test) == 48
    with pytest.raises(ConfigError, match="'synthetic' option of the bcss data module applies without a 'data_dir'"):
        BCSSDataModule(data_dir=str(tmp_path), synthetic=SyntheticBCSS())


def test_normalisation_is_per_channel_over_the_training_tiles(bcss_dir):
    module = make(bcss_dir, val_fraction=0.0, test_fraction=0.0, initial_training_set_size=60)
    images = np.stack([module.train_dataloader().dataset[i]["image"].numpy() for i in range(60)])
    np.testing.assert_allclose(images.mean((0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(images.std((0, 2, 3)), 1.0, atol=1e-4)


def test_writer_is_deterministic_and_colours_follow_the_mask(tmp_path):
    first = write_bcss(tmp_path / "a", SMALL)
    assert digests(write_bcss(tmp_path / "b", SMALL)) == digests(first)
    assert digests(write_bcss(tmp_path / "c", SyntheticBCSS(**{**SMALL.__dict__, "seed": 1}))) != digests(first)
    names = sorted(p.stem for p in (first / "images").iterdir())
    assert len(names) == 60 and sorted(p.stem for p in (first / "masks").iterdir()) == names
    assert institutes_of(names) == dict.fromkeys(INSTITUTES[:6], 10)
    images = np.stack([np.asarray(Image.open(first / "images" / f"{n}.png")) for n in names])
    masks = np.stack([np.asarray(Image.open(first / "masks" / f"{n}.png")) for n in names])
    assert images.shape == (60, 16, 16, 3) and set(np.unique(masks)) <= {0, 1, 2, 3, 4, 6, 7, 9}
    assert {1, 2, 3, 4} <= set(np.unique(masks)) and (masks == 0).any()
    tumour, stroma = images[masks == 1].mean(0), images[masks == 2].mean(0)
    assert stroma[1] - tumour[1] > 40  # stroma is pink, tumour dark purple


def test_make_data_writes_the_bcss_layout(tmp_path, capsys):
    assert main([str(tmp_path / "cli"), "--layout", "bcss", "--tiles", "6", "--size", "16", "16", "--seed", "2"]) == 0
    assert "Wrote a synthetic bcss dataset of 6 tiles" in capsys.readouterr().out
    expected = write_bcss(tmp_path / "api", SyntheticBCSS(tiles=6, size=(16, 16), seed=2))
    assert digests(tmp_path / "cli") == digests(expected)
    for args, message in [
        (["--layout", "bcss", "--cases", "3"], "--cases applies to --layout brats and decathlon only"),
        (["--tiles", "3"], "--tiles applies to --layout bcss only"),
        (["--layout", "bcss", "--institutes", "13"], "number of institutes must be in [1, 12]. Got 13"),
    ]:
        assert main([str(tmp_path / "bad"), *args]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_bad_tile_names_and_grayscale_tiles_name_the_file(tmp_path):
    data = write_bcss(tmp_path / "bcss", SyntheticBCSS(tiles=12, size=(16, 16), institutes=2))
    name = sorted((data / "images").iterdir())[0].name
    gray = np.asarray(Image.open(data / "images" / name).convert("L"))
    Image.fromarray(gray).save(data / "images" / name)
    with pytest.raises(DataError, match=f"Image .*images/{name}: a grayscale image .*but RGB images are expected"):
        make(data)
    for folder in ("images", "masks"):
        (data / folder / name).rename(data / folder / "slide7.png")
    with pytest.raises(DataError, match=r"BCSS tile .*images/slide7\.png: the name does not follow"):
        make(data)


@pytest.fixture(scope="module")
def tiny_bcss(tmp_path_factory):
    return write_bcss(tmp_path_factory.mktemp("train") / "bcss", SyntheticBCSS(tiles=24, size=(16, 16), institutes=4))


def check_run(tmp_path, data_dir, records, strategy):
    selected = records[-1]["selected_ids"]
    assert len(set(selected)) == 2 and set(selected) <= {p.stem for p in (data_dir / "images").iterdir()}
    cost = records[-1]["annotation_cost"]  # the initial 2 tiles and the 2 selected
    assert (cost["items"], cost["slices"], cost["voxels"]) == (4, 4, 4 * 16 * 16) and cost["foreground_voxels"] > 0
    assert (records[-1]["ground_truth_revealed"] > 0) == (strategy in ("oracle_fg", "fg_aware_random"))
    assert "val/dice_tumor" in records[-1]["metrics"] and "val/mean_dice" in records[-1]["metrics"]
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["data"]["class_path"] == "alseg.datasets.bcss.BCSSDataModule"


@pytest.mark.parametrize("strategy", sorted(set(registered("strategy")) - {"interpolation"}))  # blocks of slices
def test_every_strategy_runs_on_bcss(tmp_path, tiny_bcss, alseg_train, strategy):
    """About 3 s a strategy on two CPU cores: a tiny U-Net, 16 x 16 tiles, one round of one epoch."""
    records = alseg_train(
        tmp_path / "run", ["--data", "bcss", "--data.data_dir", str(tiny_bcss)], "--strategy", strategy
    )
    check_run(tmp_path, tiny_bcss, records, strategy)


def test_block_selection_on_tiles_is_one_message(tmp_path, tiny_bcss, alseg_train, capsys):
    with pytest.raises(SystemExit) as exit_:
        alseg_train(
            tmp_path / "run", ["--data", "bcss", "--data.data_dir", str(tiny_bcss)], "--strategy", "interpolation"
        )
    assert exit_.value.code == 2 and "is not a slice" in capsys.readouterr().err
