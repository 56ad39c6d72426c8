"""The audit spool never blocks behind one bad line (issue 12): an entry PostgreSQL refuses
for a permanent reason is moved to the quarantine file with a log line and a counter, the
entries behind it drain in order, and ``/ready`` shows the spool's depth, age and
quarantine count, turning degraded while draining is stuck."""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import REGISTRY

from flashmm.stores.pg import audit
from tests.api.conftest import Harness


def entry(**over: Any) -> dict[str, Any]:
    e = {
        "actor": "user:trader",
        "action": "markets.halt",
        "target": "SEI-USDC",
        "params": {"reason": "drill"},
        "outcome": "ok",
        "request_id": "r",
    }
    return {**e, **over}


def quarantined_total() -> float:
    return REGISTRY.get_sample_value("flashmm_api_audit_quarantined_total") or 0.0


async def test_poisoned_spool_lines_are_quarantined_and_the_rest_drain(
    harness: Harness,
) -> None:
    h = harness
    sink = h.ctx.audit
    # lines as the API spooled them before entries were made storable, then a trader's
    poison = [
        json.dumps(entry(actor="login:eve\x00", request_id="p-nul")),
        json.dumps(entry(params={"password": float("nan")}, request_id="p-nan")),
        json.dumps(entry(params={"r": "a\x00b"}, request_id="p-jsonb-nul")),
        json.dumps(entry(target="\ud800", request_id="p-surrogate")),
        "{not json",
        json.dumps({"actor": "x"}),
    ]
    good = [json.dumps(entry(request_id=f"good-{i}")) for i in range(2)]
    sink.spool.parent.mkdir(parents=True, exist_ok=True)
    sink.spool.write_text("\n".join([good[0], *poison, good[1]]) + "\n")
    before, counted = len(await h.audit_rows()), quarantined_total()

    assert await sink.drain() == 8
    assert not sink.spool.exists()
    rows = (await h.audit_rows())[before:]
    assert [r["request_id"] for r in rows] == ["good-0", "good-1"]
    kept = [json.loads(ln) for ln in sink.quarantine.read_text().splitlines()]
    assert [k["line"] for k in kept] == poison  # the original line, whole
    assert all(k["error"] for k in kept)
    assert quarantined_total() - counted == len(poison)
    async with h.ctx.pool.acquire() as conn:
        assert (await audit.verify(conn)).ok
    # later entries go straight in again
    assert await sink.record("user:trader", "markets.halt", "SEI-USDC", {}, "ok", "later") != (
        "spooled"
    )


async def test_ready_reports_the_audit_spool_and_degrades_when_stuck(harness: Harness) -> None:
    h = harness
    sink = h.ctx.audit
    body = (await h.http.get("/ready")).json()
    assert body["audit"] == {"depth": 0, "oldest_age_s": None, "quarantined": 0, "stuck": False}
    assert body["dependencies"]["audit_spool"]["ok"] is True

    sink.spool.parent.mkdir(parents=True, exist_ok=True)
    old = time.time() - 3600  # waiting an hour: the drain is stuck
    lines = [
        json.dumps({**entry(request_id=f"stuck-{i}"), "_spooled_at": old + i}) for i in range(3)
    ]
    sink.spool.write_text("\n".join(lines) + "\n")
    r = await h.http.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "degraded"
    assert body["audit"]["depth"] == 3 and body["audit"]["stuck"] is True
    assert body["audit"]["oldest_age_s"] >= 3600
    assert body["dependencies"]["audit_spool"]["ok"] is False
    assert "not draining" in body["dependencies"]["audit_spool"]["detail"]

    sink.spool.write_text(lines[0] + "\n" + json.dumps(entry(actor="\x00")) + "\n")
    assert await sink.drain() == 2
    body = (await h.http.get("/ready")).json()
    assert body["audit"] == {"depth": 0, "oldest_age_s": None, "quarantined": 1, "stuck": False}
    assert body["dependencies"]["audit_spool"]["ok"] is True
    metrics = (await h.http.get("/metrics")).text
    assert "flashmm_api_audit_quarantined_total" in metrics
    assert "flashmm_api_audit_spool_entries 0.0" in metrics
