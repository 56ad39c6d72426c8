"""Restore steps: put a verified backup's PostgreSQL dump, Redis keys and model files back,
then prove it by reading every target back against the manifest."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import activity

from activities.backup_steps import MODELS, PG_FILE, REDIS_FILE, BackupSteps, typed_errors
from flashmm.backup import models, pg, redisdump
from flashmm.redact import mask_url
from workflows.backup_types import (
    RestoreProof,
    RestoreStep,
)


class RestoreActivities(BackupSteps):
    """The steps of the Restore workflow."""

    def activities(self) -> list[Callable[..., Any]]:
        return [self.restore_postgres, self.restore_redis, self.restore_models, self.prove_restore]

    # --- restore -------------------------------------------------------------------------
    @activity.defn(name="restore_postgres")
    async def restore_postgres(self, step: RestoreStep) -> dict[str, Any]:
        """``pg_restore --clean --if-exists`` into the target database, in one transaction."""
        with typed_errors():
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
        with typed_errors():
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
        with typed_errors():
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
        with typed_errors():
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
