"""Backups of the platform's state (PostgreSQL, Redis, model artifacts, effective config)
into a backup store, and restores that prove themselves by reading back.

The Temporal side is ``workflows/backup.py`` (Backup, Restore) and ``activities/backup.py``;
this package holds the parts that need no Temporal: the stores, the manifest, the dump and
restore of each system, retention and redaction.
"""

from flashmm.backup.config import BackupSettings, backup_settings
from flashmm.backup.manifest import FileEntry, Manifest
from flashmm.backup.store import (
    BackupCorruptError,
    BackupError,
    BackupNotFoundError,
    BackupStore,
    InvalidBackupIdError,
    LocalStore,
    S3Store,
    StoreUnavailableError,
    open_store,
)

__all__ = [
    "BackupCorruptError",
    "BackupError",
    "BackupNotFoundError",
    "BackupSettings",
    "BackupStore",
    "FileEntry",
    "InvalidBackupIdError",
    "LocalStore",
    "Manifest",
    "S3Store",
    "StoreUnavailableError",
    "backup_settings",
    "open_store",
]
