"""The position read an emergency stop makes before flattening (``hotpath_status``) carries
the trace like the commands do, so the flatten branch shows in the same trace."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from activities.hotpath import HotpathActivities


async def test_the_status_read_sends_traceparent(
    memory_spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, str]] = []

    async def status(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"state": "halted", "position_lots": 3})

    app = web.Application()
    app.router.add_get("/v1/status", status)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    monkeypatch.setenv("FLASHMM_CONTROL_TOKEN", "t" * 24)
    acts = HotpathActivities({"SEI/USDC": str(server.make_url("")).rstrip("/")})
    try:
        with trace.get_tracer("test").start_as_current_span("RunActivity:hotpath_status") as span:
            got = await acts.status("SEI/USDC")
        trace_id = f"{span.get_span_context().trace_id:032x}"
    finally:
        await server.close()
    assert got["position_lots"] == 3
    parent = seen[0]["traceparent"].split("-")
    assert parent[1] == trace_id  # the hot path's server span continues this trace
    assert seen[0]["Authorization"] == "Bearer " + "t" * 24
