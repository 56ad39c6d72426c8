"""What the backup and restore activities share: settings, the backup store, heartbeating
around long work, manifests and restore targets, and errors typed for the workflows' retry
policies (non-retryable when no retry can fix them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from flashmm.backup import manifest
from flashmm.backup.config import BackupSettings, backup_settings
from flashmm.backup.manifest import FileEntry, Manifest
from flashmm.backup.store import (
    BackupCorruptError,
    BackupError,
    BackupStore,
    check_id,
    open_store,
    sha256_file,
)
from flashmm.config import Settings
from workflows.backup_types import (
    BackupFile,
    PartResult,
    RestoreStep,
)

T = TypeVar("T")
PG_FILE, REDIS_FILE, CONFIG_FILE, MODELS = "postgres.dump", "redis.jsonl", "config.json", "models"
PART_FILES = {"postgres": PG_FILE, "redis": REDIS_FILE, "models": MODELS, "config": CONFIG_FILE}


@contextlib.contextmanager
def typed_errors() -> Iterator[None]:
    """Backup errors as ApplicationErrors the workflow's retry policy understands."""
    try:
        yield
    except BackupError as e:
        raise ApplicationError(str(e), type=e.kind, non_retryable=not e.retryable) from e


def backup_files(entries: list[FileEntry]) -> list[BackupFile]:
    return [BackupFile(f.name, f.sha256, f.size) for f in entries]


class BackupSteps:
    """Settings and helpers of one deployment's backup and restore steps."""

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
        return PartResult(part, backup_files(m.files_of(PART_FILES[part])), meta, reused=True)

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
