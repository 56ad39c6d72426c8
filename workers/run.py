"""Worker entry points (``flashmm worker control`` / ``flashmm worker host``), with a
graceful shutdown on SIGTERM/SIGINT: in-flight activities finish, nothing new starts."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.worker import Worker

from activities.backup import BackupActivities
from activities.hotpath import HotpathActivities
from activities.keys import KeyActivities
from activities.ml import MLActivities
from activities.records import RecordActivities
from activities.venue import VenueActivities
from flashmm.config import Settings
from workflows.backup import Backup, Restore
from workflows.deploy_model import DeployModel
from workflows.estop import EmergencyStop
from workflows.lifecycle import TradingLifecycle
from workflows.risk_reset import DailyRiskReset
from workflows.rotate_key import RotateSigningKey
from workflows.runbooks import Runbook
from workflows.types import CONTROL_QUEUE, host_queue

WORKFLOWS: Sequence[type] = (
    TradingLifecycle,
    EmergencyStop,
    DailyRiskReset,
    DeployModel,
    Runbook,
    Backup,
    Restore,
    RotateSigningKey,
)


def control_worker(client: Client, settings: Settings, notifier: object | None = None) -> Worker:
    venue = VenueActivities(settings)
    records = RecordActivities(settings, notifier)
    ml = MLActivities(settings)
    backup = BackupActivities(settings)
    keys = KeyActivities(settings)
    return Worker(
        client,
        task_queue=CONTROL_QUEUE,
        workflows=list(WORKFLOWS),
        activities=[
            venue.cancel_all,
            venue.flatten,
            venue.open_orders,
            venue.balances,
            records.persist_halt,
            records.audit,
            records.notify,
            ml.candidate,
            ml.validate,
            ml.record,
            *backup.activities(),
            *keys.all(),
        ],
    )


def host_workers(client: Client, settings: Settings) -> list[Worker]:
    """One worker per market hosted here, on that market's pinned queue."""
    acts = HotpathActivities(settings.control.hotpaths, settings.hotpath.control_token_env)
    return [
        Worker(client, task_queue=host_queue(m), activities=[acts.command, acts.status])
        for m in settings.control.hotpaths
    ]


async def run_workers(workers: list[Worker]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    await stop.wait()
    await asyncio.gather(*(w.shutdown() for w in workers))
    await asyncio.gather(*tasks, return_exceptions=True)
