"""Class maps of 2D label images: mask values → class names, several values per class (merging), ignored values.

A class map such as ``{0: "background", 1: "tumor", 2: "stroma", 5: "other", 6: "other"}`` gives one softmax class
per distinct name; values that share a name are merged into one class. Class indices follow the smallest mask value
of each class, so that the order does not depend on how a configuration file orders its keys (YAML dumps may sort
them): class 0, which the metrics treat as background and leave out, is the class of the smallest mapped value.

Values listed in ``ignore`` may occur in masks without a class of their own: their pixels are unknown
(:data:`~alseg.core.partial_labels.UNKNOWN`), so that the losses and the metrics leave them out and they are no
foreground of the annotation cost. Every other value outside the map is a data error that names the mask file.
"""

import json
from collections.abc import Mapping, Sequence

from alseg.core.errors import ConfigError
from alseg.core.partial_labels import UNKNOWN
from alseg.datasets.labels import LabelScheme, value_lookup

MAX_MASK_VALUE = 65535
"""The largest mask value a class map may name (16-bit masks)."""


def _mask_value(value: object, option: str) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        number = -1
    if str(number) != str(value).strip() or not 0 <= number <= MAX_MASK_VALUE:
        raise ConfigError(f"The '{option}' option names mask values, integers in [0, {MAX_MASK_VALUE}]. Got {value!r}.")
    return number


def class_map_scheme(classes: Mapping[int, str], ignore: Sequence[int] = ()) -> LabelScheme:
    """The single-label scheme of a class map.

    Args:
        classes: Mask value → class name; values sharing a name are merged into one class.
        ignore: Mask values allowed in masks without a class; their pixels become ``UNKNOWN`` (see the module doc).

    Returns:
        A scheme with class names in class-index order (by the smallest mask value of each class) whose
        ``convert`` turns a raw mask ``[H, W]`` into ``uint8`` class indices and raises a ``DataError`` naming the
        file for values outside ``classes`` and ``ignore``.

    Raises:
        ConfigError: An empty map or fewer than two classes, a value that is not an integer in
            ``[0, MAX_MASK_VALUE]``, an empty class name, or a value both mapped and ignored.
    """
    if not isinstance(classes, Mapping) or not classes:
        raise ConfigError(f"The 'classes' option must map mask values to class names. Got {classes!r}.")
    mapped = {_mask_value(value, "classes"): name for value, name in classes.items()}
    for value, name in mapped.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"The 'classes' option maps mask value {value} to {name!r}; class names are non-empty.")
    ignored = sorted({_mask_value(value, "ignore") for value in ignore})
    both = sorted(set(ignored) & set(mapped))
    if both:
        raise ConfigError(f"Mask values {both} are both in the 'classes' and in the 'ignore' option; keep one.")
    names = list(dict.fromkeys(mapped[value] for value in sorted(mapped)))
    if len(names) < 2:
        raise ConfigError(
            f"The 'classes' option must name at least two classes (a background and a foreground). Got {names}."
        )
    targets = {value: names.index(name) for value, name in mapped.items()} | dict.fromkeys(ignored, UNKNOWN)
    description = json.dumps({"classes": {str(v): mapped[v] for v in sorted(mapped)}, "ignore": ignored})
    values = tuple(sorted(targets))
    return LabelScheme(f"class-map-{description}", values, tuple(names), False, value_lookup(targets))
