"""Schedules are created idempotently: a second start-up updates, never duplicates, and the
unconfigured ones come up paused."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from flashmm.config import load_settings
from workers.schedules import ensure_schedules


async def test_schedules_are_idempotent_and_paused_until_configured(
    dev_env: WorkflowEnvironment,
) -> None:
    s = load_settings()
    first = await ensure_schedules(dev_env.client, s)
    second = await ensure_schedules(dev_env.client, s)
    assert first == second
    ids = sorted([x.id async for x in await dev_env.client.list_schedules()])
    assert ids == sorted(first)
    assert {
        "daily-risk-reset",
        "nightly-backup",
        "key-rotation-sei-usdc",
        "retrain-sei-usdc",
    } <= set(ids)
    rotation = await dev_env.client.get_schedule_handle("key-rotation-sei-usdc").describe()
    assert rotation.schedule.state.paused  # no warm key configured
    reset = await dev_env.client.get_schedule_handle("daily-risk-reset").describe()
    assert not reset.schedule.state.paused
    configured = load_settings(control={"warm_key_ref": "keystore:warm-abc"})
    await ensure_schedules(dev_env.client, configured)
    rotation = await dev_env.client.get_schedule_handle("key-rotation-sei-usdc").describe()
    assert not rotation.schedule.state.paused
