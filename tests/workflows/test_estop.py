"""EmergencyStop: halt, cancel-until-verified, reconcile, persist, notify, audit; safe to
start twice; keeps going when the hot path cannot be reached."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.estop import EmergencyStop
from workflows.lifecycle import TradingLifecycle
from workflows.starters import start_emergency_stop
from workflows.types import (
    CONTROL_QUEUE,
    AuditEntry,
    ChangeRequest,
    EmergencyStopInput,
    FlattenResult,
    HotpathCommand,
    LifecycleInput,
    Notice,
    VenueRequest,
    host_queue,
    lifecycle_id,
)

MARKETS = ["SEI/USDC", "ATOM/USDC"]


class World:
    """Activity implementations recording what the workflow asked for."""

    def __init__(self, open_orders: dict[str, int], hotpath_up: bool = True) -> None:
        self.open = dict(open_orders)
        self.hotpath_up = hotpath_up
        self.cancel_calls = 0
        self.halts: list[HotpathCommand] = []
        self.persisted: list[tuple[str, str]] = []
        self.notices: list[Notice] = []
        self.audits: list[AuditEntry] = []

    @activity.defn(name="hotpath_command")
    async def command(self, cmd: HotpathCommand) -> dict[str, Any]:
        if not self.hotpath_up:
            raise ApplicationError("connection refused")
        self.halts.append(cmd)
        return {"applied": True}

    @activity.defn(name="venue_cancel_all")
    async def cancel_all(self, req: VenueRequest) -> dict[str, int]:
        self.cancel_calls += 1
        if self.cancel_calls == 1:  # the first attempt fails mid-way: retried until verified
            raise ApplicationError("venue timeout")
        n = self.open.get(req.market, 0)
        self.open[req.market] = 0
        return {"cancelled": n, "open": 0}

    @activity.defn(name="venue_balances")
    async def balances(self, req: VenueRequest) -> dict[str, Any]:
        return {"address": "sei1x", "balances": {"uusdc": 5}}

    @activity.defn(name="persist_halt")
    async def persist_halt(self, market: str, reason: str) -> None:
        self.persisted.append((market, reason))

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> bool:
        self.notices.append(notice)
        return True

    @activity.defn(name="audit")
    async def audit(self, entry: AuditEntry) -> str:
        self.audits.append(entry)
        return "ab" * 32

    def control_activities(self) -> list[Any]:
        return [self.cancel_all, self.balances, self.persist_halt, self.notify, self.audit]


def workers(env: WorkflowEnvironment, w: World) -> list[Worker]:
    return [
        Worker(
            env.client,
            task_queue=CONTROL_QUEUE,
            workflows=[EmergencyStop, TradingLifecycle],
            activities=w.control_activities(),
        )
    ] + [Worker(env.client, task_queue=host_queue(m), activities=[w.command]) for m in MARKETS]


async def test_all_markets_halted_cancelled_verified_recorded(
    dev_env: WorkflowEnvironment,
) -> None:
    env = dev_env  # a real server: the lifecycle's refusal goes through its validator
    w = World({"SEI/USDC": 4, "ATOM/USDC": 2})
    ws = workers(env, w)
    for x in ws:
        await x.__aenter__()
    try:
        life = await env.client.start_workflow(
            TradingLifecycle.run,
            LifecycleInput("SEI/USDC", "TRADING"),
            id=lifecycle_id("SEI/USDC"),
            task_queue=CONTROL_QUEUE,
        )
        h = await start_emergency_stop(
            env.client, EmergencyStopInput(MARKETS, "exchange incident", "carol")
        )
        res = await h.result()
        life_state = (await life.query(TradingLifecycle.status)).state
        refused = ""
        try:
            await life.execute_update(TradingLifecycle.start, ChangeRequest())
        except WorkflowUpdateFailedError as e:
            refused = str(e.cause)
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)
    # the lifecycle knows, and refuses to start trading again without a resume
    assert life_state == "HALTED" and "HALTED" in refused
    by = {r.market: r for r in res.markets}
    assert by["SEI/USDC"].cancelled + by["ATOM/USDC"].cancelled == 6
    assert all(r.verified_open == 0 and r.hotpath_halted for r in res.markets)
    assert w.open == {"SEI/USDC": 0, "ATOM/USDC": 0}
    assert {c.command for c in w.halts} == {"halt"} and len(w.halts) == 2
    assert sorted(m for m, _ in w.persisted) == sorted(MARKETS)
    # operators hear when the stop starts and when it ends (with the outcome)
    assert [n.text.split(":")[0] for n in w.notices] == ["started", "ended"]
    assert all(n.severity == "critical" for n in w.notices)
    assert "FAILED" not in w.notices[1].text
    assert w.audits[0].action == "emergency_stop" and w.audits[0].outcome == "verified"
    assert res.notified and res.audit_hash == "ab" * 32


async def test_unreachable_hot_path_still_cancels_on_the_venue(
    time_env: WorkflowEnvironment,
) -> None:
    w = World({"SEI/USDC": 3}, hotpath_up=False)
    ws = workers(time_env, w)
    for x in ws:
        await x.__aenter__()
    try:
        h = await start_emergency_stop(
            time_env.client, EmergencyStopInput(["SEI/USDC"], "hot path crashed")
        )
        res = await h.result()
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)
    r = res.markets[0]
    assert not r.hotpath_halted and "not reached" in r.hotpath_detail
    assert r.cancelled == 3 and r.verified_open == 0
    assert w.persisted == [("SEI/USDC", "emergency stop: hot path crashed")]


async def test_two_starts_at_once_share_one_run_and_both_are_carried_out(
    dev_env: WorkflowEnvironment,
) -> None:
    w = World({"SEI/USDC": 1})
    ws = workers(dev_env, w)
    for x in ws:
        await x.__aenter__()
    try:
        inp = EmergencyStopInput(["SEI/USDC"], "double click")
        a, b = await asyncio.gather(
            start_emergency_stop(dev_env.client, inp), start_emergency_stop(dev_env.client, inp)
        )
        assert a.id == b.id
        ra, rb = await a.result(), await b.result()
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)
    assert a.result_run_id == b.result_run_id
    assert ra == rb
    # each request is its own stop: halted, recorded and audited (the second is a no-op on
    # the venue), never dropped because another one was running
    assert len(ra.joined) == 1 and ra.joined[0].reason == "double click"
    assert len(w.audits) == 2 and len({a.request_id for a in w.audits}) == 2
    assert len(w.halts) == 2 and len({h.command_id for h in w.halts}) == 2
    assert len({n.dedup_key for n in w.notices}) == 4  # start and end of each request


class SlowWorld(World):
    """The venue cancel takes a while (so a second stop arrives while the first runs), and
    the hot path reports a position for flattening."""

    def __init__(self) -> None:
        super().__init__({"SEI/USDC": 2})
        self.cancel_started = asyncio.Event()
        self.release = asyncio.Event()
        self.flattened: list[VenueRequest] = []

    @activity.defn(name="venue_cancel_all")
    async def cancel_all(self, req: VenueRequest) -> dict[str, int]:
        self.cancel_calls += 1
        self.cancel_started.set()
        await self.release.wait()
        n, self.open[req.market] = self.open.get(req.market, 0), 0
        return {"cancelled": n, "open": 0}

    @activity.defn(name="hotpath_status")
    async def hotpath_status(self, market: str) -> dict[str, Any]:
        return {"position_lots": 7}

    @activity.defn(name="venue_flatten")
    async def flatten(self, req: VenueRequest) -> FlattenResult:
        self.flattened.append(req)
        return FlattenResult("sell", req.position_lots)

    def control_activities(self) -> list[Any]:
        return [self.cancel_all, self.balances, self.persist_halt, self.notify, self.audit]


async def test_a_joined_stop_asking_to_flatten_is_honoured(dev_env: WorkflowEnvironment) -> None:
    w = SlowWorld()
    ws = [
        Worker(
            dev_env.client,
            task_queue=CONTROL_QUEUE,
            workflows=[EmergencyStop],
            activities=[*w.control_activities(), w.flatten],
        ),
        Worker(
            dev_env.client,
            task_queue=host_queue("SEI/USDC"),
            activities=[w.command, w.hotpath_status],
        ),
    ]
    for x in ws:
        await x.__aenter__()
    try:
        first = await start_emergency_stop(
            dev_env.client, EmergencyStopInput(["SEI/USDC"], "incident", "alice")
        )
        await asyncio.wait_for(w.cancel_started.wait(), 20)
        second = await start_emergency_stop(
            dev_env.client,
            EmergencyStopInput(
                ["SEI/USDC"], "incident: flatten too", "bob", flatten=True, loss_budget_usdc=25.0
            ),
        )
        assert second.id == first.id  # joined the running stop
        w.release.set()
        res = await first.result()
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)
    assert not res.markets[0].flattened  # the first asked for no flattening
    assert [j.actor for j in res.joined] == ["bob"] and res.joined[0].flatten
    assert res.joined[0].markets[0].flattened == asdict(FlattenResult("sell", 7))
    assert len(w.flattened) == 1 and w.flattened[0].loss_budget_usdc == 25.0
    assert [a.actor for a in w.audits] == ["alice", "bob"]


async def test_a_second_stop_after_the_first_ended_halts_again_with_new_ids(
    time_env: WorkflowEnvironment,
) -> None:
    w = World({"SEI/USDC": 1})
    ws = workers(time_env, w)
    for x in ws:
        await x.__aenter__()
    try:
        runs = []
        for reason in ("first", "second"):
            h = await start_emergency_stop(
                time_env.client, EmergencyStopInput(["SEI/USDC"], reason)
            )
            await h.result()
            runs.append(h.result_run_id)
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)
    assert runs[0] != runs[1]
    ids = [h.command_id for h in w.halts]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert all(run in cid for run, cid in zip(runs, ids, strict=True))
    ends = [n for n in w.notices if not n.dedup_key.endswith("/start")]
    assert all(run in n.dedup_key for run, n in zip(runs, ends, strict=True))
    assert all(run in a.request_id for run, a in zip(runs, w.audits, strict=True))
    assert w.halts[1].args["reason"] == "emergency stop: second"


async def test_a_nul_in_the_reason_costs_neither_the_halt_nor_the_record(
    time_env: WorkflowEnvironment,
) -> None:
    w = World({"SEI/USDC": 1})
    ws = workers(time_env, w)
    for x in ws:
        await x.__aenter__()
    try:
        h = await start_emergency_stop(
            time_env.client, EmergencyStopInput(["SEI/USDC"], "bad\x00reason")
        )
        res = await h.result()
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)
    assert res.markets[0].hotpath_halted
    assert "\x00" not in w.halts[0].args["reason"] and "\\u0000" in w.halts[0].args["reason"]
    assert w.persisted == [("SEI/USDC", "emergency stop: bad\\u0000reason")]
