"""``alseg-predict``: write the predictions of a trained run as NIfTI label maps that overlay their input images.

Runs the best checkpoint of a round of an ``alseg-train`` run directory over a split of the run's own data or over a
folder of NIfTI images (:mod:`alseg.datasets.prediction_cases`), normalised as in training (the data module's
normaliser, fitted on the run's training cases). 2D models predict slice by slice along the data module's slicing
axis, 3D models the whole volume through their ``predict_step`` (sliding windows with the U-Net's ``roi_size``).
Each case gives ``<output>/<case_id>.nii.gz``, a label map in the dataset's label values
(:mod:`alseg.datasets.label_maps`), and with ``--probabilities`` ``<output>/probabilities/<case_id>.nii.gz``, one
channel per class or region on the 4th axis; both in the voxel order, affine and header of the case's (first) image
file (:mod:`alseg.datasets.nifti_output`).

Bad input (not a run directory, no such round, a missing checkpoint, an images folder without NIfTI images or with
a case missing a modality, an output folder that cannot be written) is one message and exit status 2; it is found
before anything is written (every file's header is read first; voxels that cannot be decoded stop the command at
that case), and every file is written completely or not at all.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch

from alseg.core.errors import AlsegError, ConfigError
from alseg.datasets.label_maps import LabelMapWriter
from alseg.datasets.nifti_output import SourceGeometry, probability_image, save_atomically
from alseg.datasets.normalization import nonzero_statistics
from alseg.datasets.prediction_cases import SPLITS, folder_cases, split_cases
from alseg.datasets.trained_run import TrainedRun, load_run
from alseg.datasets.volume_inference import predict_volume
from alseg.datasets.volumes import read_case

PROG = "alseg-predict"
PROBABILITIES_DIR = "probabilities"
_USER_OS_ERRORS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


class _Parser(argparse.ArgumentParser):
    """Reports a bad command line in the style of every alseg error: one message, then exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Prints ``alseg-predict: error: <message>`` and where to find the options, then exits with status 2."""
        self.exit(2, f"{PROG}: error: {message}\nRun '{PROG} --help' for the accepted options.\n")


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of ``alseg-predict``."""
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="The run directory (output_dir of alseg-train).")
    parser.add_argument("--output", type=Path, required=True, help="Folder the NIfTI files are written to.")
    parser.add_argument("--round", type=int, default=None, help="Round whose best checkpoint runs (default: last).")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--split", choices=SPLITS, default="test", help="Cases of the run's data (default: test).")
    source.add_argument("--images", type=Path, help="A folder of NIfTI images in the layout of the run's dataset.")
    parser.add_argument("--probabilities", action="store_true", help="Also write per-class probability maps.")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="Threshold of multi-label outputs (default: the model's first confidence level, 0.5).",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    parser.add_argument("--debug", action="store_true", help="Show tracebacks of errors.")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``alseg-predict``; exits with status 2 and one message on bad input."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except AlsegError as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        if args.debug or error.errno not in _USER_OS_ERRORS:
            raise
        print(f"{PROG}: error: cannot write {error.filename or 'a file'}: {error.strerror}.", file=sys.stderr)
        sys.exit(2)


def run(args: argparse.Namespace) -> list[Path]:
    """Writes the predictions that ``args`` ask for; returns the label maps written."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    device = choose_device(args.device)
    trained = load_run(args.run_dir, args.round)
    data_module = trained.data_module
    cases = folder_cases(data_module, args.images) if args.images else split_cases(data_module, args.split)
    levels = trained.model.confidence_levels
    threshold = args.threshold if args.threshold is not None else (levels[0] if levels else 0.5)
    writer = LabelMapWriter(data_module.source().label_scheme, threshold)
    prepare_output(args.output, args.probabilities)
    model = trained.model.to(device)
    description = f"alseg-predict round {trained.record.round}"
    written = []
    for case in cases:
        volume = read_case(case, None)
        image = data_module.normalizer(volume.image, nonzero_statistics(volume.image))
        probabilities = predict_volume(
            model, image, case.case_id, volume.spacing, device, data_module.axis, data_module.pool_batch_size
        )
        geometry = SourceGeometry.of_file(next(iter(case.images.values())).path, case.case_id)
        path = args.output / f"{case.case_id}.nii.gz"
        labels = geometry.to_file_order(writer(probabilities))
        save_atomically(geometry.like_source(labels, description), path)
        if args.probabilities:
            probability_path = args.output / PROBABILITIES_DIR / path.name
            save_atomically(probability_image(geometry, probabilities, description), probability_path)
        written.append(path)
        print(f"{case.case_id}: {path}")
    print(_summary(trained, len(written), args))
    return written


def choose_device(name: str | None) -> torch.device:
    """The device of ``--device`` (default: cuda if available, else cpu).

    Raises:
        ConfigError: Not a torch device, or one this machine does not have.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise ConfigError(f"The --device {name!r} is not available here: {error}") from None
    return device


def prepare_output(output: Path, probabilities: bool) -> None:
    """Creates the output folder (and its ``probabilities`` folder) and checks that files can be written to it.

    Raises:
        ConfigError: It exists and is not a folder, or cannot be created or written.
    """
    if output.exists() and not output.is_dir():
        raise ConfigError(f"The --output {output} exists and is not a directory.")
    folders = [output, output / PROBABILITIES_DIR] if probabilities else [output]
    try:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".{PROG}-{uuid.uuid4().hex}.probe"
            probe.touch()
            probe.unlink()
    except OSError as error:
        raise ConfigError(f"Cannot write the --output folder {output}: {error.strerror}.") from None


def _summary(trained: TrainedRun, count: int, args: argparse.Namespace) -> str:
    source = f"the cases in {args.images}" if args.images else f"the cases of split {args.split!r}"
    extra = f" and probability maps in {args.output / PROBABILITIES_DIR}" if args.probabilities else ""
    checkpoint = trained.checkpoint.relative_to(trained.path)
    return (
        f"Wrote {count} label maps{extra} of {source} with round {trained.record.round} ({checkpoint}) "
        f"to {args.output}."
    )


if __name__ == "__main__":
    main()
