"""``alseg-make-data``: write a deterministic synthetic dataset in the BraTS, Decathlon or BCSS layout.

Examples::

    alseg-make-data data/brats --layout brats --cases 12 --shape 48 48 32
    alseg-make-data data/msd --layout decathlon --cases 12 --test-cases 2
    alseg-make-data data/bcss --layout bcss --tiles 96 --size 64 64 --seed 0

Options belong to layouts (:data:`OPTIONS`); one given for another layout is an error, never ignored.
"""

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from alseg.core.errors import AlsegError, ConfigError
from alseg.datasets.synthetic import DEFAULT_SHAPE, write_brats, write_decathlon
from alseg.datasets.synthetic_bcss import SyntheticBCSS, write_bcss

LAYOUTS = ("brats", "decathlon", "bcss")
_VOLUMES = ("brats", "decathlon")
OPTIONS: dict[str, tuple[str, ...]] = {
    "cases": _VOLUMES,
    "shape": _VOLUMES,
    "tumour_fraction": _VOLUMES,
    "tumour_contrast": _VOLUMES,
    "release": ("brats",),
    "test_cases": ("decathlon",),
    "tiles": ("bcss",),
    "size": ("bcss",),
    "institutes": ("bcss",),
    "tiles_per_case": ("bcss",),
}
"""Option (argparse destination) → the layouts it applies to."""
_VOLUME_DEFAULTS = {
    "cases": 12,
    "shape": DEFAULT_SHAPE,
    "tumour_fraction": 0.75,
    "tumour_contrast": 1.0,
    "release": "2021",
    "test_cases": 2,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alseg-make-data", description="Write a deterministic synthetic dataset.")
    parser.add_argument("out_dir", help="folder to create (must not exist or be empty)")
    parser.add_argument("--layout", choices=LAYOUTS, default="brats")
    parser.add_argument("--seed", type=int, default=0)
    volumes = parser.add_argument_group("brats and decathlon")
    volumes.add_argument("--cases", type=int, help="number of (training) cases (12)")
    volumes.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="volume shape (48 48 32)")
    volumes.add_argument("--tumour-fraction", type=float, help="fraction of cases with a tumour (0.75)")
    volumes.add_argument("--tumour-contrast", type=float, help="in (0, 1]; lower is harder (1)")
    volumes.add_argument("--release", choices=("2020", "2021", "2023"), help="BraTS naming (2021)")
    volumes.add_argument("--test-cases", type=int, help="unlabelled imagesTs cases (decathlon, 2)")
    tiles = parser.add_argument_group("bcss")
    tiles.add_argument("--tiles", type=int, help="number of tiles (96)")
    tiles.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="tile size (64 64)")
    tiles.add_argument("--institutes", type=int, help="institutes the cases come from, 1 to 12 (12)")
    tiles.add_argument("--tiles-per-case", type=int, help="tiles of every case (2)")
    return parser


def _write(args: argparse.Namespace) -> str:
    """Writes the dataset; returns what was written, for the message."""
    for name, layouts in OPTIONS.items():
        if getattr(args, name) is not None and args.layout not in layouts:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} applies to --layout {' and '.join(layouts)} only.")
    given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    if args.layout == "bcss":
        given |= {"size": tuple(given["size"])} if "size" in given else {}
        options = SyntheticBCSS(**{**asdict(SyntheticBCSS()), **given, "seed": args.seed})
        write_bcss(args.out_dir, options)
        return f"{options.tiles} tiles"
    values: dict[str, Any] = {**_VOLUME_DEFAULTS, **given}
    common = (args.out_dir, values["cases"], values["shape"], args.seed, values["tumour_fraction"])
    if args.layout == "brats":
        write_brats(*common, release=values["release"], tumour_contrast=values["tumour_contrast"])
    else:
        write_decathlon(*common, n_test=values["test_cases"], tumour_contrast=values["tumour_contrast"])
    return f"{values['cases']} cases"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``alseg-make-data``; returns the exit status (2 on bad input)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_request:  # argparse already printed the usage error
        return int(exit_request.code or 0)
    try:
        written = _write(args)
    except AlsegError as error:
        print(f"alseg-make-data: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote a synthetic {args.layout} dataset of {written} to {args.out_dir}.")
    return 0
