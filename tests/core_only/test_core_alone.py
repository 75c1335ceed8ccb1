"""alseg.core stands alone: a downstream project can depend on it without the reference or benchmark packages."""

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

#: Distributions that only alseg-bench needs; installing alseg-core must not bring them in.
BENCH_ONLY = ("submitit", "matplotlib")


def test_importing_core_loads_no_reference_or_benchmark_package_nor_pytest():
    # pytest: alseg-core does not depend on it; the kit's parametrize_with_checks imports it when called.
    code = (
        "import sys, alseg.core, alseg.core.testing, alseg.core.cli;"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['alseg', 'models'], ['alseg', 'datasets'], ['alseg', 'strategies'], ['alseg', 'bench']) "
        "or m.split('.')[0] in ('pytest', '_pytest')))"
    )
    # Not checked here: matplotlib in sys.modules. torchmetrics (through Lightning) imports it whenever it is installed,
    # as it is in the workspace; what matters is that alseg-core neither requires nor imports it (the tests below).
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_core_does_not_require_the_benchmarking_dependencies():
    # Optional extras do not count: matplotlib comes only with alseg-core[heatmaps], imported when heatmaps are drawn.
    required = [r for r in requires_of("alseg-core") if "extra ==" not in r]
    names = {re.match(r"[A-Za-z0-9._-]+", requirement).group().lower() for requirement in required}
    assert names and not names & set(BENCH_ONLY), sorted(names)
    optional = [r for r in requires_of("alseg-core") if r.startswith("matplotlib")]
    assert optional and all("extra == 'heatmaps'" in r.replace('"', "'") for r in optional), optional


def test_no_core_module_imports_the_benchmarking_dependencies_or_alseg_bench():
    spec = importlib.util.find_spec("alseg.core")
    sources = sorted(path for folder in spec.submodule_search_locations for path in Path(folder).rglob("*.py"))
    assert any(path.name == "cli.py" for path in sources)
    offending = [
        f"{path.name}:{line}: {module}"
        for path in sources
        for line, module in imported_modules(path)
        if module.split(".")[0] in BENCH_ONLY or module.split(".")[:2] == ["alseg", "bench"]
    ]
    assert offending == []


def requires_of(distribution):
    return importlib.metadata.requires(distribution) or []


def imported_modules(path):
    """Yields ``(line, module)`` of every absolute import in a source file, also those inside functions."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
