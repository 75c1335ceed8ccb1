"""The BCSS conventions: TCGA tile names, institutes, mask values and class maps.

BCSS (Breast Cancer Semantic Segmentation; Amgad et al., 2019) annotates regions of TCGA breast-cancer slides. Its
tiles are named after the slide and the region's position in it::

    TCGA-A1-A0SK-DX1_xmin45749_ymin25055_MPP-0.2500.png

``TCGA-A1-A0SK`` is the patient (the case: every tile of a patient shares a split), ``A1`` the tissue source site —
the *institute* that contributed the slide, whose staining and scanning differ from the others' — and ``DX1`` the
slide. Any name that starts with ``TCGA-<institute>-<participant>`` (two and four upper-case letters or digits),
followed by the end or by ``-`` or ``_``, is accepted, so tiles cut from the regions keep working.

Mask values (:data:`BCSS_LABELS`) are those of the BCSS release; :data:`BCSS_TEST_INSTITUTES` are the institutes of
the challenge's official test set.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alseg.core.errors import ConfigError, DataError

BCSS_LABELS = {
    0: "outside_roi",
    1: "tumor",
    2: "stroma",
    3: "lymphocytic_infiltrate",
    4: "necrosis_or_debris",
    5: "glandular_secretions",
    6: "blood",
    7: "exclude",
    8: "metaplasia_NOS",
    9: "fat",
    10: "plasma_cells",
    11: "other_immune_infiltrate",
    12: "mucoid_material",
    13: "normal_acinus_or_duct",
    14: "lymphatics",
    15: "undetermined",
    16: "nerve",
    17: "skin_adnexa",
    18: "blood_vessel",
    19: "angioinvasion",
    20: "dcis",
    21: "other",
}
"""Mask value → BCSS label name."""
BCSS_TEST_INSTITUTES = ("OL", "LL", "E2", "EW", "GM", "S3")
"""The institutes of the official BCSS test set."""
DEFAULT_TARGET_CLASSES = ("tumor", "stroma", "lymphocytic_infiltrate", "necrosis_or_debris")
"""The BCSS labels kept as classes of their own by default (the challenge's main classes)."""
_TILE = re.compile(r"TCGA-(?P<institute>[A-Z0-9]{2})-[A-Z0-9]{4}(?=$|[-_])")
_EXAMPLE = "TCGA-A1-A0SK-DX1_xmin45749_ymin25055_MPP-0.2500"


@dataclass(frozen=True)
class BCSSTile:
    """What a tile name tells.

    Attributes:
        case_id: The TCGA patient, e.g. ``TCGA-A1-A0SK``.
        institute: The tissue source site, e.g. ``A1``.
    """

    case_id: str
    institute: str


def parse_tile_name(stem: str, path: Path | None = None) -> BCSSTile:
    """The case and institute of a BCSS tile from its file stem.

    Raises:
        DataError: The name does not start with ``TCGA-<institute>-<participant>``; the message names the file.
    """
    match = _TILE.match(stem)
    if match is None:
        raise DataError(
            f"BCSS tile {path or stem}: the name does not follow the BCSS convention "
            f"TCGA-<institute>-<participant>..., e.g. {_EXAMPLE}.png."
        )
    return BCSSTile(match.group(0), match["institute"])


def tile_name(case_id: str, xmin: int, ymin: int, mpp: float = 0.25, slide: str = "DX1") -> str:
    """The BCSS stem of a region of a case's slide, e.g. ``TCGA-A1-A0SK-DX1_xmin45749_ymin25055_MPP-0.2500``."""
    return f"{case_id}-{slide}_xmin{xmin}_ymin{ymin}_MPP-{mpp:.4f}"


def bcss_value(label: int | str, option: str) -> int:
    """The mask value of a BCSS label given by value or name.

    Raises:
        ConfigError: Neither a BCSS value nor a BCSS name (the message lists the names).
    """
    by_name = {name: value for value, name in BCSS_LABELS.items()}
    if isinstance(label, str) and label in by_name:
        return by_name[label]
    if isinstance(label, int) and not isinstance(label, bool) and label in BCSS_LABELS:
        return label
    raise ConfigError(f"The '{option}' option names unknown BCSS label {label!r}. Available: {', '.join(by_name)}.")


def bcss_class_map(target_classes: Sequence[str], ignore: Sequence[int] = ()) -> dict[int, str]:
    """A class map of BCSS masks: ``outside_roi`` → background, each target class its own, every other label → other.

    Args:
        target_classes: BCSS label names kept as classes (e.g. :data:`DEFAULT_TARGET_CLASSES`).
        ignore: Mask values left out of the map (to be ignored, not merged into ``other``).

    Returns:
        Mask value → class name (``background``, the target names, ``other`` if any label is left for it).

    Raises:
        ConfigError: An unknown or repeated target name, ``outside_roi`` as a target, or a target also ignored.
    """
    values = [bcss_value(name, "target_classes") for name in target_classes]
    if len(set(values)) != len(values) or 0 in values:
        raise ConfigError(
            f"The 'target_classes' option must name distinct BCSS labels other than outside_roi (the background). "
            f"Got {list(target_classes)}."
        )
    both = [BCSS_LABELS[value] for value in values if value in ignore]
    if both:
        raise ConfigError(f"BCSS labels {both} are both in 'target_classes' and in 'ignore'; keep one.")
    if 0 in ignore:
        raise ConfigError("The BCSS label outside_roi (0) is the background class and cannot be ignored.")
    classes = {0: "background"} | {value: BCSS_LABELS[value] for value in values}
    return classes | {value: "other" for value in BCSS_LABELS if value not in classes and value not in ignore}
