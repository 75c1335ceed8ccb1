"""Process start-up: what ``alseg-train`` costs before any work, against the libraries it cannot avoid.

Runs, each in a fresh interpreter, ``import torch, lightning, monai`` (the floor) and ``alseg-train --help`` (imports
every section's classes and builds the parser), and prints both medians, their difference (issue 10's target: alseg's
own imports add <= 1 s) and their ratio. Usage: ``uv run python benchmarks/startup.py [--repeats 3]``.

Where Python may not write ``.pyc`` files (``PYTHONDONTWRITEBYTECODE``), both are dominated by compiling the
libraries from source unless the environment was installed with bytecode (the workspace sets uv's
``compile-bytecode``).
"""

import argparse
import subprocess
import sys

from timing import median_seconds

FLOOR = [sys.executable, "-c", "import torch, lightning, monai"]
TRAIN = [sys.executable, "-m", "alseg.core.cli", "--help"]


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)


def main() -> None:
    """Prints the start-up times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    floor, train = (median_seconds(lambda c=c: _run(c), args.repeats) for c in (FLOOR, TRAIN))
    print(f"import torch, lightning, monai: {floor:.2f} s")
    print(f"alseg-train --help:             {train:.2f} s")
    print(f"alseg's own start-up: {train - floor:+.2f} s (target <= 1.00 s); ratio {train / floor:.2f}")


if __name__ == "__main__":
    main()
