"""RotateSigningKey in the time-skipping environment with recorded activities: the order of
the steps, compensation when the hot path refuses the switch (or funding fails), and resuming
after crashes — an activity that dies after its side effect, a transfer whose sequence was
taken, a worker lost between funding and switching — without moving funds twice.

The fake chain keeps the rules the real one enforces and the workflow relies on: a signed
transaction lands at most once (by hash) and only at its signer's current sequence; the fake
keystore finds a key again by its label, as ``keys_create`` does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.rotate_key import (
    FEE_DENOM,
    CreateKeyRequest,
    KeyInfo,
    PreparedTransfer,
    RotateKeyInput,
    RotateKeyResult,
    RotateSigningKey,
    TransferOutcome,
    TransferRequest,
    rotation_id,
)
from workflows.types import (
    CONTROL_QUEUE,
    AuditEntry,
    HotpathCommand,
    Notice,
    VenueRequest,
    host_queue,
)

MARKET = "SEI/USDC"
FEE = 2_400
WARM, OLD = "keystore:warm-1", "keystore:hot-old"
ASSETS = {"usei": 2_000_000_000, "uusdc": 1_000_000_000}
FEE_USEI = 10_000_000
TARGET = {"usei": 2_010_000_000, "uusdc": 1_000_000_000}


def rotation_input(**kw: Any) -> RotateKeyInput:
    return RotateKeyInput(MARKET, WARM, FEE_USEI, dict(ASSETS), "scheduled rotation", "alice", **kw)


class World:
    """Keystore, chain, hot path and records, each activity logging itself in ``steps``."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, str]] = {
            WARM: {"address": "sei1warm", "tier": "warm", "status": "active", "label": ""},
            OLD: {"address": "sei1old", "tier": "hot", "status": "active", "label": ""},
        }
        self.balances: dict[str, dict[str, int]] = {
            "sei1warm": {"usei": 100_000_000_000, "uusdc": 100_000_000_000},
            "sei1old": {"usei": 1_500_000_000, "uusdc": 700_000_000, "uatom": 5},
        }
        self.sequence: dict[str, int] = {"sei1warm": 7, "sei1old": 40}
        self.landed: dict[str, PreparedTransfer] = {}  # tx hash -> transfer, in order
        self.open_orders = {"sei1old": 3}
        self.hot_key = OLD
        self.desired, self.reason = "trading", ""
        self.operator_stops_during_switch = False
        self.commands: list[HotpathCommand] = []
        self.applied: dict[str, dict[str, Any]] = {}
        self.refuse_switch = False
        self.steps: list[str] = []
        self.broadcasts: list[str] = []  # tx hash of every broadcast attempt
        self.crash_after: set[str] = set()  # memo suffixes: die once after the side effect
        self.crash_create_once = False
        self.steal_sequence_once: str = ""  # an address whose next tx someone else sends first
        self.audits: list[AuditEntry] = []
        self.notices: list[Notice] = []

    # --- keystore ---------------------------------------------------------------------------
    def _info(self, ref: str) -> KeyInfo:
        k = self.keys[ref]
        return KeyInfo(ref, k["address"], k["tier"], k["status"])

    @activity.defn(name="keys_create")
    async def create(self, req: CreateKeyRequest) -> KeyInfo:
        self.steps.append("keys_create")
        for ref, k in self.keys.items():
            if k["label"] == req.label:
                return self._info(ref)
        n = sum(1 for r in self.keys if r.startswith("keystore:hot-new"))
        ref = f"keystore:hot-new{n}"
        self.keys[ref] = {
            "address": f"sei1new{n}",
            "tier": req.tier,
            "status": "active",
            "label": req.label,
        }
        if self.crash_create_once:
            self.crash_create_once = False
            raise ApplicationError("worker lost after creating the key")
        return self._info(ref)

    @activity.defn(name="keys_describe")
    async def describe(self, ref: str) -> KeyInfo:
        self.steps.append(f"keys_describe {ref}")
        if ref not in self.keys:
            raise ApplicationError(f"unknown key {ref}", type="KeyError", non_retryable=True)
        return self._info(ref)

    @activity.defn(name="keys_retire")
    async def retire(self, ref: str) -> KeyInfo:
        self.steps.append(f"keys_retire {ref}")
        self.keys[ref]["status"] = "retired"
        return self._info(ref)

    # --- chain ------------------------------------------------------------------------------
    @activity.defn(name="bank_balances")
    async def bank_balances(self, address: str) -> dict[str, int]:
        self.steps.append(f"bank_balances {address}")
        return {d: v for d, v in self.balances.get(address, {}).items() if v}

    def _addr(self, ref: str) -> str:
        if self.keys[ref]["status"] != "active":
            raise ApplicationError(f"key {ref} is retired", type="KeyError", non_retryable=True)
        return self.keys[ref]["address"]

    @activity.defn(name="bank_prepare_transfer")
    async def prepare(self, req: TransferRequest) -> PreparedTransfer:
        frm = self._addr(req.from_ref)
        self.steps.append(f"prepare {req.mode} {frm}->{req.to_address}")
        have = self.balances.get(frm, {})
        if req.mode == "top_up":
            there = self.balances.get(req.to_address, {})
            amounts = {d: v - there.get(d, 0) for d, v in req.coins.items() if v > there.get(d, 0)}
            if not amounts:
                return PreparedTransfer(frm, req.to_address, {}, note="funded")
            if any(have.get(d, 0) < v + (FEE if d == FEE_DENOM else 0) for d, v in amounts.items()):
                raise ApplicationError("lacks funds", type="InsufficientFunds", non_retryable=True)
        else:
            if have.get(FEE_DENOM, 0) < FEE:
                return PreparedTransfer(frm, req.to_address, {}, note="not enough for the fee")
            amounts = {d: v - (FEE if d == FEE_DENOM else 0) for d, v in have.items()}
            amounts = {d: v for d, v in amounts.items() if v > 0}
        seq = self.sequence.get(frm, 0)
        body = json.dumps([frm, req.to_address, sorted(amounts.items()), FEE, seq, req.memo])
        return PreparedTransfer(
            frm,
            req.to_address,
            amounts,
            FEE,
            seq,
            hashlib.sha256(body.encode()).hexdigest(),
            base64.b64encode(body.encode()).decode(),
            req.memo,
        )

    @activity.defn(name="bank_broadcast_transfer")
    async def broadcast(self, p: PreparedTransfer) -> TransferOutcome:
        self.broadcasts.append(p.tx_hash)
        self.steps.append(f"broadcast {p.from_address}->{p.to_address}")
        if p.tx_hash in self.landed:
            return TransferOutcome(p.tx_hash, 1, p.amounts, p.fee, "found landed")
        if self.steal_sequence_once == p.from_address:  # another tx of this key got there first
            self.steal_sequence_once = ""
            self.sequence[p.from_address] += 1
            self.balances[p.from_address][FEE_DENOM] -= FEE
        if p.sequence != self.sequence.get(p.from_address, 0):
            raise ApplicationError("sequence taken", type="TransferStale", non_retryable=True)
        frm, to = self.balances[p.from_address], self.balances.setdefault(p.to_address, {})
        frm[FEE_DENOM] -= p.fee
        for d, v in p.amounts.items():
            assert frm.get(d, 0) >= v, "the fake chain never overdraws"
            frm[d] -= v
            to[d] = to.get(d, 0) + v
        self.sequence[p.from_address] = p.sequence + 1
        self.landed[p.tx_hash] = p
        step = p.note.rsplit("/", 1)[-1]  # the fake prepare puts the memo (…/fund) in note
        if step in self.crash_after:
            self.crash_after.discard(step)
            raise ApplicationError("worker lost after the broadcast")
        return TransferOutcome(p.tx_hash, 1, p.amounts, p.fee, "landed")

    # --- venue ------------------------------------------------------------------------------
    @activity.defn(name="venue_cancel_all")
    async def cancel_all(self, req: VenueRequest) -> dict[str, int]:
        addr = self._addr(req.key_ref)
        self.steps.append(f"venue_cancel_all {req.key_ref}")
        n = self.open_orders.get(addr, 0)
        self.open_orders[addr] = 0
        return {"cancelled": n, "open": 0}

    @activity.defn(name="venue_open_orders")
    async def open(self, req: VenueRequest) -> int:
        self.steps.append(f"venue_open_orders {req.key_ref}")
        return self.open_orders.get(self._addr(req.key_ref), 0)

    # --- hot path ---------------------------------------------------------------------------
    @activity.defn(name="hotpath_status")
    async def hot_status(self, market: str) -> dict[str, Any]:
        self.steps.append("hotpath_status")
        return {"key_ref": self.hot_key, "desired": self.desired, "reason": self.reason}

    @activity.defn(name="hotpath_command")
    async def hot_command(self, cmd: HotpathCommand) -> dict[str, Any]:
        self.commands.append(cmd)
        self.steps.append(f"hotpath_command {cmd.command}")
        if cmd.command_id in self.applied:
            return {**self.applied[cmd.command_id], "replayed": True}
        detail: Any = cmd.command
        if cmd.command == "stop":
            self.desired, self.reason = "stopped", cmd.args["reason"]
        elif cmd.command == "start":
            self.desired, self.reason = "trading", ""
        elif cmd.command == "switch_key":
            if self.refuse_switch:
                raise ApplicationError(
                    "key not switched: 2 order(s) of the old key still open",
                    type="CommandRefused",
                    non_retryable=True,
                )
            ref = cmd.args["key_ref"]
            self.hot_key = ref
            detail = {"key_ref": ref, "address": self.keys[ref]["address"]}
            if self.operator_stops_during_switch:  # the lifecycle's stop arrives meanwhile
                self.desired, self.reason = "stopped", "operator: end of day"
        answer = {"applied": True, "detail": detail, "state": {"key_ref": self.hot_key}}
        self.applied[cmd.command_id] = answer
        return answer

    # --- records ----------------------------------------------------------------------------
    @activity.defn(name="audit")
    async def audit(self, entry: AuditEntry) -> str:
        self.steps.append("audit")
        self.audits.append(entry)
        return "ab" * 32

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> bool:
        self.steps.append("notify")
        self.notices.append(notice)
        return True

    def control(self) -> list[Any]:
        return [
            self.create,
            self.describe,
            self.retire,
            self.bank_balances,
            self.prepare,
            self.broadcast,
            self.cancel_all,
            self.open,
            self.audit,
            self.notify,
        ]

    def transfers(self, frm: str, to: str) -> list[PreparedTransfer]:
        return [p for p in self.landed.values() if p.from_address == frm and p.to_address == to]


def control_worker(env: WorkflowEnvironment, w: World) -> Worker:
    return Worker(
        env.client, task_queue=CONTROL_QUEUE, workflows=[RotateSigningKey], activities=w.control()
    )


def host_worker(env: WorkflowEnvironment, w: World) -> Worker:
    return Worker(
        env.client, task_queue=host_queue(MARKET), activities=[w.hot_status, w.hot_command]
    )


async def _start(env: WorkflowEnvironment, inp: RotateKeyInput) -> WorkflowHandle[Any, Any]:
    return await env.client.start_workflow(
        RotateSigningKey.run,
        inp,
        id=rotation_id(MARKET),
        task_queue=CONTROL_QUEUE,
    )


async def _rotate(env: WorkflowEnvironment, w: World, inp: RotateKeyInput) -> RotateKeyResult:
    async with control_worker(env, w), host_worker(env, w):
        h = await _start(env, inp)
        res: RotateKeyResult = await h.result()
        return res


WARM0 = {"usei": 100_000_000_000, "uusdc": 100_000_000_000}
OLD0 = {"usei": 1_500_000_000, "uusdc": 700_000_000, "uatom": 5}
SWEEP = {"usei": OLD0["usei"] - FEE, "uusdc": OLD0["uusdc"], "uatom": 5}


def _assert_rotated_once(w: World, res: RotateKeyResult) -> None:
    """Exactly one funding and one sweep, balances to the unit."""
    new = res.new_address
    assert len(w.transfers("sei1warm", new)) == 1
    assert len(w.transfers("sei1old", "sei1warm")) == 1
    assert w.sequence["sei1warm"] == 8 and w.sequence["sei1old"] == 41
    assert w.balances[new] == TARGET
    assert {d: v for d, v in w.balances["sei1old"].items() if v} == {}
    assert w.balances["sei1warm"] == {
        "usei": WARM0["usei"] - TARGET["usei"] - FEE + SWEEP["usei"],
        "uusdc": WARM0["uusdc"] - TARGET["uusdc"] + SWEEP["uusdc"],
        "uatom": 5,
    }
    assert res.funded == TARGET and res.swept == SWEEP
    assert res.funding_fee == FEE and res.sweep_fee == FEE


async def test_happy_path_runs_the_steps_in_order(time_env: WorkflowEnvironment) -> None:
    w = World()
    res = await _rotate(time_env, w, rotation_input())
    new_ref = res.new_key_ref
    assert w.steps == [
        f"keys_describe {WARM}",
        "keys_create",
        f"prepare top_up sei1warm->{res.new_address}",
        f"broadcast sei1warm->{res.new_address}",
        f"bank_balances {res.new_address}",
        "hotpath_status",
        f"keys_describe {OLD}",
        "hotpath_command stop",
        "hotpath_command switch_key",
        "hotpath_status",
        "hotpath_command start",
        f"venue_cancel_all {OLD}",
        f"venue_open_orders {OLD}",
        "prepare sweep sei1old->sei1warm",
        "broadcast sei1old->sei1warm",
        "bank_balances sei1old",
        f"keys_retire {OLD}",
        "audit",
        "notify",
    ]
    assert res.outcome == "rotated"
    assert (res.old_key_ref, res.old_address) == (OLD, "sei1old")
    assert res.new_key_ref.startswith("keystore:hot-new") and res.new_address == "sei1new0"
    assert res.warm_address == "sei1warm"
    _assert_rotated_once(w, res)
    assert w.hot_key == new_ref and w.desired == "trading"
    assert w.keys[OLD]["status"] == "retired" and w.keys[new_ref]["status"] == "active"
    stop, switch, _start_again = w.commands
    assert [c.command for c in w.commands] == ["stop", "switch_key", "start"]
    assert switch.args["key_ref"] == new_ref
    # command ids unique to this run: a retry is applied once, a later rotation is new
    assert len({c.command_id for c in w.commands}) == 3
    assert all(c.command_id.startswith(f"{rotation_id(MARKET)}/") for c in w.commands)
    assert stop.args["reason"].startswith("key rotation ")
    assert res.verification["quoting_resumed"] is True
    assert res.drained == 3 and res.verification["old_open_orders"] == 0
    assert res.verification["hotpath_key_ref"] == new_ref
    assert res.verification["new_balances_funded"] == TARGET
    assert res.verification["old_balances_left"] == {}
    assert res.verification["old_key_status"] == "retired"
    (audit,) = w.audits
    assert audit.action == "rotate_signing_key" and audit.outcome == "rotated"
    assert audit.actor == "alice" and audit.params["new_address"] == res.new_address
    assert w.notices[0].severity == "info" and res.notified and res.audit_hash == "ab" * 32


async def test_refused_switch_gives_the_funds_back_and_retires_the_new_key(
    time_env: WorkflowEnvironment,
) -> None:
    w = World()
    w.refuse_switch = True
    with pytest.raises(WorkflowFailureError) as err:
        await _rotate(time_env, w, rotation_input())
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "KeyRotationRolledBack"
    detail = cause.details[0]
    assert detail["outcome"] == "rolled back" and "CommandRefused" in detail["detail"]
    new_ref, new = detail["new_key_ref"], detail["new_address"]
    # funded, then every unit back less the sweep's fee; the new key is retired
    assert len(w.transfers("sei1warm", new)) == 1 and len(w.transfers(new, "sei1warm")) == 1
    assert w.balances["sei1warm"] == {
        "usei": WARM0["usei"] - 2 * FEE,
        "uusdc": WARM0["uusdc"],
    }
    assert {d: v for d, v in w.balances[new].items() if v} == {}
    assert w.keys[new_ref]["status"] == "retired"
    # the old key is untouched: still active, trading again, nothing cancelled or swept
    assert [c.command for c in w.commands] == ["stop", "switch_key", "start"]
    assert w.hot_key == OLD and w.desired == "trading" and w.keys[OLD]["status"] == "active"
    assert w.balances["sei1old"] == OLD0 and w.open_orders["sei1old"] == 3
    assert not any(s.startswith("venue_cancel_all") for s in w.steps)
    assert w.audits[0].outcome == "rolled back" and w.notices[0].severity == "warning"


async def test_an_operators_stop_during_the_pause_is_not_overridden(
    time_env: WorkflowEnvironment,
) -> None:
    w = World()
    w.operator_stops_during_switch = True
    res = await _rotate(time_env, w, rotation_input())
    assert res.outcome == "rotated" and w.hot_key == res.new_key_ref
    assert [c.command for c in w.commands] == ["stop", "switch_key"]  # no start
    assert (w.desired, w.reason) == ("stopped", "operator: end of day")
    assert res.verification["quoting_resumed"] is False
    _assert_rotated_once(w, res)


async def test_a_stopped_hot_path_is_switched_without_a_pause(
    time_env: WorkflowEnvironment,
) -> None:
    w = World()
    w.desired = "stopped"
    res = await _rotate(time_env, w, rotation_input())
    assert [c.command for c in w.commands] == ["switch_key"] and w.desired == "stopped"
    assert res.outcome == "rotated" and "quoting_resumed" not in res.verification
    _assert_rotated_once(w, res)


async def test_failed_funding_is_rolled_back_before_the_hot_path_is_touched(
    time_env: WorkflowEnvironment,
) -> None:
    w = World()
    w.balances["sei1warm"] = {"usei": 1_000_000, "uusdc": 0}  # cannot fund
    with pytest.raises(WorkflowFailureError) as err:
        await _rotate(time_env, w, rotation_input())
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "KeyRotationRolledBack"
    assert "InsufficientFunds" in cause.details[0]["detail"]
    assert w.landed == {} and w.commands == []
    assert w.keys[cause.details[0]["new_key_ref"]]["status"] == "retired"
    assert w.hot_key == OLD and w.keys[OLD]["status"] == "active"


async def test_hot_path_on_its_configured_key_is_refused_and_rolled_back(
    time_env: WorkflowEnvironment,
) -> None:
    w = World()
    w.hot_key = ""  # signing with the key from its configuration, not a keystore key
    with pytest.raises(WorkflowFailureError) as err:
        await _rotate(time_env, w, rotation_input())
    cause = err.value.cause
    assert isinstance(cause, ApplicationError)
    assert "keystore key first" in cause.details[0]["detail"]
    assert w.commands == [] and w.balances["sei1warm"]["usei"] == WARM0["usei"] - 2 * FEE


async def test_invalid_input_is_refused_before_any_step(time_env: WorkflowEnvironment) -> None:
    w = World()
    with pytest.raises(WorkflowFailureError) as err:
        await _rotate(time_env, w, rotation_input(old_key_ref=WARM))
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.type == "InvalidRequest" and w.steps == []


async def test_activities_dying_after_their_side_effect_do_not_repeat_it(
    time_env: WorkflowEnvironment,
) -> None:
    """The key is created, the funding and the sweep land — and each activity then loses its
    worker before answering. The retries find the key and the transactions: nothing twice."""
    w = World()
    w.crash_create_once = True
    w.crash_after = {"fund", "sweep"}
    res = await _rotate(time_env, w, rotation_input())
    assert res.outcome == "rotated"
    assert sum(1 for r in w.keys if r.startswith("keystore:hot-new")) == 1
    funding = [h for h in w.broadcasts if w.landed[h].to_address == res.new_address]
    assert len(funding) == 2 and len(set(funding)) == 1  # the same bytes, retried
    sweeps = [h for h in w.broadcasts if w.landed[h].to_address == "sei1warm"]
    assert len(sweeps) == 2 and len(set(sweeps)) == 1
    _assert_rotated_once(w, res)


async def test_a_transfer_whose_sequence_was_taken_is_prepared_again_once(
    time_env: WorkflowEnvironment,
) -> None:
    """Someone else used the warm key between prepare and broadcast: the signed funding can
    never land, so it is prepared again — from the balances, and it lands once."""
    w = World()
    w.steal_sequence_once = "sei1warm"
    res = await _rotate(time_env, w, rotation_input())
    assert [s for s in w.steps if s.startswith("prepare top_up")] == [
        f"prepare top_up sei1warm->{res.new_address}"
    ] * 2
    assert len(w.transfers("sei1warm", res.new_address)) == 1
    assert w.balances[res.new_address] == TARGET and res.funded == TARGET
    assert w.sequence["sei1warm"] == 9  # the other transaction, then ours


async def test_worker_lost_between_funding_and_switching_resumes_without_a_second_transfer(
    dev_env: WorkflowEnvironment,
) -> None:
    """A real dev server: the time-skipping test server never hands a departed worker's
    sticky workflow tasks back to the normal queue (a real SIGKILL: the e2e test)."""
    env = dev_env
    w = World()
    first = control_worker(env, w)
    async with first:  # no host worker yet: the workflow funds, then waits for the hot path
        h = await _start(env, rotation_input())
        for _ in range(200):
            if (await h.query(RotateSigningKey.progress))["phase"] == "asking the hot path":
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the workflow never reached the switch")
        new = (await h.query(RotateSigningKey.progress))["new_address"]
        assert w.balances[new] == TARGET and w.sequence["sei1warm"] == 8
    # the first worker is gone; a fresh one (and the host worker) pick the run up
    async with control_worker(env, w), host_worker(env, w):
        res: RotateKeyResult = await h.result()
    assert [s for s in w.steps if s.startswith("prepare top_up")] == [
        f"prepare top_up sei1warm->{new}"
    ]
    _assert_rotated_once(w, res)


async def test_the_old_key_is_drained_again_when_an_order_lands_after_the_cancel(
    time_env: WorkflowEnvironment,
) -> None:
    w = World()
    late = {"left": 1}

    @activity.defn(name="venue_open_orders")
    async def open_orders(req: VenueRequest) -> int:
        w.steps.append(f"venue_open_orders {req.key_ref}")
        if late["left"]:  # an in-flight order of the old key landed after the cancel
            late["left"] = 0
            w.open_orders["sei1old"] = 1
        return w.open_orders.get(w._addr(req.key_ref), 0)

    acts = [a for a in w.control() if a != w.open] + [open_orders]
    async with (
        Worker(
            time_env.client,
            task_queue=CONTROL_QUEUE,
            workflows=[RotateSigningKey],
            activities=acts,
        ),
        host_worker(time_env, w),
    ):
        res = await (await _start(time_env, rotation_input())).result()
    assert [s for s in w.steps if s.startswith("venue_")] == [
        f"venue_cancel_all {OLD}",
        f"venue_open_orders {OLD}",
        f"venue_cancel_all {OLD}",
        f"venue_open_orders {OLD}",
    ]
    assert res.drained == 4 and res.outcome == "rotated"
    _assert_rotated_once(w, res)


@pytest.mark.parametrize("refuse", [False, True], ids=["rotated", "rolled-back"])
async def test_history_replays_under_another_workflow_id(
    time_env: WorkflowEnvironment, refuse: bool
) -> None:
    """Determinism, as ``test_replay`` checks recorded histories (under another id): nothing
    the workflow decides may hang on its own workflow or run id."""
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    w = World()
    w.refuse_switch = refuse
    async with control_worker(time_env, w), host_worker(time_env, w):
        h = await _start(time_env, rotation_input())
        try:
            await h.result()
        except WorkflowFailureError:
            assert refuse
    history = await h.fetch_history()
    replay = WorkflowHistory.from_json("another-id", history.to_json())
    result = await Replayer(workflows=[RotateSigningKey]).replay_workflow(
        replay, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, result.replay_failure


# --- reset: one key per rotation -------------------------------------------------------------
async def _reset_to_start(env: WorkflowEnvironment, h: WorkflowHandle[Any, Any]) -> str:
    """Reset the run to its first workflow task (as ``temporal workflow reset --type
    FirstWorkflowTask`` does); answers the new run's id."""
    import uuid

    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

    history = await h.fetch_history()
    first_task = next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    resp = await env.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=env.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=h.id, run_id=h.result_run_id or ""),
            reason="test: operator reset",
            workflow_task_finish_event_id=first_task,
            request_id=str(uuid.uuid4()),
        )
    )
    assert resp.run_id and resp.run_id != h.result_run_id
    return resp.run_id


def _new_keys(w: World) -> list[str]:
    return [r for r in w.keys if r.startswith("keystore:hot-new")]


async def test_a_reset_run_finds_the_rotations_key_and_does_not_fund_it_twice(
    dev_env: WorkflowEnvironment,
) -> None:
    """Reset after the new key was created and funded (the hot path not reached yet): the new
    run starts over, finds the same key by the rotation's label (the first run id, which a
    reset keeps), finds it funded and rotates once."""
    env = dev_env
    w = World()
    async with control_worker(env, w):  # no host worker: the run waits after funding
        h = await _start(env, rotation_input())
        for _ in range(200):
            if (await h.query(RotateSigningKey.progress))["phase"] == "asking the hot path":
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the workflow never funded the new key")
        first = await h.query(RotateSigningKey.progress)
        run_id = await _reset_to_start(env, h)
        async with host_worker(env, w):
            res = await env.client.get_workflow_handle_for(
                RotateSigningKey.run, h.id, run_id=run_id
            ).result()
    assert res.outcome == "rotated"
    assert _new_keys(w) == [first["new_key_ref"]] == [res.new_key_ref]
    assert w.steps.count("keys_create") == 2  # once per run: the second found the first's key
    new = res.new_address
    assert [s for s in w.steps if s.startswith(f"broadcast sei1warm->{new}")] == [
        f"broadcast sei1warm->{new}"
    ]  # the reset run's top-up found nothing to move
    assert res.funded == {} and res.swept == SWEEP  # what this run moved
    assert len(w.transfers("sei1warm", new)) == 1 and w.balances[new] == TARGET
    assert len(w.transfers("sei1old", "sei1warm")) == 1
    assert w.sequence["sei1warm"] == 8 and w.sequence["sei1old"] == 41
    assert w.hot_key == res.new_key_ref and w.keys[OLD]["status"] == "retired"


async def test_resetting_a_finished_rotation_neither_makes_a_key_nor_undoes_the_switch(
    dev_env: WorkflowEnvironment,
) -> None:
    """Reset after the switch (here: after the rotation finished): the new run finds this
    rotation's key already live. It stops with RotationAlreadySwitched — no second key, no
    second funding, and no rollback that would sweep or retire the key the hot path signs
    with."""
    env = dev_env
    w = World()
    async with control_worker(env, w), host_worker(env, w):
        h = await _start(env, rotation_input())
        res: RotateKeyResult = await h.result()
        balances = {a: dict(b) for a, b in w.balances.items()}
        run_id = await _reset_to_start(env, h)
        with pytest.raises(WorkflowFailureError) as err:
            await env.client.get_workflow_handle(h.id, run_id=run_id).result()
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RotationAlreadySwitched"
    assert cause.details[0]["new_key_ref"] == res.new_key_ref
    assert _new_keys(w) == [res.new_key_ref]
    assert len(w.transfers("sei1warm", res.new_address)) == 1
    assert w.balances == balances  # nothing moved: not funded again, not swept back
    assert w.keys[res.new_key_ref]["status"] == "active" and w.hot_key == res.new_key_ref
    assert [a.outcome for a in w.audits] == ["rotated", "incomplete"]
    assert w.notices[-1].severity == "critical"
