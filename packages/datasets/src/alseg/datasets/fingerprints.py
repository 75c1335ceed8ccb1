"""Content fingerprints: what the cache and the data fingerprint of a run compare.

A file's fingerprint is a BLAKE2b digest of its bytes as stored (the compressed bytes of a
``.nii.gz``), never of its size and modification time: labels corrected and copied with preserved
times (``cp -p``, ``rsync -a``) have the old size and time but new bytes. Hashing the stored bytes
reads each file once without decompressing it, several times cheaper than decoding it, so a warm
cache checks every case by hashing and decodes nothing.

A case's fingerprint names its files by role (modality, 4D volume index, label), not by path, so a
dataset moved or copied elsewhere keeps its fingerprints.

Hashing still reads every byte of the dataset at every start (about 75 s for BraTS 2021). A :class:`DigestMemo`
remembers each file's digest with its device, inode, size, modification and status-change times, and hashes again
only a file whose record differs. The status-change time (``st_ctime_ns``) is what makes this safe where size and
modification time alone are not: the kernel sets it on every write, rename into place or change of times, and no
copy tool can set it back, so a file rewritten with preserved size and times still gets a new record.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from alseg.core.errors import DataError
from alseg.datasets.atomic_files import atomic_write
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


class DigestMemo:
    """File digests remembered by file record (device, inode, size, modification and status-change times).

    Args:
        path: The JSON file that keeps the records between processes (written by :meth:`save`).

    Several threads may ask for digests at once (:meth:`VolumeCache.ensure_all
    <alseg.datasets.cache.VolumeCache.ensure_all>`): the memo changes only by single dict and set insertions.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fresh: set[str] = set()
        try:
            self._records: dict[str, list] = json.loads(path.read_text())
        except (OSError, ValueError):
            self._records = {}  # no memo yet, or a damaged one: hash again

    def digest(self, path: Path, case_id: str) -> str:
        """:func:`file_digest` of ``path``, from the memo while the file's record is unchanged.

        Raises:
            DataError: The file cannot be read; the message names case and file.
        """
        try:
            info = path.stat()
        except OSError as error:
            raise DataError(f"Case {case_id}: cannot read file {path}: {error}") from None
        record = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
        key = str(path.absolute())
        known = self._records.get(key)
        if known is not None and known[:-1] == record:
            return known[-1]
        digest = file_digest(path, case_id)
        self._records[key] = [*record, digest]
        self._fresh.add(key)
        return digest

    @property
    def hashed(self) -> int:
        """Files hashed by this instance (not found in the memo or changed since)."""
        return len(self._fresh)

    def save(self) -> None:
        """Writes the records (atomically; a concurrent writer's records may be lost, never mixed)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda stream: stream.write(json.dumps(self._records).encode()))


def case_fingerprint(case: Case, memo: DigestMemo | None = None) -> str:
    """The content fingerprint of a case: a JSON text of each role's file digest (each file hashed once).

    Args:
        case: The case.
        memo: Digests remembered from earlier starts, or None to hash every file.
    """
    digest = file_digest if memo is None else memo.digest
    digests = {path: digest(path, case.case_id) for path in case.files}
    images = {name: [digests[source.path], source.channel] for name, source in case.images.items()}
    label = None if case.label is None else digests[case.label]
    return json.dumps({"images": images, "label": label})


def json_digest(content: Any) -> str:
    """64 hex digits: the SHA-256 digest of the canonical JSON text of ``content`` (sorted keys)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
