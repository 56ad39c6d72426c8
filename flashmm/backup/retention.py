"""Which backups retention deletes: a pure decision over what the store holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class StoredBackup:
    backup_id: str
    complete: bool
    created_at: datetime  # the manifest's time; for an unfinished one, its last write


def plan(
    backups: Iterable[StoredBackup],
    keep: int,
    now: datetime,
    max_age: timedelta | None = None,
    partial_grace: timedelta = timedelta(hours=24),
    protect: Iterable[str] = (),
) -> list[str]:
    """The ids to delete: complete backups beyond the newest ``keep`` or older than
    ``max_age``, and unfinished ones idle for longer than ``partial_grace`` (a younger one
    may still be being written). Protected ids (the backup just made) are never deleted."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    keep_ids = set(protect)
    items = list(backups)
    complete = sorted(
        (b for b in items if b.complete), key=lambda b: (b.created_at, b.backup_id), reverse=True
    )
    doomed = []
    for rank, b in enumerate(complete):
        too_old = max_age is not None and now - b.created_at > max_age
        if b.backup_id not in keep_ids and (rank >= keep or too_old):
            doomed.append(b.backup_id)
    for b in items:
        if not b.complete and b.backup_id not in keep_ids and now - b.created_at > partial_grace:
            doomed.append(b.backup_id)
    return sorted(doomed)
