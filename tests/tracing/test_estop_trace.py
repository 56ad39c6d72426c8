"""One trace follows an emergency stop: the API's HTTP request → signal-with-start of
EmergencyStop → the workflow run and its activities (the SDK puts the workflow's spans under
the start's) → the hot path's control API (the halt activity's request carries
``traceparent``) → the halt; the API's own direct halt is in it too. Real parts: the API app
(PostgreSQL, Redis), a Temporal dev server with the real workflow and the real hot-path
activities on the host queue, and a hot path's control server over a quote loop on the
simulated venue; the control queue's venue and record activities are stand-ins (no chain
here)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio import activity
from temporalio.worker import Worker

from api.auth.roles import Role
from flashmm.temporal.client import connect
from tests.api.conftest import JWT_SECRET, PASSWORD, jwt_env, make_harness, settings_for
from tests.integration.test_control import TOKEN, hot_path, wait_for
from tests.workflows.conftest import _dev
from workers.run import host_workers
from workflows.estop import EmergencyStop
from workflows.types import (
    CONTROL_QUEUE,
    AuditEntry,
    EmergencyStopResult,
    Notice,
    VenueRequest,
)

MARKET = "SEI/USDC"
__all__ = ["jwt_env"]  # the fixture, used here


class Records:
    """The control queue's activities of a stop, without a chain or a database."""

    @activity.defn(name="venue_cancel_all")
    async def cancel_all(self, req: VenueRequest) -> dict[str, int]:
        return {"cancelled": 0, "open": 0}

    @activity.defn(name="venue_balances")
    async def balances(self, req: VenueRequest) -> dict[str, Any]:
        return {"address": "sei1x", "balances": {"uusdc": 5}}

    @activity.defn(name="persist_halt")
    async def persist_halt(self, market: str, reason: str) -> None:
        return None

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> bool:
        return True

    @activity.defn(name="audit")
    async def audit(self, entry: AuditEntry) -> str:
        return "ab" * 32

    def all(self) -> list[Any]:
        return [self.cancel_all, self.balances, self.persist_halt, self.notify, self.audit]


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, Counter(s.name for s in spans))
    return found[0]


def _parent(s: ReadableSpan) -> int | None:
    return s.parent.span_id if s.parent is not None else None


def _id(s: ReadableSpan) -> int:
    assert s.context is not None
    return int(s.context.span_id)


async def test_emergency_stop_is_one_trace(
    memory_spans: InMemorySpanExporter,
    jwt_env: None,
    pg_dsn: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    env = await _dev()
    try:
        async with hot_path(tmp_path / "hp.json") as (control, venue, url):
            await wait_for(lambda: len(venue.core.open_orders()) >= 2)
            addr = env.client.service_client.config.target_host
            s = settings_for(
                pg_dsn,
                redis_url,
                tmp_path,
                control={"temporal_address": addr, "hotpaths": {MARKET: url}},
            )
            client = await connect(addr)  # tracing is on: the client carries the interceptor
            workers = [
                Worker(
                    client,
                    task_queue=CONTROL_QUEUE,
                    workflows=[EmergencyStop],
                    activities=Records().all(),
                ),
                *host_workers(client, s),  # the real hotpath_command over HTTP
            ]
            h = await make_harness(s)
            try:
                async with workers[0], workers[1]:
                    r = await h.http.post(
                        "/v1/emergency-stop",
                        json={"markets": ["SEI-USDC"], "reason": "trace drill"},
                        headers=h.auth(Role.TRADER),
                    )
                    assert r.status_code == 202, r.text
                    body = r.json()
                    assert body["markets"][MARKET]["halted"]
                    wid = body["workflow"]["workflow_id"]
                    handle = client.get_workflow_handle(wid, result_type=EmergencyStopResult)
                    res = await asyncio.wait_for(handle.result(), 15)
                    assert res.markets[0].hotpath_halted and not res.markets[0].errors, res
            finally:
                await h.http.aclose()
                await h.ctx.close()
            assert control.state.state == "halted"
    finally:
        await env.shutdown()

    spans = list(memory_spans.get_finished_spans())
    http = _one(spans, "POST /v1/emergency-stop")
    assert http.parent is None and http.kind == SpanKind.SERVER
    assert http.attributes is not None
    assert http.attributes["http.response.status_code"] == 202
    assert http.attributes["flashmm.request_id"] == body["request_id"]
    assert http.context is not None
    trace_id = http.context.trace_id
    stop = [x for x in spans if x.context is not None and x.context.trace_id == trace_id]
    # the only other traces are the harness's logins, each its own request
    others = {x.name for x in spans if x not in stop}
    assert others <= {"POST /v1/auth/login"}, others

    start = _one(stop, "SignalWithStartWorkflow:EmergencyStop")
    assert _parent(start) == _id(http)
    run = _one(stop, "RunWorkflow:EmergencyStop")
    assert _parent(run) == _id(start)
    # the SDK's workflow spans are instants (replay-safe), all under the start's context:
    # RunWorkflow first, then each activity's schedule, the activity's run under that
    assert run.start_time is not None
    for act in ("hotpath_command", "venue_cancel_all", "venue_balances", "persist_halt"):
        sched = _one(stop, f"StartActivity:{act}")
        ran = _one(stop, f"RunActivity:{act}")
        assert _parent(sched) == _id(start), act
        assert sched.start_time is not None and run.start_time <= sched.start_time, act
        assert _parent(ran) == _id(sched), act
        assert ran.attributes is not None and ran.attributes["temporalWorkflowID"] == wid
    assert _parent(_one(stop, "CompleteWorkflow:EmergencyStop")) == _id(start)
    assert {"StartActivity:notify", "StartActivity:audit"} <= {x.name for x in stop}

    # two halts reached the hot path, both in this trace: the API's direct one and the
    # workflow's activity (a halt is applied every time)
    halt_activity = _one(stop, "RunActivity:hotpath_command")
    servers = [x for x in stop if x.name == "POST /v1/commands"]
    assert sorted(_parent(x) or 0 for x in servers) == sorted([_id(http), _id(halt_activity)])
    halts = [x for x in stop if x.name == "hotpath.halt"]
    assert sorted(_parent(x) or 0 for x in halts) == sorted(_id(x) for x in servers)
    for x in servers:
        assert x.kind == SpanKind.SERVER and x.attributes is not None
        assert x.attributes["http.response.status_code"] == 200
    by_parent = {_parent(x): x for x in halts}
    direct = by_parent[next(_id(x) for x in servers if _parent(x) == _id(http))]
    via_wf = by_parent[next(_id(x) for x in servers if _parent(x) == _id(halt_activity))]
    assert direct.attributes is not None and via_wf.attributes is not None
    assert direct.attributes["flashmm.market"] == MARKET
    assert int(str(direct.attributes["flashmm.open_orders.before"])) >= 2  # quoting till then
    assert direct.attributes["flashmm.risk_state"] == "halted"
    assert str(direct.attributes["flashmm.command_id"]).startswith("api-estop/")
    assert str(via_wf.attributes["flashmm.command_id"]).endswith(f"/halt/{MARKET}")
    # ... and the halt happened inside its request, inside the activity
    assert halt_activity.start_time is not None and halt_activity.end_time is not None
    assert via_wf.start_time is not None and via_wf.end_time is not None
    assert halt_activity.start_time <= via_wf.start_time <= via_wf.end_time
    assert via_wf.end_time <= halt_activity.end_time

    # no secret in any span
    secrets = (TOKEN, JWT_SECRET, PASSWORD, h.tokens[Role.TRADER])
    for x in spans:
        for k, v in (x.attributes or {}).items():
            assert not any(sec in str(v) for sec in secrets), (x.name, k)
