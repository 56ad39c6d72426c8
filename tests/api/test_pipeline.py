"""What every request gets: security headers, request ids, body limits, timeouts, one error
shape, CORS off unless configured, rate limits per identity and endpoint class, health and
readiness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from api.auth.roles import Role
from api.ratelimit import RateLimiter
from flashmm.config.api import RateLimit
from tests.api.conftest import Harness, make_harness, settings_for


@pytest_asyncio.fixture
async def strict(
    jwt_env: None, pg_dsn: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    """Small limits, CORS for one origin, a tiny body limit."""
    s = settings_for(
        pg_dsn,
        redis_url,
        tmp_path,
        api={
            "cors_origins": ["https://ops.example.com"],
            "max_body_bytes": 2048,
            "rate_limits": {
                "read": {"rate": 1, "burst": 3},
                "write": {"rate": 1, "burst": 100},
                "estop": {"rate": 1, "burst": 100},
                "login": {"rate": 0.01, "burst": 6},
            },
        },
    )
    h = await make_harness(s)
    try:
        yield h
    finally:
        await h.http.aclose()
        await h.ctx.close()


async def test_security_headers_and_request_ids(harness: Harness) -> None:
    r = await harness.http.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    for name in ("x-content-type-options", "x-frame-options", "content-security-policy"):
        assert name in r.headers
    assert r.headers["cache-control"] == "no-store"
    assert len(r.headers["x-request-id"]) == 32
    bad_id = await harness.http.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert bad_id.headers["x-request-id"] != "bad id\nwith newline"


async def test_cors_is_off_by_default(harness: Harness) -> None:
    r = await harness.http.options(
        "/v1/markets",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


async def test_cors_allows_only_the_configured_origin(strict: Harness) -> None:
    ok = await strict.http.options(
        "/v1/markets",
        headers={"Origin": "https://ops.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert ok.headers["access-control-allow-origin"] == "https://ops.example.com"
    evil = await strict.http.options(
        "/v1/markets",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in evil.headers


async def test_oversized_bodies_are_refused_before_they_are_read(strict: Harness) -> None:
    h = strict
    big = {"username": "x", "password": "p" * 5000}
    r = await h.http.post("/v1/auth/login", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b"x" * 1000

    r = await h.http.post(
        "/v1/users",
        content=chunks(),
        headers={**h.auth(Role.ADMIN), "Content-Type": "application/json"},
    )
    assert r.status_code == 413


async def test_bad_input_gets_a_clear_error_and_changes_nothing(harness: Harness) -> None:
    h = harness
    cases = [
        ("POST", "/v1/users", {"username": "a b", "password": "x" * 20, "role": "viewer"}, 422),
        ("POST", "/v1/users", {"username": "ok", "password": "x" * 20, "role": "god"}, 422),
        ("POST", "/v1/emergency-stop", {"reason": "r"}, 422),  # neither markets nor all
        ("POST", "/v1/emergency-stop", {"markets": ["NOPE-USDC"], "reason": "r"}, 404),
        ("PUT", "/v1/markets/SEI-USDC/params", {"quoting": {"gamma": 1}, "evil": 1}, 422),
        ("GET", "/v1/fills?cursor=%%%", None, 422),
        ("GET", "/v1/fills?limit=0", None, 422),
        ("GET", "/v1/pnl?from=2026-02-01&to=2026-01-01", None, 422),
        ("GET", "/v1/markets/NOPE", None, 404),
    ]
    users_before = await h.ctx.pool.fetchval("SELECT count(*) FROM api_users")
    for method, path, body, status in cases:
        r = await h.http.request(method, path, json=body, headers=h.auth(Role.ADMIN))
        assert r.status_code == status, (path, r.text)
        err = r.json()["error"]
        assert err["code"] and err["message"] and err["request_id"] == r.headers["x-request-id"]
    r = await h.http.post(
        "/v1/users",
        content=b"{not json",
        headers={**h.auth(Role.ADMIN), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert await h.ctx.pool.fetchval("SELECT count(*) FROM api_users") == users_before
    assert await h.ctx.pool.fetchval("SELECT count(*) FROM pending_estops") == 0


async def test_slow_requests_time_out_with_a_504(harness: Harness) -> None:
    from api.middleware import Pipeline

    h = harness
    pipeline = h.app.middleware_stack
    while not isinstance(pipeline, Pipeline):
        pipeline = pipeline.app  # type: ignore[attr-defined]
    pipeline.timeout_s = 0.0001
    r = await h.http.get("/v1/fills", headers=h.auth(Role.VIEWER))
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"


async def test_read_rate_limit_is_per_identity(strict: Harness) -> None:
    h = strict
    codes = [
        (await h.http.get("/v1/risk", headers=h.auth(Role.VIEWER))).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    r = await h.http.get("/v1/risk", headers=h.auth(Role.VIEWER))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"
    # another identity has its own bucket
    assert (await h.http.get("/v1/risk", headers=h.auth(Role.TRADER))).status_code == 200


async def test_login_is_limited_harder(strict: Harness) -> None:
    h = strict  # the harness used 4 logins from this address already; burst is 6
    codes = [(await h.login("viewer", "wrong password")).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    # even the right password waits: guessing stays slow
    assert (await h.login("viewer")).status_code == 429


def test_token_bucket_refills_at_its_rate() -> None:
    rl = RateLimiter({"read": RateLimit(rate=2.0, burst=2)})
    assert [rl.take("read", "a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert rl.take("read", "a", now=0.5) == 0.0  # one token back after 1/rate
    assert rl.take("read", "a", now=0.5) > 0
    assert rl.take("read", "b", now=0.5) == 0.0
    small = RateLimiter({"read": RateLimit(rate=1.0, burst=1)}, max_keys=4)
    for i in range(10):
        small.take("read", f"id{i}", now=float(i))
    assert len(small._buckets) <= 4  # idle buckets do not pile up


async def test_ready_reports_each_dependency(harness: Harness) -> None:
    r = await harness.http.get("/ready")
    assert r.status_code == 200
    body = r.json()
    deps = body["dependencies"]
    assert deps["postgres"]["ok"] and deps["postgres"]["required"]
    assert deps["redis"]["ok"]
    assert not deps["temporal"]["ok"]  # not running in this test
    assert body["status"] == "degraded"
    await harness.ctx.pool.close()  # PostgreSQL gone for this app: not ready
    r = await harness.http.get("/ready")
    assert r.status_code == 503 and r.json()["status"] == "not_ready"


async def test_metrics_count_requests_by_route(harness: Harness) -> None:
    await harness.http.get("/v1/markets", headers=harness.auth(Role.VIEWER))
    text = (await harness.http.get("/metrics")).text
    assert 'flashmm_api_requests_total{route="/v1/markets",status="200"}' in text
    assert "flashmm_api_request_seconds_bucket" in text
