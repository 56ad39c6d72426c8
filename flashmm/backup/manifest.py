"""The manifest: what a backup holds, with each file's sha256 and size, and the figures a
restore proves itself against (row counts per table, Redis keys, model files).

It is written last, so a backup with a manifest is complete; its own sha256 is the backup's
checksum (kept in the ``backups`` table).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flashmm.backup.store import (
    MANIFEST,
    BackupCorruptError,
    BackupNotFoundError,
    BackupStore,
    check_name,
)

FORMAT = 1


@dataclass(frozen=True)
class FileEntry:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    backup_id: str
    created_at: str  # ISO 8601, UTC
    workflow_id: str
    files: list[FileEntry]
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)  # part -> its figures
    format: int = FORMAT

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def files_of(self, prefix: str) -> list[FileEntry]:
        return [f for f in self.files if f.name == prefix or f.name.startswith(prefix + "/")]

    def to_bytes(self) -> bytes:
        doc = {
            "format": self.format,
            "backup_id": self.backup_id,
            "created_at": self.created_at,
            "workflow_id": self.workflow_id,
            "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in self.files],
            "parts": self.parts,
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise BackupCorruptError(f"unknown manifest format {doc.get('format')!r}")
            files = [
                FileEntry(check_name(str(f["name"])), str(f["sha256"]), int(f["size"]))
                for f in doc["files"]
            ]
            return cls(
                str(doc["backup_id"]),
                str(doc["created_at"]),
                str(doc["workflow_id"]),
                files,
                dict(doc.get("parts", {})),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise BackupCorruptError(f"manifest is unreadable: {e}") from None


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(store: BackupStore, backup_id: str) -> tuple[Manifest, str]:
    """The manifest and its checksum; BackupNotFoundError when the backup is not complete."""
    if not store.complete(backup_id):
        raise BackupNotFoundError(f"no complete backup {backup_id} at {store.location(backup_id)}")
    data = store.read_bytes(backup_id, MANIFEST)
    m = Manifest.from_bytes(data)
    if m.backup_id != backup_id:
        raise BackupCorruptError(f"manifest of {backup_id} names another backup: {m.backup_id}")
    return m, checksum(data)


def verify(
    store: BackupStore,
    backup_id: str,
    expected_checksum: str = "",
    progress: Callable[[str], None] | None = None,
) -> tuple[Manifest, str]:
    """Read every file back from the store and compare its sha256 and size with the
    manifest (and the manifest's own checksum with ``expected_checksum``, when given).
    Raises BackupCorruptError naming every file that differs."""
    m, digest = load(store, backup_id)
    if expected_checksum and digest != expected_checksum:
        raise BackupCorruptError(
            f"backup {backup_id}: manifest checksum {digest} is not the expected "
            f"{expected_checksum}"
        )
    bad = []
    for f in m.files:
        if progress is not None:
            progress(f.name)
        try:
            sha, size = store.checksum(backup_id, f.name)
        except BackupCorruptError:
            bad.append(f"{f.name}: missing")
            continue
        if size != f.size:
            bad.append(f"{f.name}: {size} bytes, manifest says {f.size}")
        elif sha != f.sha256:
            bad.append(f"{f.name}: sha256 {sha[:12]}…, manifest says {f.sha256[:12]}…")
    if bad:
        raise BackupCorruptError(f"backup {backup_id} failed verification: " + "; ".join(bad))
    return m, digest
