"""Backup and restore steps: each retryable and idempotent, heartbeating while it works.

A part step writes its file(s) under the backup id (a retry writes them again, whole); once
the backup has a manifest it is complete and every part step returns what the manifest says
instead of taking it again. Errors no retry can fix (a tampered backup, a missing one, an
unusable store) are raised as non-retryable ``ApplicationError``s typed by their kind.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio import activity

from activities.backup_steps import (
    CONFIG_FILE,
    MODELS,
    PG_FILE,
    REDIS_FILE,
    BackupSteps,
    typed_errors,
)
from activities.restore import RestoreActivities
from flashmm.backup import manifest, models, pg, redisdump, retention
from flashmm.backup.manifest import FileEntry, Manifest
from flashmm.backup.store import (
    MANIFEST,
    BackupCorruptError,
    check_id,
)
from flashmm.redact import mask_url, redact
from flashmm.stores.pg.migrate import migrate
from workflows.backup_types import (
    BackupFile,
    BackupPart,
    BackupRecord,
    BackupSummary,
    FinalizeRequest,
    PartResult,
    RetentionRequest,
    RetentionResult,
    VerifyRequest,
)


class BackupActivities(BackupSteps):
    """The steps of the Backup workflow; ``activities()`` adds Restore's, for one worker."""

    def activities(self) -> list[Callable[..., Any]]:
        """Every backup and restore activity, for a worker's ``activities=``."""
        restore = RestoreActivities(self.s, self.cfg, self._store)
        return [
            self.backup_postgres,
            self.backup_redis,
            self.backup_models,
            self.backup_config,
            self.finalize_backup,
            self.verify_backup,
            self.apply_retention,
            self.record_backup,
            *restore.activities(),
        ]

    # --- backup --------------------------------------------------------------------------
    @activity.defn(name="backup_postgres")
    async def backup_postgres(self, part: BackupPart) -> PartResult:
        """``pg_dump -Fc`` of the configured database, with its row counts."""
        with typed_errors():
            done = await self._existing(part.backup_id, "postgres")
            if done is not None:
                return done
            dsn = self._dsn()
            with self.store.staging() as d:
                out = d / PG_FILE
                meta = await self._beating(pg.dump(dsn, out, self.cfg.pg_bin_dir), "pg_dump")
                f = await self._put_staged(part.backup_id, PG_FILE, out)
            return PartResult("postgres", [f], {**meta, "source": mask_url(dsn)})

    @activity.defn(name="backup_redis")
    async def backup_redis(self, part: BackupPart) -> PartResult:
        """Every key of the configured Redis database (DUMP + PTTL)."""
        with typed_errors():
            done = await self._existing(part.backup_id, "redis")
            if done is not None:
                return done
            url = self._redis()
            with self.store.staging() as d:
                out = d / REDIS_FILE
                meta = await self._beating(
                    redisdump.export(url, out, self.cfg.redis_batch), "redis export"
                )
                f = await self._put_staged(part.backup_id, REDIS_FILE, out)
            return PartResult("redis", [f], {**meta, "source": mask_url(url)})

    @activity.defn(name="backup_models")
    async def backup_models(self, part: BackupPart) -> PartResult:
        """The files of the configured model path (none configured: nothing to back up)."""
        with typed_errors():
            done = await self._existing(part.backup_id, "models")
            if done is not None:
                return done
            if not self.s.ml.model_path:
                return PartResult("models", [], {"source": None})
            source = Path(self.s.ml.model_path).resolve()
            if not source.exists():
                return PartResult("models", [], {"source": str(source), "missing": True})
            found = await asyncio.to_thread(models.artifact_files, source)
            out = []
            with self.store.staging() as d:
                for i, (rel, path) in enumerate(found):
                    # copied first: the checksum is of exactly what is stored, even if the
                    # live file is replaced meanwhile
                    staged = d / str(i)
                    await self._thread(f"copy {rel}", shutil.copyfile, path, staged)
                    out.append(await self._put_staged(part.backup_id, f"{MODELS}/{rel}", staged))
            return PartResult(
                "models", out, {"source": str(source), "single_file": source.is_file()}
            )

    @activity.defn(name="backup_config")
    async def backup_config(self, part: BackupPart) -> PartResult:
        """The effective settings, secrets left out."""
        with typed_errors():
            done = await self._existing(part.backup_id, "config")
            if done is not None:
                return done
            doc = redact(self.s.model_dump(mode="json"))
            if "backup" not in doc:
                doc["backup"] = redact(self.cfg.model_dump(mode="json"))
            data = json.dumps(doc, indent=1, sort_keys=True).encode()
            await asyncio.to_thread(self.store.put_bytes, part.backup_id, CONFIG_FILE, data)
            sha = manifest.checksum(data)
            return PartResult("config", [BackupFile(CONFIG_FILE, sha, len(data))], {})

    @activity.defn(name="finalize_backup")
    async def finalize_backup(self, req: FinalizeRequest) -> BackupSummary:
        """Write the manifest, last: from now on the backup is complete."""
        with typed_errors():
            check_id(req.backup_id)
            store = self.store
            if not await asyncio.to_thread(store.complete, req.backup_id):
                names = [f.name for p in req.parts for f in p.files]
                if len(names) != len(set(names)):
                    raise BackupCorruptError(f"two parts wrote the same file: {sorted(names)}")
                m = Manifest(
                    req.backup_id,
                    req.created_at,
                    req.workflow_id,
                    [FileEntry(f.name, f.sha256, f.size) for p in req.parts for f in p.files],
                    {p.part: {**p.meta, "files": len(p.files)} for p in req.parts},
                )
                await asyncio.to_thread(store.put_bytes, req.backup_id, MANIFEST, m.to_bytes())
                reused = False
            else:
                reused = True
            m, digest = await self._manifest(req.backup_id)
            return self._summary(m, digest, reused)

    def _summary(self, m: Manifest, digest: str, reused: bool = False) -> BackupSummary:
        return BackupSummary(
            m.backup_id,
            self.store.location(m.backup_id),
            digest,
            m.size_bytes,
            len(m.files),
            m.created_at,
            m.parts,
            reused,
        )

    @activity.defn(name="verify_backup")
    async def verify_backup(self, req: VerifyRequest) -> BackupSummary:
        """Read every file back from the store and check it against the manifest."""
        with typed_errors():
            check_id(req.backup_id)
            m, digest = await self._thread(
                "verify", manifest.verify, self.store, req.backup_id, req.expected_checksum
            )
            return self._summary(m, digest)

    @activity.defn(name="apply_retention")
    async def apply_retention(self, req: RetentionRequest) -> RetentionResult:
        """Delete what retention says (never the protected ids)."""
        with typed_errors():
            store = self.store
            found = []
            for bid in await asyncio.to_thread(store.backup_ids):
                activity.heartbeat(bid)
                found.append(await asyncio.to_thread(self._stored, bid))
            max_age = req.max_age_days or self.cfg.max_age_days
            doomed = retention.plan(
                found,
                req.keep or self.cfg.keep,
                datetime.fromisoformat(req.now),
                timedelta(days=max_age) if max_age else None,
                timedelta(hours=self.cfg.partial_grace_hours),
                req.protect,
            )
            for bid in doomed:
                await self._thread(f"delete {bid}", store.delete, bid)
            kept = sorted(b.backup_id for b in found if b.backup_id not in doomed)
            return RetentionResult(kept, doomed)

    def _stored(self, backup_id: str) -> retention.StoredBackup:
        if self.store.complete(backup_id):
            try:
                m, _ = manifest.load(self.store, backup_id)
                return retention.StoredBackup(backup_id, True, datetime.fromisoformat(m.created_at))
            except BackupCorruptError:  # counted as unfinished: it is not a usable backup
                pass
        return retention.StoredBackup(backup_id, False, self.store.modified(backup_id))

    @activity.defn(name="record_backup")
    async def record_backup(self, rec: BackupRecord) -> None:
        """Upsert the backup's row in ``backups`` (a failed run never overwrites a complete
        record of the same id), and mark the ones retention deleted."""
        dsn = self._dsn()
        if not self._migrated:
            await migrate(dsn)
            self._migrated = True
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(
                """INSERT INTO backups (id, started_at, finished_at, location, checksum,
                       size_bytes, status, details)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
                   ON CONFLICT (id) DO UPDATE SET finished_at = EXCLUDED.finished_at,
                       location = EXCLUDED.location, checksum = EXCLUDED.checksum,
                       size_bytes = EXCLUDED.size_bytes, status = EXCLUDED.status,
                       details = EXCLUDED.details
                   WHERE backups.status <> 'complete' OR EXCLUDED.status = 'complete'""",
                rec.backup_id,
                datetime.fromisoformat(rec.started_at),
                datetime.fromisoformat(rec.finished_at),
                rec.location,
                rec.checksum or None,
                rec.size_bytes,
                rec.status,
                json.dumps(rec.details, default=str),
            )
            if rec.deleted:
                await conn.execute(
                    "UPDATE backups SET status = 'deleted' WHERE id = ANY($1::text[])",
                    rec.deleted,
                )
        finally:
            await conn.close()
