"""Content fingerprints: what the cache and the data fingerprint of a run compare.

A file's fingerprint is a BLAKE2b digest of its bytes as stored (the compressed bytes of a
``.nii.gz``), never of its size and modification time: labels corrected and copied with preserved
times (``cp -p``, ``rsync -a``) have the old size and time but new bytes. Hashing the stored bytes
reads each file once without decompressing it, several times cheaper than decoding it, so a warm
cache checks every case by hashing and decodes nothing.

A case's fingerprint names its files by role (modality, 4D volume index, label), not by path, so a
dataset moved or copied elsewhere keeps its fingerprints.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from alseg.core.errors import DataError
from alseg.datasets.cases import Case


def file_digest(path: Path, case_id: str) -> str:
    """32 hex digits: the BLAKE2b-128 digest of the bytes of ``path``.

    Raises:
        DataError: The file cannot be read; the message names case and file.
    """
    try:
        with open(path, "rb") as stream:
            return hashlib.file_digest(stream, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
    except OSError as error:
        raise DataError(f"Case {case_id}: cannot read file {path}: {error}") from None


def case_fingerprint(case: Case) -> str:
    """The content fingerprint of a case: a JSON text of each role's file digest (each file hashed once)."""
    digests = {path: file_digest(path, case.case_id) for path in case.files}
    images = {name: [digests[source.path], source.channel] for name, source in case.images.items()}
    label = None if case.label is None else digests[case.label]
    return json.dumps({"images": images, "label": label})


def json_digest(content: Any) -> str:
    """64 hex digits: the SHA-256 digest of the canonical JSON text of ``content`` (sorted keys)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
