import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
# The examples import one another by module name, as under PYTHONPATH=docs/examples (the Extending page).
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))
