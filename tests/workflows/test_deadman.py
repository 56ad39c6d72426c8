"""DeadmanSwitch: the halt is durable before any cancel, the venue cancel is retried until
verified even when the hot path is gone, the lifecycle learns HALTED, then notify and audit;
one run per incident (a restarted watcher joins it), two incidents are two runs."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.deadman import DeadmanInput, DeadmanSwitch
from workflows.lifecycle import TradingLifecycle
from workflows.starters import start_deadman
from workflows.types import (
    CONTROL_QUEUE,
    AuditEntry,
    HotpathCommand,
    LifecycleInput,
    Notice,
    VenueRequest,
    host_queue,
    lifecycle_id,
)

MARKET = "SEI/USDC"


class World:
    """Activities recording the order in which the workflow asked for things."""

    def __init__(self, open_orders: int, hotpath_up: bool) -> None:
        self.open = open_orders
        self.hotpath_up = hotpath_up
        self.steps: list[str] = []
        self.cancel_calls = 0
        self.notices: list[Notice] = []
        self.audits: list[AuditEntry] = []

    @activity.defn(name="hotpath_command")
    async def command(self, cmd: HotpathCommand) -> dict[str, Any]:
        if not self.hotpath_up:
            raise ApplicationError("connection refused")
        self.steps.append(f"hotpath:{cmd.command}")
        return {"applied": True, "state": {"risk_state": "halted"}}

    @activity.defn(name="venue_cancel_all")
    async def cancel_all(self, req: VenueRequest) -> dict[str, int]:
        self.cancel_calls += 1
        if self.cancel_calls == 1:
            raise ApplicationError("venue timeout")  # retried until verified
        self.steps.append("cancel")
        n, self.open = self.open, 0
        return {"cancelled": n, "open": 0}

    @activity.defn(name="persist_halt")
    async def persist_halt(self, market: str, reason: str) -> None:
        self.steps.append(f"persist:{reason}")

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> bool:
        self.steps.append("notify")
        self.notices.append(notice)
        return True

    @activity.defn(name="audit")
    async def audit(self, entry: AuditEntry) -> str:
        self.steps.append("audit")
        self.audits.append(entry)
        return "cd" * 32


def _workers(env: WorkflowEnvironment, w: World) -> list[Worker]:
    return [
        Worker(
            env.client,
            task_queue=CONTROL_QUEUE,
            workflows=[DeadmanSwitch, TradingLifecycle],
            activities=[w.cancel_all, w.persist_halt, w.notify, w.audit],
        ),
        Worker(env.client, task_queue=host_queue(MARKET), activities=[w.command]),
    ]


async def test_dead_hot_path_halted_durably_then_cancelled_verified(
    dev_env: WorkflowEnvironment,
) -> None:
    w = World(open_orders=4, hotpath_up=False)
    ws = _workers(dev_env, w)
    for x in ws:
        await x.__aenter__()
    try:
        life = await dev_env.client.start_workflow(
            TradingLifecycle.run,
            LifecycleInput(MARKET, "TRADING"),
            id=lifecycle_id(MARKET),
            task_queue=CONTROL_QUEUE,
        )
        inp = DeadmanInput(MARKET, "host-1-1000", 1700000000.25, "heartbeat missed", 4)
        h = await start_deadman(dev_env.client, inp)
        again = await start_deadman(dev_env.client, inp)  # a restarted watcher: same run
        res = await h.result()
        after = await start_deadman(dev_env.client, inp)  # and after it finished: no new run
        other = await start_deadman(  # the same run stuck again later: a second incident
            dev_env.client, DeadmanInput(MARKET, "host-1-1000", 1700000060.5, "loop stuck")
        )
        await other.result()
        state = (await life.query(TradingLifecycle.status)).state
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)
    assert again.id == h.id == after.id and other.id != h.id
    assert (await after.describe()).run_id == (await h.describe()).run_id
    assert res.verified_open == 0 and res.cancelled == 4 and not res.hotpath_halted
    assert w.steps[0].startswith("persist:dead-man switch: heartbeat missed")
    assert w.steps[1:4] == ["cancel", "notify", "audit"]  # in that order, the halt first
    assert state == "HALTED"
    assert w.notices[0].severity == "critical" and w.notices[0].dedup_key.startswith(h.id)
    assert w.audits[0].action == "deadman_halt" and w.audits[0].outcome == "verified"
    assert w.notices[0].dedup_key != w.notices[1].dedup_key  # two incidents, two notices


async def test_stuck_hot_path_that_answers_is_halted_too(time_env: WorkflowEnvironment) -> None:
    w = World(open_orders=2, hotpath_up=True)
    ws = _workers(time_env, w)
    for x in ws:
        await x.__aenter__()
    try:
        h = await start_deadman(
            time_env.client, DeadmanInput(MARKET, "host-2-2000", 1700000000.0, "loop stuck")
        )
        res = await h.result()
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)
    assert res.hotpath_halted and res.verified_open == 0
    assert "hotpath:halt" in w.steps and w.steps[0].startswith("persist:")
