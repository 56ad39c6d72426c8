"""Backup and Restore workflows with fake activities in the time-skipping server (step
order, retries, a checksum failure that is not retried, retention), and the pieces that
need no servers: retention planning, the local store, manifest verification, redaction."""

from __future__ import annotations

import importlib.util
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from flashmm.backup import manifest, pg, redisdump, retention
from flashmm.backup.config import BackupSettings
from flashmm.backup.manifest import FileEntry, Manifest
from flashmm.backup.store import (
    BackupCorruptError,
    InvalidBackupIdError,
    LocalStore,
    S3Store,
    StoreUnavailableError,
    open_store,
)
from flashmm.config import load_settings
from flashmm.redact import MASK, redact
from workflows.backup import (
    Backup,
    BackupFile,
    BackupInput,
    BackupPart,
    BackupRecord,
    BackupResult,
    BackupSummary,
    FinalizeRequest,
    PartResult,
    Restore,
    RestoreInput,
    RestoreProof,
    RestoreStep,
    RetentionRequest,
    RetentionResult,
    VerifyRequest,
    backup_id_for,
)
from workflows.types import CONTROL_QUEUE, AuditEntry, Notice

BACKUP_STEPS = [
    "backup_postgres",
    "backup_redis",
    "backup_models",
    "backup_config",
    "finalize_backup",
    "verify_backup",
    "apply_retention",
    "record_backup",
    "audit",
    "notify",
]


class World:
    """Fake activities recording every call; retention runs the real planner over an
    in-memory list of stored backups."""

    def __init__(
        self,
        fail_pg_attempts: int = 0,
        corrupt: bool = False,
        proof_ok: bool = True,
        stored_ages_days: tuple[float, ...] = (),
        partial_ages_hours: tuple[float, ...] = (),
    ) -> None:
        self.calls: list[str] = []
        self.fail_pg_attempts = fail_pg_attempts
        self.corrupt = corrupt
        self.proof_ok = proof_ok
        self.stored_ages_days = stored_ages_days
        self.partial_ages_hours = partial_ages_hours
        self.pg_attempts = 0
        self.verify_attempts = 0
        self.records: list[BackupRecord] = []
        self.audits: list[AuditEntry] = []
        self.notices: list[Notice] = []
        self.retention: list[RetentionRequest] = []
        self.steps: list[RestoreStep] = []

    def _part(self, part: str, name: str) -> PartResult:
        self.calls.append(f"backup_{part}")
        return PartResult(part, [BackupFile(name, "ab" * 32, 10)], {"part": part})

    @activity.defn(name="backup_postgres")
    async def backup_postgres(self, p: BackupPart) -> PartResult:
        self.pg_attempts += 1
        if self.pg_attempts <= self.fail_pg_attempts:
            self.calls.append("backup_postgres (failed)")
            raise ApplicationError("connection reset")  # retryable
        r = self._part("postgres", "postgres.dump")
        r.meta = {"tables": {"public.orders": 3, "public.fills": 2}}
        return r

    @activity.defn(name="backup_redis")
    async def backup_redis(self, p: BackupPart) -> PartResult:
        r = self._part("redis", "redis.jsonl")
        r.meta = {"keys": 4}
        return r

    @activity.defn(name="backup_models")
    async def backup_models(self, p: BackupPart) -> PartResult:
        return self._part("models", "models/model.onnx")

    @activity.defn(name="backup_config")
    async def backup_config(self, p: BackupPart) -> PartResult:
        return self._part("config", "config.json")

    @activity.defn(name="finalize_backup")
    async def finalize_backup(self, req: FinalizeRequest) -> BackupSummary:
        self.calls.append("finalize_backup")
        assert [p.part for p in req.parts] == ["postgres", "redis", "models", "config"]
        return self._summary(req.backup_id)

    def _summary(self, backup_id: str) -> BackupSummary:
        return BackupSummary(
            backup_id,
            f"file:///backups/{backup_id}",
            "cd" * 32,
            40,
            4,
            "2024-01-01T00:00:00+00:00",
            {"postgres": {"tables": {"public.orders": 3}}, "redis": {"keys": 4}},
        )

    @activity.defn(name="verify_backup")
    async def verify_backup(self, req: VerifyRequest) -> BackupSummary:
        self.calls.append("verify_backup")
        self.verify_attempts += 1
        if self.corrupt:
            # not marked non-retryable here: the workflow's retry policy must stop it
            raise ApplicationError("postgres.dump: sha256 differs", type="BackupCorrupt")
        return self._summary(req.backup_id)

    @activity.defn(name="apply_retention")
    async def apply_retention(self, req: RetentionRequest) -> RetentionResult:
        self.calls.append("apply_retention")
        self.retention.append(req)
        now = datetime.fromisoformat(req.now)
        stored = [retention.StoredBackup(req.protect[0], True, now)]
        stored += [
            retention.StoredBackup(f"old-{d:g}d", True, now - timedelta(days=d))
            for d in self.stored_ages_days
        ]
        stored += [
            retention.StoredBackup(f"partial-{h:g}h", False, now - timedelta(hours=h))
            for h in self.partial_ages_hours
        ]
        doomed = retention.plan(
            stored,
            req.keep or 7,
            now,
            timedelta(days=req.max_age_days) if req.max_age_days else None,
            timedelta(hours=24),
            req.protect,
        )
        return RetentionResult(sorted({b.backup_id for b in stored} - set(doomed)), doomed)

    @activity.defn(name="record_backup")
    async def record_backup(self, rec: BackupRecord) -> None:
        self.calls.append("record_backup")
        self.records.append(rec)

    @activity.defn(name="audit")
    async def audit(self, entry: AuditEntry) -> str:
        self.calls.append("audit")
        self.audits.append(entry)
        return "ef" * 32

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> bool:
        self.calls.append("notify")
        self.notices.append(notice)
        return True

    async def _restore(self, name: str, step: RestoreStep) -> dict[str, Any]:
        self.calls.append(name)
        self.steps.append(step)
        return {"done": name}

    @activity.defn(name="restore_postgres")
    async def restore_postgres(self, step: RestoreStep) -> dict[str, Any]:
        return await self._restore("restore_postgres", step)

    @activity.defn(name="restore_redis")
    async def restore_redis(self, step: RestoreStep) -> dict[str, Any]:
        return await self._restore("restore_redis", step)

    @activity.defn(name="restore_models")
    async def restore_models(self, step: RestoreStep) -> dict[str, Any]:
        return await self._restore("restore_models", step)

    @activity.defn(name="prove_restore")
    async def prove_restore(self, step: RestoreStep) -> RestoreProof:
        self.calls.append("prove_restore")
        found = 3 if self.proof_ok else 2
        return RestoreProof(
            step.backup_id,
            self.proof_ok,
            "cd" * 32,
            {"public.orders": [3, found]},
            {"expected": 4, "present": 4},
            {"expected": 1, "matching": 1},
            [] if self.proof_ok else ["table public.orders: 2 rows, backup has 3"],
        )

    def activities(self) -> list[Any]:
        return [
            self.backup_postgres,
            self.backup_redis,
            self.backup_models,
            self.backup_config,
            self.finalize_backup,
            self.verify_backup,
            self.apply_retention,
            self.record_backup,
            self.audit,
            self.notify,
            self.restore_postgres,
            self.restore_redis,
            self.restore_models,
            self.prove_restore,
        ]


@asynccontextmanager
async def worker(env: WorkflowEnvironment, w: World) -> AsyncIterator[None]:
    async with Worker(
        env.client,
        task_queue=CONTROL_QUEUE,
        workflows=[Backup, Restore],
        activities=w.activities(),
    ):
        yield


async def _backup(env: WorkflowEnvironment, w: World, inp: BackupInput, wf_id: str) -> Any:
    async with worker(env, w):
        return await env.client.execute_workflow(
            Backup.run, inp, id=wf_id, task_queue=CONTROL_QUEUE
        )


def _app_error(e: WorkflowFailureError) -> ApplicationError:
    cause: BaseException | None = e.cause
    if isinstance(cause, ActivityError):
        cause = cause.cause
    assert isinstance(cause, ApplicationError), repr(e.cause)
    return cause


# --- workflows ------------------------------------------------------------------------


async def test_backup_runs_every_step_in_order(time_env: WorkflowEnvironment) -> None:
    w = World()
    res: BackupResult = await _backup(
        time_env, w, BackupInput("nightly", "schedule"), "nightly-backup-2024-01-01T02:30:00Z"
    )
    assert w.calls == BACKUP_STEPS
    # the backup id comes from the workflow id: a retry or re-run writes the same backup
    assert res.backup_id == backup_id_for("nightly-backup-2024-01-01T02:30:00Z")
    assert res.checksum == "cd" * 32 and res.files == 4 and not res.reused
    assert res.tables == {"public.orders": 3} and res.redis_keys == 4
    assert res.audit_hash == "ef" * 32 and res.notified
    (rec,) = w.records
    assert rec.status == "complete" and rec.checksum == "cd" * 32
    assert rec.location == f"file:///backups/{res.backup_id}"
    assert rec.details["workflow_id"] == "nightly-backup-2024-01-01T02:30:00Z"
    (a,) = w.audits
    assert (a.action, a.outcome, a.target, a.actor) == (
        "backup",
        "complete",
        res.backup_id,
        "schedule",
    )
    assert w.notices[0].severity == "info" and res.backup_id in w.notices[0].title


async def test_a_failed_step_is_retried(time_env: WorkflowEnvironment) -> None:
    w = World(fail_pg_attempts=2)
    res = await _backup(time_env, w, BackupInput(), "backup-retry")
    assert w.pg_attempts == 3
    assert w.calls[:3] == ["backup_postgres (failed)"] * 2 + ["backup_postgres"]
    assert w.calls[3:] == BACKUP_STEPS[1:]
    assert res.backup_id == "backup-retry"


async def test_checksum_failure_is_not_retried_and_is_reported(
    time_env: WorkflowEnvironment,
) -> None:
    w = World(corrupt=True)
    with pytest.raises(WorkflowFailureError) as ei:
        await _backup(time_env, w, BackupInput(), "backup-corrupt")
    err = _app_error(ei.value)
    assert err.type == "BackupCorrupt" and "sha256 differs" in err.message
    assert w.verify_attempts == 1  # the retry policy names it non-retryable
    assert "apply_retention" not in w.calls  # nothing deleted on the strength of a bad backup
    (rec,) = w.records
    assert rec.status == "failed" and "sha256 differs" in rec.details["error"]
    assert w.audits[0].outcome == "failed"
    assert w.notices[0].severity == "critical" and "FAILED" in w.notices[0].title


async def test_retention_keeps_the_newest_n(time_env: WorkflowEnvironment) -> None:
    w = World(stored_ages_days=(1, 2, 3, 10, 40), partial_ages_hours=(1, 30))
    res = await _backup(time_env, w, BackupInput(keep=3), "backup-keep3")
    assert w.retention[0].keep == 3 and w.retention[0].protect == ["backup-keep3"]
    # newest three complete ones stay (the new one, 1 d, 2 d); the 1 h partial may still be
    # being written, the 30 h one is abandoned
    assert res.deleted == ["old-10d", "old-3d", "old-40d", "partial-30h"]
    assert w.records[0].details["retention_deleted"] == res.deleted


async def test_retention_by_age_never_deletes_the_new_backup(
    time_env: WorkflowEnvironment,
) -> None:
    w = World(stored_ages_days=(1, 2, 10, 40))
    res = await _backup(time_env, w, BackupInput(keep=10, max_age_days=5), "backup-age")
    assert res.deleted == ["old-10d", "old-40d"]
    w2 = World(stored_ages_days=(1,))
    res2 = await _backup(time_env, w2, BackupInput(keep=1, max_age_days=0.000001), "b-2")
    assert res2.deleted == ["old-1d"]  # the one just made survives even a tiny max age


async def test_restore_verifies_then_restores_then_proves(time_env: WorkflowEnvironment) -> None:
    w = World()
    async with worker(time_env, w):
        proof = await time_env.client.execute_workflow(
            Restore.run,
            RestoreInput("bk-1", "dave", "drill", target_dsn="postgresql://x@h/db"),
            id="restore/bk-1",
            task_queue=CONTROL_QUEUE,
        )
    assert w.calls == [
        "verify_backup",
        "restore_postgres",
        "restore_redis",
        "restore_models",
        "prove_restore",
        "audit",
        "notify",
    ]
    assert proof.ok and proof.tables == {"public.orders": [3, 3]}
    assert set(proof.steps) == {"restore_postgres", "restore_redis", "restore_models"}
    assert proof.audit_hash == "ef" * 32
    assert all(s.target_dsn == "postgresql://x@h/db" and s.started_at for s in w.steps)
    assert (w.audits[0].action, w.audits[0].outcome) == ("restore", "restored")


async def test_restore_refuses_a_tampered_backup(time_env: WorkflowEnvironment) -> None:
    w = World(corrupt=True)
    async with worker(time_env, w):
        with pytest.raises(WorkflowFailureError) as ei:
            await time_env.client.execute_workflow(
                Restore.run, RestoreInput("bk-1"), id="restore/bk-1", task_queue=CONTROL_QUEUE
            )
    assert _app_error(ei.value).type == "BackupCorrupt"
    assert w.verify_attempts == 1
    assert not [c for c in w.calls if c.startswith(("restore_", "prove_"))]  # nothing touched
    assert w.audits[0].outcome == "refused" and w.notices[0].severity == "critical"


async def test_restore_that_does_not_read_back_fails(time_env: WorkflowEnvironment) -> None:
    w = World(proof_ok=False)
    async with worker(time_env, w):
        with pytest.raises(WorkflowFailureError) as ei:
            await time_env.client.execute_workflow(
                Restore.run, RestoreInput("bk-1"), id="restore/bk-1", task_queue=CONTROL_QUEUE
            )
    err = _app_error(ei.value)
    assert err.type == "RestoreNotProven" and err.non_retryable
    assert "public.orders" in err.message
    assert w.audits[0].outcome == "unproven"


async def test_histories_replay(time_env: WorkflowEnvironment) -> None:
    """Both workflows replay their own history (determinism of today's code)."""
    w = World(stored_ages_days=(1, 2))
    async with worker(time_env, w):
        b = await time_env.client.start_workflow(
            Backup.run, BackupInput(keep=2), id="backup-replay", task_queue=CONTROL_QUEUE
        )
        await b.result()
        r = await time_env.client.start_workflow(
            Restore.run, RestoreInput("backup-replay"), id="restore-r", task_queue=CONTROL_QUEUE
        )
        await r.result()
        histories = [await b.fetch_history(), await r.fetch_history()]
    replayer = Replayer(workflows=[Backup, Restore])
    for h in histories:
        h = WorkflowHistory.from_json(h.workflow_id, h.to_json())
        result = await replayer.replay_workflow(h, raise_on_replay_failure=False)
        assert result.replay_failure is None, result.replay_failure


def test_backup_id_for_workflow_ids() -> None:
    assert backup_id_for("backup-20240101T000000Z") == "backup-20240101T000000Z"
    a, b = backup_id_for("nightly/a:b"), backup_id_for("nightly-a-b")
    assert a != b and a.startswith("nightly-a-b-") and b == "nightly-a-b"
    assert backup_id_for("nightly/a:b") == a  # deterministic
    assert len(backup_id_for("x" * 500)) <= 128


# --- retention planning ---------------------------------------------------------------

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _b(bid: str, days: float, complete: bool = True) -> retention.StoredBackup:
    return retention.StoredBackup(bid, complete, NOW - timedelta(days=days))


def test_plan_keeps_newest_n() -> None:
    stored = [_b(f"b{d}", d) for d in range(6)]
    assert retention.plan(stored, 2, NOW) == ["b2", "b3", "b4", "b5"]
    assert retention.plan(stored, 10, NOW) == []


def test_plan_by_age_and_protect_and_partials() -> None:
    stored = [_b("new", 0), _b("a", 3), _b("b", 8), _b("p1", 0.5, False), _b("p2", 2, False)]
    assert retention.plan(stored, 10, NOW, max_age=timedelta(days=7)) == ["b", "p2"]
    assert retention.plan(stored, 1, NOW, protect=["a"]) == ["b", "p2"]
    with pytest.raises(ValueError):
        retention.plan(stored, 0, NOW)


# --- the local store and the manifest --------------------------------------------------


def _store_with_backup(tmp_path: Path) -> tuple[LocalStore, str]:
    store = LocalStore(tmp_path / "store")
    files = []
    with store.staging() as d:
        for name, data in [("postgres.dump", b"PGDMP" * 100), ("models/a/b.bin", b"\x00\x01")]:
            src = d / "x"
            src.write_bytes(data)
            store.put("bk-1", name, src, move=True)
            files.append(FileEntry(name, manifest.checksum(data), len(data)))
    m = Manifest("bk-1", NOW.isoformat(), "wf", files, {"postgres": {"tables": {}}})
    store.put_bytes("bk-1", "manifest.json", m.to_bytes())
    return store, manifest.checksum(m.to_bytes())


def test_local_store_round_trip_and_verify(tmp_path: Path) -> None:
    store, digest = _store_with_backup(tmp_path)
    assert store.backup_ids() == ["bk-1"] and store.complete("bk-1")
    m, got = manifest.verify(store, "bk-1", digest)
    assert got == digest and [f.name for f in m.files] == ["postgres.dump", "models/a/b.bin"]
    assert store.location("bk-1") == (tmp_path / "store" / "bk-1").resolve().as_uri()
    assert not list((tmp_path / "store").rglob("*.tmp"))  # nothing half-written left
    store.delete("bk-1")
    assert store.backup_ids() == [] and not (tmp_path / "store" / "bk-1").exists()


def test_put_copies_a_live_file_unless_told_to_move(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    live = tmp_path / "model.bin"
    live.write_bytes(b"weights")
    store.put("bk-1", "models/model.bin", live)
    assert live.read_bytes() == b"weights"  # never taken from a live model directory
    assert store.read_bytes("bk-1", "models/model.bin") == b"weights"


@pytest.mark.parametrize("how", ["flip", "truncate", "delete", "manifest"])
def test_verify_refuses_tampering(tmp_path: Path, how: str) -> None:
    store, digest = _store_with_backup(tmp_path)
    f = tmp_path / "store" / "bk-1" / "postgres.dump"
    expected = digest
    if how == "flip":
        data = bytearray(f.read_bytes())
        data[10] ^= 1
        f.write_bytes(bytes(data))
    elif how == "truncate":
        f.write_bytes(f.read_bytes()[:-1])
    elif how == "delete":
        f.unlink()
    else:  # the manifest itself edited: only an expected checksum can tell
        mf = tmp_path / "store" / "bk-1" / "manifest.json"
        mf.write_bytes(mf.read_bytes().replace(b'"wf"', b'"wg"'))
    with pytest.raises(BackupCorruptError, match="bk-1"):
        manifest.verify(store, "bk-1", expected)


def test_manifest_names_cannot_escape_the_target() -> None:
    m = Manifest("bk", NOW.isoformat(), "wf", [FileEntry("models/../../etc/passwd", "0", 1)])
    with pytest.raises(BackupCorruptError, match="bad file name"):
        Manifest.from_bytes(m.to_bytes())


def test_backup_ids_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidBackupIdError):
        LocalStore(tmp_path).location("../etc")


@pytest.mark.skipif(importlib.util.find_spec("boto3") is not None, reason="boto3 installed")
def test_s3_store_says_clearly_when_boto3_is_missing() -> None:
    with pytest.raises(StoreUnavailableError, match="boto3"):
        S3Store("bucket")
    with pytest.raises(StoreUnavailableError):
        open_store(BackupSettings(store="s3", s3_bucket="b"))
    with pytest.raises(ValueError, match="s3_bucket"):
        BackupSettings(store="s3")


def test_config_is_saved_without_secrets() -> None:
    s = load_settings(
        stores={"postgres_dsn": "postgresql://flashmm:hunter2@db.internal:5432/flashmm"},
        control={"hotpaths": {"SEI/USDC": "http://u:pw@10.0.0.1:8080"}},
    )
    doc = redact(s.model_dump(mode="json"))
    text = repr(doc)
    assert "hunter2" not in text and ":pw@" not in text
    assert doc["stores"]["postgres_dsn"] == f"postgresql://flashmm:{MASK}@db.internal:5432/flashmm"
    # the names of environment variables holding secrets are kept: they are not secrets
    assert doc["hotpath"]["control_token_env"] == "FLASHMM_CONTROL_TOKEN"
    assert redact({"api_key": "sk-1", "webhook": "https://h/x?token=abc&a=1"}) == {
        "api_key": MASK,
        "webhook": f"https://h/x?token={MASK}&a=1",
    }


def test_redis_export_cut_short_is_refused() -> None:
    lines = [
        b'{"format": "flashmm-redis/1", "db": 1}',
        b'{"k": "YQ==", "t": -1, "v": "AA=="}',
        b'{"end": true, "keys": 1}',
    ]
    whole = b"\n".join(lines) + b"\n"
    assert [e.key for e in redisdump.read(io.BytesIO(whole))] == [b"a"]
    with pytest.raises(BackupCorruptError, match="cut short"):
        list(redisdump.read(io.BytesIO(b"\n".join(lines[:2]) + b"\n")))
    with pytest.raises(BackupCorruptError, match="trailer"):
        list(redisdump.read(io.BytesIO(whole.replace(b'"keys": 1', b'"keys": 2'))))


def test_the_database_password_never_goes_on_a_command_line() -> None:
    url, env = pg.libpq_args(
        "postgresql://flashmm:s%40cret@db.internal:5432/flashmm?sslmode=require"
    )
    assert url == "postgresql://flashmm@db.internal:5432/flashmm?sslmode=require"
    assert env["PGPASSWORD"] == "s@cret"
    assert pg.libpq_args("postgresql://flashmm@127.0.0.1:55432/x")[0].endswith("@127.0.0.1:55432/x")
