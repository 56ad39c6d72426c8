"""Backup and restore steps: each retryable and idempotent, heartbeating while it works.

A part step writes its file(s) under the backup id (a retry writes them again, whole); once
the backup has a manifest it is complete and every part step returns what the manifest says
instead of taking it again. Errors no retry can fix (a tampered backup, a missing one, an
unusable store) are raised as non-retryable ``ApplicationError``s typed by their kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from flashmm.backup import manifest, models, pg, redisdump, retention
from flashmm.backup.config import BackupSettings, backup_settings
from flashmm.backup.manifest import FileEntry, Manifest
from flashmm.backup.redact import mask_url, redact
from flashmm.backup.store import (
    MANIFEST,
    BackupCorruptError,
    BackupError,
    BackupStore,
    check_id,
    open_store,
    sha256_file,
)
from flashmm.config import Settings
from flashmm.stores.pg.migrate import migrate
from workflows.backup import (
    BackupFile,
    BackupPart,
    BackupRecord,
    BackupSummary,
    FinalizeRequest,
    PartResult,
    RestoreProof,
    RestoreStep,
    RetentionRequest,
    RetentionResult,
    VerifyRequest,
)

T = TypeVar("T")
PG_FILE, REDIS_FILE, CONFIG_FILE, MODELS = "postgres.dump", "redis.jsonl", "config.json", "models"
PART_FILES = {"postgres": PG_FILE, "redis": REDIS_FILE, "models": MODELS, "config": CONFIG_FILE}


@contextlib.contextmanager
def _typed_errors() -> Iterator[None]:
    """Backup errors as ApplicationErrors the workflow's retry policy understands."""
    try:
        yield
    except BackupError as e:
        raise ApplicationError(str(e), type=e.kind, non_retryable=not e.retryable) from e


def _files(entries: list[FileEntry]) -> list[BackupFile]:
    return [BackupFile(f.name, f.sha256, f.size) for f in entries]


class BackupActivities:
    """The steps of Backup and Restore for one deployment's settings."""

    def __init__(
        self,
        settings: Settings,
        backup: BackupSettings | None = None,
        store: BackupStore | None = None,
    ) -> None:
        self.s = settings
        self.cfg = backup or backup_settings(settings)
        self._store = store
        self._migrated = False

    def activities(self) -> list[Callable[..., Any]]:
        """Every backup and restore activity, for a worker's ``activities=``."""
        return [
            self.backup_postgres,
            self.backup_redis,
            self.backup_models,
            self.backup_config,
            self.finalize_backup,
            self.verify_backup,
            self.apply_retention,
            self.record_backup,
            self.restore_postgres,
            self.restore_redis,
            self.restore_models,
            self.prove_restore,
        ]

    @property
    def store(self) -> BackupStore:
        if self._store is None:
            self._store = open_store(self.cfg)
        return self._store

    # --- helpers -------------------------------------------------------------------------
    async def _beating(self, work: Awaitable[T], what: str) -> T:
        """Await ``work``, heartbeating meanwhile; cancelling the activity cancels it."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                activity.heartbeat(what)
                done, _ = await asyncio.wait({task}, timeout=self.cfg.heartbeat_s)
                if done:
                    return task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _thread(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        return await self._beating(asyncio.to_thread(fn, *args), what)

    async def _existing(self, backup_id: str, part: str) -> PartResult | None:
        """The part as recorded in the manifest when the backup is already complete."""
        check_id(backup_id)
        if not await asyncio.to_thread(self.store.complete, backup_id):
            return None
        m, _ = await asyncio.to_thread(manifest.load, self.store, backup_id)
        meta = dict(m.parts.get(part, {}))
        return PartResult(part, _files(m.files_of(PART_FILES[part])), meta, reused=True)

    async def _put_staged(self, backup_id: str, name: str, path: Path) -> BackupFile:
        sha, size = await self._thread(f"checksum {name}", sha256_file, path)
        await self._thread(f"store {name}", self.store.put, backup_id, name, path, True)
        return BackupFile(name, sha, size)

    async def _fetch(self, m: Manifest, name: str, dest: Path) -> Path:
        """A file of the backup into ``dest``, checked against the manifest once more (it
        was verified before the restore began; this catches a change since)."""
        entry = next((f for f in m.files if f.name == name), None)
        if entry is None:
            raise BackupCorruptError(f"backup {m.backup_id} has no {name}")
        await self._thread(f"fetch {name}", self.store.get, m.backup_id, name, dest)
        sha, size = await self._thread(f"checksum {name}", sha256_file, dest)
        if (sha, size) != (entry.sha256, entry.size):
            raise BackupCorruptError(f"backup {m.backup_id}: {name} changed since it was verified")
        return dest

    async def _manifest(self, backup_id: str) -> tuple[Manifest, str]:
        check_id(backup_id)
        return await asyncio.to_thread(manifest.load, self.store, backup_id)

    def _dsn(self, target: str = "") -> str:
        return target or self.s.stores.postgres_dsn

    def _redis(self, target: str = "") -> str:
        return target or self.s.stores.redis_url

    def _model_dests(self, m: Manifest, step: RestoreStep) -> dict[str, Path] | str:
        """Where each backed-up model file goes, or why none is restored."""
        files = m.files_of(MODELS)
        if not files:
            return "the backup holds no model artifacts"
        single = bool(m.parts.get("models", {}).get("single_file"))
        if step.target_model_dir:
            base = Path(step.target_model_dir)
        elif self.s.ml.model_path:
            base = Path(self.s.ml.model_path)
            if single:  # the configured path is the file itself
                return {files[0].name: base}
        else:
            return "no target: give target_model_dir or configure ml.model_path"
        return {f.name: base / f.name.removeprefix(MODELS + "/") for f in files}

    # --- backup --------------------------------------------------------------------------
    @activity.defn(name="backup_postgres")
    async def backup_postgres(self, part: BackupPart) -> PartResult:
        """``pg_dump -Fc`` of the configured database, with its row counts."""
        with _typed_errors():
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
        with _typed_errors():
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
        with _typed_errors():
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
        with _typed_errors():
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
        with _typed_errors():
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
        with _typed_errors():
            check_id(req.backup_id)
            m, digest = await self._thread(
                "verify", manifest.verify, self.store, req.backup_id, req.expected_checksum
            )
            return self._summary(m, digest)

    @activity.defn(name="apply_retention")
    async def apply_retention(self, req: RetentionRequest) -> RetentionResult:
        """Delete what retention says (never the protected ids)."""
        with _typed_errors():
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

    # --- restore -------------------------------------------------------------------------
    @activity.defn(name="restore_postgres")
    async def restore_postgres(self, step: RestoreStep) -> dict[str, Any]:
        """``pg_restore --clean --if-exists`` into the target database, in one transaction."""
        with _typed_errors():
            m, _ = await self._manifest(step.backup_id)
            dsn = self._dsn(step.target_dsn)
            with self.store.staging() as d:
                dump = await self._fetch(m, PG_FILE, d / PG_FILE)
                await self._beating(pg.restore(dsn, dump, self.cfg.pg_bin_dir), "pg_restore")
            tables = m.parts.get("postgres", {}).get("tables", {})
            return {"target": mask_url(dsn), "tables": len(tables)}

    @activity.defn(name="restore_redis")
    async def restore_redis(self, step: RestoreStep) -> dict[str, Any]:
        """RESTORE ... REPLACE every backed-up key into the target Redis database."""
        with _typed_errors():
            m, _ = await self._manifest(step.backup_id)
            url = self._redis(step.target_redis_url)
            with self.store.staging() as d:
                path = await self._fetch(m, REDIS_FILE, d / REDIS_FILE)
                with path.open("rb") as f:
                    done = await self._beating(
                        redisdump.restore(url, f, self.cfg.redis_batch), "redis restore"
                    )
            return {"target": mask_url(url), **done}

    @activity.defn(name="restore_models")
    async def restore_models(self, step: RestoreStep) -> dict[str, Any]:
        """Each model file into the target directory, whole or not at all."""
        with _typed_errors():
            m, _ = await self._manifest(step.backup_id)
            dests = self._model_dests(m, step)
            if isinstance(dests, str):
                return {"skipped": dests}
            with self.store.staging() as d:
                for i, (name, dest) in enumerate(dests.items()):
                    staged = await self._fetch(m, name, d / f"{i}")
                    await self._thread(f"install {name}", models.install, staged, dest)
            return {"files": len(dests), "target": str(next(iter(dests.values())).parent)}

    @activity.defn(name="prove_restore")
    async def prove_restore(self, step: RestoreStep) -> RestoreProof:
        """Read the targets back and compare them with the manifest: rows per table, every
        Redis key and its TTL, each model file's sha256."""
        with _typed_errors():
            m, digest = await self._manifest(step.backup_id)
            problems: list[str] = []
            # PostgreSQL
            expected: dict[str, int] = dict(m.parts.get("postgres", {}).get("tables", {}))
            found = await self._beating(pg.row_counts(self._dsn(step.target_dsn)), "count rows")
            tables = {t: [n, found.get(t, -1)] for t, n in sorted(expected.items())}
            for t, (want, got) in tables.items():
                if got != want:
                    problems.append(
                        f"table {t}: {'missing' if got < 0 else f'{got} rows'}, backup has {want}"
                    )
            # Redis
            started = datetime.fromisoformat(step.started_at) if step.started_at else None
            elapsed = (time.time() - started.timestamp()) * 1000 if started else 0.0
            with self.store.staging() as d:
                path = await self._fetch(m, REDIS_FILE, d / REDIS_FILE)
                with path.open("rb") as f:
                    rb = await self._beating(
                        redisdump.read_back(
                            self._redis(step.target_redis_url),
                            f,
                            int(elapsed),
                            self.cfg.redis_batch,
                        ),
                        "redis read-back",
                    )
            if rb.missing:
                problems.append(f"{len(rb.missing)} Redis keys missing: {rb.missing[:5]}")
            if rb.ttl_wrong:
                problems.append(f"{len(rb.ttl_wrong)} Redis TTLs wrong: {rb.ttl_wrong[:5]}")
            redis_proof: dict[str, Any] = {
                "expected": rb.expected,
                "present": rb.present,
                "ttl_ok": rb.ttl_ok,
                "dump_identical": rb.dump_identical,
                "expired_since_restore": rb.expired,
                "missing": rb.missing[:100],
                "ttl_wrong": rb.ttl_wrong[:100],
            }
            # model artifacts
            dests = self._model_dests(m, step)
            models_proof: dict[str, Any]
            if isinstance(dests, str):
                models_proof = {"skipped": dests}
            else:
                want_sha = {f.name: f.sha256 for f in m.files_of(MODELS)}
                got_sha = await self._thread("checksum models", models.checksums, dests)
                bad = sorted(n for n in dests if got_sha[n] != want_sha[n])
                models_proof = {
                    "expected": len(dests),
                    "matching": len(dests) - len(bad),
                    "mismatched": bad,
                }
                if bad:
                    problems.append(f"model files differ or are missing: {bad[:5]}")
            return RestoreProof(
                step.backup_id, not problems, digest, tables, redis_proof, models_proof, problems
            )
