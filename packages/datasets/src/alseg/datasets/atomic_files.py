"""Files that are either complete or absent: written under a temporary name in the same folder, then renamed."""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` (same suffixes, e.g. for ``nib.save``) that replaces it on success.

    The temporary file is removed if the block raises, so a failed write leaves ``path`` as it was.
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp{''.join(path.suffixes)}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Writes ``path`` with ``write(stream)`` through :func:`replacing`."""
    with replacing(path) as temporary, open(temporary, "wb") as stream:
        write(stream)
