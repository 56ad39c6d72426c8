"""Record histories into the replay corpus replayed by ``test_replay.py``:
``.venv/bin/python -m tests.workflows.record_histories --version v0.2.0 [--only NAME ...]``.

Histories go to ``histories/<version>/`` encrypted with the corpus' test codec key (as
production history is), and an existing file is never overwritten: the corpus only grows.
Record the histories of a version when it is released; record a new branch as soon as it
exists."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from flashmm.temporal.client import encrypting
from flashmm.temporal.codec import EncryptionCodec, parse_keys
from tests.workflows.conftest import _dev
from tests.workflows.test_estop import World, workers
from tests.workflows.test_lifecycle import MARKET, FakeHotpath
from workflows.lifecycle import TradingLifecycle
from workflows.risk_reset import DailyRiskReset
from workflows.starters import start_emergency_stop
from workflows.types import (
    CONTROL_QUEUE,
    ChangeRequest,
    EmergencyStopInput,
    LifecycleInput,
    RiskResetInput,
    host_queue,
    lifecycle_id,
)

ROOT = Path(__file__).parent / "histories"
OUT = ROOT  # set by main() to the version's folder
CODEC_KEY = ROOT / "codec-keys.txt"  # a test key, only for the corpus (not a secret)


def corpus_codec() -> EncryptionCodec:
    return EncryptionCodec(parse_keys(CODEC_KEY.read_text().strip()))


async def _save(handle: WorkflowHandle[object, object], name: str) -> None:
    path = OUT / f"{name}.json"
    if path.exists():
        raise SystemExit(f"{path} exists: the corpus only grows (record into a new version)")
    history = await handle.fetch_history()
    path.write_text(history.to_json())
    print(f"recorded {path.relative_to(ROOT)}")


async def lifecycle(client: Client) -> None:
    hot = FakeHotpath()
    async with (
        Worker(client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        h = await client.start_workflow(
            TradingLifecycle.run,
            LifecycleInput(MARKET),
            id=lifecycle_id(MARKET),
            task_queue=CONTROL_QUEUE,
        )
        await h.execute_update(TradingLifecycle.start, ChangeRequest("alice", "open"))
        await h.execute_update(
            TradingLifecycle.set_params, ChangeRequest(params={"quoting": {"gamma": 0.2}})
        )
        await h.execute_update(TradingLifecycle.halt, ChangeRequest("bob", "news"))
        await h.execute_update(TradingLifecycle.resume, ChangeRequest("bob", "clear"))
        await h.execute_update(TradingLifecycle.stop, ChangeRequest("bob", "close"))
        await _save(h, "trading_lifecycle")  # type: ignore[arg-type]


async def estop(env: WorkflowEnvironment) -> None:
    w = World({"SEI/USDC": 4, "ATOM/USDC": 2})
    ws = workers(env, w)
    for x in ws:
        await x.__aenter__()
    try:
        h = await start_emergency_stop(
            env.client, EmergencyStopInput(["SEI/USDC", "ATOM/USDC"], "recorded incident", "carol")
        )
        await h.result()
        await _save(h, "emergency_stop")  # type: ignore[arg-type]
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)


async def risk_reset(env: WorkflowEnvironment) -> None:
    w = World({})
    async with (
        Worker(
            env.client,
            task_queue=CONTROL_QUEUE,
            workflows=[DailyRiskReset],
            activities=w.control_activities(),
        ),
        Worker(env.client, task_queue=host_queue(MARKET), activities=[w.command]),
    ):
        h = await env.client.start_workflow(
            DailyRiskReset.run,
            RiskResetInput([MARKET]),
            id="daily-risk-reset",
            task_queue=CONTROL_QUEUE,
        )
        await h.result()
        await _save(h, "daily_risk_reset")  # type: ignore[arg-type]


async def deploy_model(env: WorkflowEnvironment) -> None:
    from tests.workflows.test_deploy_model import GOOD, Fakes
    from workflows.deploy_model import DeployModel
    from workflows.types import DeployModelInput

    f = Fakes(GOOD, live_accuracy=0.45)  # promote, then roll back: every step recorded
    async with (
        Worker(
            env.client,
            task_queue=CONTROL_QUEUE,
            workflows=[DeployModel],
            activities=[f.ml_candidate, f.ml_validate, f.record, f.audit, f.notify],
        ),
        Worker(env.client, task_queue=host_queue(MARKET), activities=[f.command, f.status]),
    ):
        h = await env.client.start_workflow(
            DeployModel.run,
            DeployModelInput(MARKET, shadow_s=1, monitor_s=1),
            id="deploy-model",
            task_queue=CONTROL_QUEUE,
        )
        await h.result()
        await _save(h, "deploy_model")  # type: ignore[arg-type]


async def runbook(env: WorkflowEnvironment) -> None:
    from tests.workflows.test_runbooks import Fakes, _waiting, _workers
    from workflows.runbooks import Runbook
    from workflows.types import Decision, RunbookInput

    f = Fakes([300, 0])
    a, b = _workers(env, f)
    async with a, b:
        h = await env.client.start_workflow(
            Runbook.run,
            RunbookInput("flatten", MARKET, poll_s=0.1),
            id="runbook-flatten",
            task_queue=CONTROL_QUEUE,
        )
        await _waiting(h, "approve")
        await h.execute_update(Runbook.approve, Decision("approve", "eve"))
        await h.result()
        await _save(h, "runbook_flatten")  # type: ignore[arg-type]


async def backup_restore(env: WorkflowEnvironment) -> None:
    from tests.workflows.test_backup import World as BackupWorld
    from tests.workflows.test_backup import worker as backup_worker
    from workflows.backup import Backup, BackupInput, Restore, RestoreInput

    w = BackupWorld(stored_ages_days=(1, 2, 10))
    async with backup_worker(env, w):
        b = await env.client.start_workflow(
            Backup.run,
            BackupInput("recorded", "schedule", keep=2),
            id="nightly-backup-2024-01-01T02:30:00Z",
            task_queue=CONTROL_QUEUE,
        )
        done = await b.result()
        await _save(b, "backup")  # type: ignore[arg-type]
        r = await env.client.start_workflow(
            Restore.run,
            RestoreInput(done.backup_id, "carol", "drill"),
            id=f"restore/{done.backup_id}",
            task_queue=CONTROL_QUEUE,
        )
        await r.result()
        await _save(r, "restore")  # type: ignore[arg-type]


async def rotate_key(env: WorkflowEnvironment) -> None:
    from temporalio.client import WorkflowFailureError

    from tests.workflows.test_rotate_key import World as KeyWorld
    from tests.workflows.test_rotate_key import control_worker as key_control_worker
    from tests.workflows.test_rotate_key import host_worker as key_host_worker
    from tests.workflows.test_rotate_key import rotation_input
    from workflows.rotate_key import RotateSigningKey, rotation_id

    for name, refuse in (("rotate_signing_key", False), ("rotate_signing_key_rolled_back", True)):
        w = KeyWorld()
        w.refuse_switch = refuse
        async with key_control_worker(env, w), key_host_worker(env, w):
            h = await env.client.start_workflow(
                RotateSigningKey.run,
                rotation_input(),
                id=rotation_id("SEI/USDC"),
                task_queue=CONTROL_QUEUE,
            )
            try:
                await h.result()
            except WorkflowFailureError:
                assert refuse  # the rolled-back rotation fails by design
            await _save(h, name)  # type: ignore[arg-type]


RECORDERS = {
    "trading_lifecycle": lambda env: lifecycle(env.client),
    "emergency_stop": estop,
    "daily_risk_reset": risk_reset,
    "deploy_model": deploy_model,
    "runbook_flatten": runbook,
    "backup": backup_restore,
    "rotate_signing_key": rotate_key,
}


async def main() -> None:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--version", required=True, help="the release, e.g. v0.2.0")
    ap.add_argument("--only", nargs="*", default=None, metavar="NAME")
    args = ap.parse_args()
    from tests.workflows import record_more

    record_more.SAVE = _save
    recorders: dict[str, Any] = {**RECORDERS, **record_more.RECORDERS}
    names = args.only or list(recorders)
    unknown = set(names) - set(recorders)
    if unknown:
        raise SystemExit(f"unknown: {sorted(unknown)}; known: {sorted(recorders)}")
    OUT = ROOT / args.version
    OUT.mkdir(exist_ok=True)
    env = await _dev()
    # the same server, seen through the encrypting converter: what production writes
    env_enc = _EncryptedEnv(env, corpus_codec())
    try:
        for name in names:
            await recorders[name](env_enc)
    finally:
        await env.shutdown()


class _EncryptedEnv:
    """A WorkflowEnvironment stand-in whose client encrypts payloads with the corpus key."""

    def __init__(self, env: WorkflowEnvironment, codec: EncryptionCodec) -> None:
        self._env = env
        self.client = Client(
            env.client.service_client,
            namespace=env.client.namespace,
            data_converter=encrypting(codec),
        )


if __name__ == "__main__":
    asyncio.run(main())
