"""The site's strict build catches broken references and the lint catches missing docstrings."""

import importlib.util
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import griffe
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("griffe_roles", ROOT / "docs" / "griffe_roles.py")
griffe_roles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(griffe_roles)

DEMO = {
    "__init__.py": '"""Demo package."""\n',
    "base.py": '''
        """Base module."""


        class Base:
            """A base class."""

            def fit(self):
                """Fits."""

            def _hidden(self):
                """Private."""
        ''',
    "child.py": '''
        """Uses :class:`~demo.base.Base` and :func:`helper`; :class:`torch.nn.Module` is another library's."""

        import torch

        from demo.base import Base


        def helper():
            """Helps :class:`Child`."""


        class Child(Base):
            """Calls :meth:`fit` (inherited), :meth:`Base.fit`, :class:`torch.Tensor` and :meth:`_hidden`."""
        ''',
}


def write_demo(root: Path, extra: str = "") -> None:
    package = root / "demo"
    package.mkdir(parents=True)
    for name, text in DEMO.items():
        (package / name).write_text(textwrap.dedent(text) + extra * (name == "child.py"))


def test_roles_become_links_resolved_in_scope(tmp_path, caplog):
    write_demo(tmp_path, '\n\ndef broken():\n    """Names :func:`no_such_function`."""\n')
    extensions = griffe.load_extensions(griffe_roles.SphinxRolesToAutorefs)
    with caplog.at_level(logging.WARNING):
        demo = griffe.load("demo", search_paths=[str(tmp_path)], extensions=extensions)
    child = demo["child"]
    assert child.docstring.value == (
        "Uses [`Base`][demo.base.Base] and [`helper`][demo.child.helper]; `torch.nn.Module` is another library's."
    )
    assert child["helper"].docstring.value == "Helps [`Child`][demo.child.Child]."
    assert child["Child"].docstring.value == (
        "Calls [`fit`][demo.base.Base.fit] (inherited), [`Base.fit`][demo.base.Base.fit], `torch.Tensor` and `_hidden`."
    )
    assert child["broken"].docstring.value == "Names `no_such_function`."
    warnings = [r.getMessage() for r in caplog.records if "does not resolve" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].endswith(
        "child.py: the docstring of demo.child.broken names 'no_such_function', which does not resolve."
    )


def build(tmp_path: Path, extra: str) -> subprocess.CompletedProcess:
    """Builds a one-page site of the demo package with the site's extension, strictly."""
    write_demo(tmp_path / "src", extra)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Demo\n\n::: demo.child\n\n::: demo.base\n")
    shutil.copy(ROOT / "docs" / "griffe_roles.py", tmp_path / "griffe_roles.py")
    (tmp_path / "mkdocs.yml").write_text(
        textwrap.dedent("""
        site_name: demo
        theme: {name: material, font: false}
        plugins:
          - autorefs
          - mkdocstrings:
              handlers:
                python:
                  paths: [src]
                  options:
                    extensions: [griffe_roles.py:SphinxRolesToAutorefs]
                    show_submodules: true
        """)
    )
    command = [sys.executable, "-m", "mkdocs", "build", "--strict"]  # --quiet would hide the warnings --strict counts
    env = {"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    ("extra", "failure"),
    [
        ("", None),
        ('\n\ndef broken():\n    """Names :func:`no_such_function`."""\n', "does not resolve"),
        ('\n\ndef dangling():\n    """Links [gone][demo.base.Gone]."""\n', "Could not find cross-reference target"),
        ('\n\ndef wrong(a):\n    """Wrong.\n\n    Args:\n        b: Not a parameter.\n    """\n', "does not appear"),
    ],
    ids=["clean", "unresolved-role", "dangling-link", "unknown-parameter"],
)
def test_strict_build_fails_on_a_broken_reference(tmp_path, extra, failure):
    result = build(tmp_path, extra)
    if failure is None:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "site" / "index.html").is_file()
    else:
        assert result.returncode != 0
        assert failure in result.stderr


def test_ruff_fails_on_a_public_function_without_docstring():
    source = '"""A module."""\n\n\ndef public(x):\n    return x\n\n\ndef _private(x):\n    return x\n'
    command = ["ruff", "check", "--no-cache", "--stdin-filename", "packages/core/src/alseg/core/new_module.py", "-"]
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, input=source, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "D103" in result.stdout and "public" in result.stdout and "_private" not in result.stdout
