"""Inputs, outputs and ids of the Backup and Restore workflows (no I/O)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def backup_id_for(workflow_id: str) -> str:
    """The backup id of a workflow id: the id itself where it is a safe file name, else a
    cleaned-up form plus a hash of the original (so two ids never share a backup)."""
    slug = _UNSAFE.sub("-", workflow_id).strip("-._")[:100] or "backup"
    if slug == workflow_id:
        return slug
    return f"{slug}-{hashlib.sha256(workflow_id.encode()).hexdigest()[:8]}"


@dataclass
class BackupInput:
    reason: str = "manual"
    actor: str = "operator"
    backup_id: str = ""  # empty: derived from the workflow id
    keep: int | None = None  # retention; None: the worker's backup settings
    max_age_days: float | None = None


@dataclass
class BackupPart:
    backup_id: str


@dataclass
class BackupFile:
    name: str
    sha256: str
    size: int


@dataclass
class PartResult:
    part: str  # postgres | redis | models | config
    files: list[BackupFile]
    meta: dict[str, Any] = field(default_factory=dict)
    reused: bool = False  # taken from an already complete backup


@dataclass
class FinalizeRequest:
    backup_id: str
    workflow_id: str
    created_at: str
    parts: list[PartResult]


@dataclass
class BackupSummary:
    backup_id: str
    location: str
    checksum: str  # sha256 of the manifest
    size_bytes: int
    files: int
    created_at: str
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    reused: bool = False


@dataclass
class VerifyRequest:
    backup_id: str
    expected_checksum: str = ""  # the manifest's sha256, when the caller knows it


@dataclass
class RetentionRequest:
    protect: list[str]
    now: str
    keep: int | None = None
    max_age_days: float | None = None


@dataclass
class RetentionResult:
    kept: list[str]
    deleted: list[str]


@dataclass
class BackupRecord:
    backup_id: str
    started_at: str
    finished_at: str
    location: str
    status: str  # complete | failed
    checksum: str = ""
    size_bytes: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)  # removed by retention: marked deleted


@dataclass
class BackupResult:
    backup_id: str
    location: str
    checksum: str
    size_bytes: int
    files: int
    reused: bool
    tables: dict[str, int]
    redis_keys: int
    model_files: int
    deleted: list[str]
    audit_hash: str
    notified: bool


@dataclass
class RestoreInput:
    backup_id: str
    actor: str = "operator"
    reason: str = ""
    expected_checksum: str = ""  # refuse the backup unless its manifest has this sha256
    target_dsn: str = ""  # empty: the configured database
    target_redis_url: str = ""  # empty: the configured Redis database
    target_model_dir: str = ""  # empty: the configured model path (none: models skipped)


@dataclass
class RestoreStep:
    backup_id: str
    target_dsn: str = ""
    target_redis_url: str = ""
    target_model_dir: str = ""
    started_at: str = ""  # when the restore began (keys with a shorter TTL may be gone)


@dataclass
class RestoreProof:
    backup_id: str
    ok: bool
    checksum: str
    tables: dict[str, list[int]]  # schema.table -> [rows in the backup, rows read back]
    redis: dict[str, Any]
    models: dict[str, Any]
    problems: list[str]
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit_hash: str = ""
