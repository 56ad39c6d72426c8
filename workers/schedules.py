"""Schedules created idempotently at start-up. An existing schedule is updated only in what
the settings own (its action, calendar and overlap policy): an operator's pause and its note
survive every worker start.

Per-market singletons (key rotation, model deployment) are started through ``ScheduledStart``
so that they share the canonical id with API and CLI starts (one per market at a time)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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
from flashmm.domain.symbols import slug
from workflows.backup import BackupInput
from workflows.rotate_key import RotateKeyInput, rotation_id
from workflows.scheduled import ScheduledStartInput
from workflows.types import CONTROL_QUEUE, DeployModelInput, RiskResetInput, deploy_model_id

# the notes this module writes: a schedule paused with one of these was paused by the
# settings, and follows them; any other pause (and its note) is an operator's and is kept
SETTINGS_NOTES = (
    "set control.warm_key_ref",
    "paused: enable with control.retrain_paused=false",
)


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
        out[f"key-rotation-{slug(m.symbol)}"] = Schedule(
            action=_singleton(
                "RotateSigningKey",
                rotation_id(m.symbol),
                RotateKeyInput(
                    m.symbol,
                    ctl.warm_key_ref,
                    ctl.rotation_fee_usei,
                    dict(ctl.rotation_assets),
                    "scheduled rotation",
                    "schedule",
                ),
                timedelta(hours=1),
            ),
            spec=ScheduleSpec(cron_expressions=[ctl.key_rotation_cron]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            state=ScheduleState(
                paused=not ctl.warm_key_ref,
                note="" if ctl.warm_key_ref else SETTINGS_NOTES[0],
            ),
        )
        out[f"retrain-{slug(m.symbol)}"] = Schedule(
            action=_singleton(
                "DeployModel",
                deploy_model_id(m.symbol),
                DeployModelInput(m.symbol, actor="schedule"),
                timedelta(hours=6),
            ),
            spec=ScheduleSpec(cron_expressions=[ctl.retrain_cron]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            state=ScheduleState(
                paused=ctl.retrain_paused,
                note=SETTINGS_NOTES[1] if ctl.retrain_paused else "",
            ),
        )
    return out


def settings_own_state(state: ScheduleState) -> bool:
    """True when the settings decide this schedule's paused state (not an operator)."""
    return not state.paused or state.note in SETTINGS_NOTES


def _singleton(
    workflow_type: str, workflow_id: str, arg: Any, timeout: timedelta
) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(
        "ScheduledStart",
        ScheduledStartInput(workflow_type, workflow_id, arg, timeout.total_seconds()),
        id=f"scheduled/{workflow_id}",
        task_queue=CONTROL_QUEUE,
        execution_timeout=timedelta(minutes=5),
    )


async def ensure_schedules(client: Client, settings: Settings) -> list[str]:
    """Create what is missing; update what the settings own; keep the operator's state."""
    done = []
    for sid, sched in schedules(settings).items():
        try:
            await client.create_schedule(sid, sched)
        except ScheduleAlreadyRunningError:

            async def update(cur: ScheduleUpdateInput, s: Schedule = sched) -> ScheduleUpdate:
                kept = cur.description.schedule
                kept.action = s.action
                kept.spec = s.spec
                kept.policy = s.policy
                if settings_own_state(kept.state):
                    kept.state = s.state
                return ScheduleUpdate(schedule=kept)

            await client.get_schedule_handle(sid).update(update)
        done.append(sid)
    return done
