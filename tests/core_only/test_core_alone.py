"""alseg.core stands alone: a downstream project can depend on it without the reference packages."""

import subprocess
import sys


def test_importing_core_loads_no_reference_package():
    code = (
        "import sys, alseg.core, alseg.core.testing, alseg.core.cli;"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['alseg', 'models'], ['alseg', 'datasets'], ['alseg', 'strategies'])))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
