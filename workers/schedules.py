"""Schedules created idempotently at start-up (an existing schedule is updated in place)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from flashmm.backup.config import backup_settings
from flashmm.config import Settings
from workflows.backup import BackupInput
from workflows.types import CONTROL_QUEUE, RiskResetInput


def schedules(settings: Settings) -> dict[str, Schedule]:
    markets = [m.symbol for m in settings.markets]
    ctl = settings.control
    return {
        "daily-risk-reset": Schedule(
            action=ScheduleActionStartWorkflow(
                "DailyRiskReset",
                RiskResetInput(markets),
                id="daily-risk-reset",
                task_queue=CONTROL_QUEUE,
                execution_timeout=timedelta(minutes=10),
            ),
            spec=ScheduleSpec(cron_expressions=[ctl.risk_reset_cron]),
        ),
        "nightly-backup": Schedule(
            action=ScheduleActionStartWorkflow(
                "Backup",
                BackupInput("nightly", "schedule"),
                id="nightly-backup",
                task_queue=CONTROL_QUEUE,
                execution_timeout=timedelta(hours=6),
            ),
            spec=ScheduleSpec(cron_expressions=[backup_settings(settings).cron]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        ),
    }


async def ensure_schedules(client: Client, settings: Settings) -> list[str]:
    """Create or update every schedule; returns their ids."""
    done = []
    for sid, sched in schedules(settings).items():
        try:
            await client.create_schedule(sid, sched)
        except ScheduleAlreadyRunningError:

            async def update(_: ScheduleUpdateInput, s: Schedule = sched) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=s)

            await client.get_schedule_handle(sid).update(update)
        done.append(sid)
    return done
