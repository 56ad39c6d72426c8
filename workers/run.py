"""Worker entry points (``flashmm worker control`` / ``flashmm worker host``), with a
graceful shutdown on SIGTERM/SIGINT: in-flight activities finish, nothing new starts.

Each market's host worker also runs that market's dead-man's switch watcher
(``workers/deadman.py``) when the switch is on (``deadman.enabled`` and the stores), and the
control worker runs one for every configured market: a lost node takes its host worker with
it, the control worker (elsewhere) still sees the heartbeat go stale. Both firing for one
incident start one workflow (its id is the incident's)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig

from activities.backup import BackupActivities
from activities.hotpath import HotpathActivities
from activities.keys import KeyActivities
from activities.ml import MLActivities
from activities.records import RecordActivities
from activities.venue import VenueActivities
from flashmm import tracing
from flashmm.config import Settings
from workers.deadman import DeadmanPlugin, DeadmanWatcher, temporal_fire
from workflows.backup import Backup, Restore
from workflows.deadman import DeadmanSwitch
from workflows.deploy_model import DeployModel
from workflows.estop import EmergencyStop
from workflows.lifecycle import TradingLifecycle, TradingLifecycleAutoUpgrade
from workflows.risk_reset import DailyRiskReset
from workflows.rotate_key import RotateSigningKey
from workflows.runbooks import Runbook
from workflows.scheduled import ScheduledStart
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
    DeadmanSwitch,
    ScheduledStart,
)
# in-flight activities get this long to finish on SIGTERM (the pod allows 120 s)
GRACEFUL_SHUTDOWN = timedelta(seconds=100)


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The control worker's deployment version when versioning is on: workflows are pinned
    to the version that started them unless they declare otherwise (TradingLifecycle
    auto-upgrades; its changes go behind ``workflow.patched``)."""
    ctl = settings.control
    if not ctl.worker_versioning:
        return None
    from flashmm import __version__

    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(ctl.worker_deployment, ctl.build_id or __version__),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


def workflows(settings: Settings) -> list[type]:
    """What the control worker hosts; on versioned workers the lifecycle auto-upgrades."""
    if not settings.control.worker_versioning:
        return list(WORKFLOWS)
    return [TradingLifecycleAutoUpgrade if w is TradingLifecycle else w for w in WORKFLOWS]


def control_worker(client: Client, settings: Settings, notifier: object | None = None) -> Worker:
    venue = VenueActivities(settings)
    records = RecordActivities(settings, notifier)
    ml = MLActivities(settings)
    backup = BackupActivities(settings)
    keys = KeyActivities(settings)
    tracing.setup(settings, "flashmm-worker")
    return Worker(
        client,
        task_queue=CONTROL_QUEUE,
        interceptors=tracing.worker_interceptors(client),  # when its client has none
        plugins=[p for m in settings.markets for p in deadman_plugins(client, settings, m.symbol)],
        workflows=workflows(settings),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        deployment_config=deployment_config(settings),
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
    """One worker per market hosted here, on that market's pinned queue, each with the
    market's dead-man's switch watcher when the switch is on."""
    acts = HotpathActivities(settings.control.hotpaths, settings.hotpath.control_token_env)
    tracing.setup(settings, "flashmm-worker")
    return [
        Worker(
            client,
            task_queue=host_queue(m),
            interceptors=tracing.worker_interceptors(client),
            activities=[acts.command, acts.status],
            plugins=deadman_plugins(client, settings, m),
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        )
        for m in settings.control.hotpaths
    ]


def deadman_plugins(client: Client, settings: Settings, market: str) -> list[DeadmanPlugin]:
    dm = settings.deadman
    if not (dm.enabled and settings.stores.enabled):
        return []
    watcher = DeadmanWatcher(
        market,
        settings.stores.redis_url,
        temporal_fire(client),
        timeout_s=dm.timeout_s,
        poll_interval_s=dm.poll_interval_s,
    )
    return [DeadmanPlugin(watcher)]


async def run_workers(workers: list[Worker]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    await stop.wait()
    await asyncio.gather(*(w.shutdown() for w in workers))
    await asyncio.gather(*tasks, return_exceptions=True)
