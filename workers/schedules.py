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
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from flashmm.backup.config import backup_settings
from flashmm.config import Settings
from workflows.backup import BackupInput
from workflows.rotate_key import RotateKeyInput, rotation_id
from workflows.types import CONTROL_QUEUE, DeployModelInput, RiskResetInput


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
        **_per_market(settings),
    }


def _per_market(settings: Settings) -> dict[str, Schedule]:
    """Key rotation and retraining per market; paused where they are not configured or
    not wanted yet (visible and pausable in the Temporal UI either way)."""
    ctl = settings.control
    out: dict[str, Schedule] = {}
    for m in settings.markets:
        slug = "".join(c.lower() if c.isalnum() else "-" for c in m.symbol)
        out[f"key-rotation-{slug}"] = Schedule(
            action=ScheduleActionStartWorkflow(
                "RotateSigningKey",
                RotateKeyInput(
                    m.symbol,
                    ctl.warm_key_ref,
                    ctl.rotation_fee_usei,
                    dict(ctl.rotation_assets),
                    "scheduled rotation",
                    "schedule",
                ),
                id=rotation_id(m.symbol),
                task_queue=CONTROL_QUEUE,
                execution_timeout=timedelta(hours=1),
            ),
            spec=ScheduleSpec(cron_expressions=[ctl.key_rotation_cron]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            state=ScheduleState(
                paused=not ctl.warm_key_ref,
                note="" if ctl.warm_key_ref else "set control.warm_key_ref",
            ),
        )
        out[f"retrain-{slug}"] = Schedule(
            action=ScheduleActionStartWorkflow(
                "DeployModel",
                DeployModelInput(m.symbol, actor="schedule"),
                id=f"deploy-model/{m.symbol}",
                task_queue=CONTROL_QUEUE,
                execution_timeout=timedelta(hours=6),
            ),
            spec=ScheduleSpec(cron_expressions=[ctl.retrain_cron]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            state=ScheduleState(
                paused=ctl.retrain_paused,
                note="paused: enable with control.retrain_paused=false"
                if ctl.retrain_paused
                else "",
            ),
        )
    return out


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
