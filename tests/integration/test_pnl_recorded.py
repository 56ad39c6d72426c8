"""A real hot path trading on the simulated venue records its daily PnL into ``daily_pnl`` and
its live risk state into Redis as it trades: ``/v1/pnl`` has today's row with the fills
after a few seconds, ``/v1/markets`` shows the risk state before any halt, and a restarted
hot path adds its run to the day instead of overwriting it. Real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from api.auth.roles import Role
from flashmm.stores.pg.migrate import migrate
from tests.api.conftest import JWT_SECRET, Harness, make_harness, settings_for
from tests.integration.hotpath_stores import hot_path_with_stores


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHMM_API_JWT_SECRET", JWT_SECRET)


async def _until(pred: Any, timeout: float, what: str) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not await pred():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"{what}: not in {timeout}s")
        await asyncio.sleep(0.1)


async def _pnl(h: Harness) -> dict[str, Any]:
    r = await h.http.get("/v1/pnl?market=SEI-USDC", headers=h.auth(Role.VIEWER))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_pnl_and_risk_are_recorded_as_the_hot_path_trades(
    api_env: None, pg_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    await migrate(pg_dsn)
    h = await make_harness(settings_for(pg_dsn, redis_url, tmp_path))
    today = datetime.now(UTC).date().isoformat()
    try:
        async with hot_path_with_stores(tmp_path, pg_dsn, redis_url, run="run-1") as hp:
            # the risk state shows from the first seconds, with nothing ever halted
            async def risk_shown() -> bool:
                r = await h.http.get("/v1/markets", headers=h.auth(Role.VIEWER))
                return r.json()[0]["risk"] is not None

            await _until(risk_shown, 5, "risk in /v1/markets")
            m = (await h.http.get("/v1/markets", headers=h.auth(Role.VIEWER))).json()[0]
            assert m["risk_record"] is None  # no halt, no durable risk_state row
            risk = m["risk"]
            assert risk["source"] == "hotpath" and risk["state"] == "active"
            assert risk["hotpath_state"] == "trading" and m["state"] == "TRADING"
            assert risk["halted"] is False and risk["breaker"] in ("armed", "tripped")
            assert risk["daily_loss_limit"] == 200.0 and 0 <= risk["position_limit_use"] < 1
            assert risk["max_drawdown"] == 150.0 and risk["since"] and risk["age_s"] < 5

            async def filled_today() -> bool:
                days = (await _pnl(h))["days"]
                return bool(days) and days[0]["day"] == today and days[0]["fills"] > 0

            await _until(filled_today, 20, "a daily_pnl row with fills")
            row = (await _pnl(h))["days"][0]
            assert row["market"] == "SEI/USDC" and row["runs"] == 1
            assert {"realized", "unrealized", "fees", "updated_at"} <= set(row)
            assert Decimal(row["volume"]) > 0
            mm = hp.mm
        # stopped: the run's last figures are written on stop (the writer is flushed)
        pos = mm.position
        body = await _pnl(h)
        (row,) = body["days"]
        assert row["fills"] == pos.fill_count
        fills_in_table = await h.ctx.pool.fetchval("SELECT count(*) FROM fills")
        assert row["fills"] == fills_in_table
        assert abs(float(row["fees"]) - pos.fees) < 1e-9
        assert abs(float(row["realized"]) - pos.realized) < 1e-9
        assert body["totals"]["SEI/USDC"]["fills"] == pos.fill_count
        first = row

        # a restarted hot path adds its own run to the day
        async with hot_path_with_stores(tmp_path, pg_dsn, redis_url, seed=5, run="run-2") as hp2:

            async def second_run() -> bool:
                return bool((await _pnl(h))["days"][0].get("runs") == 2)

            await _until(second_run, 10, "the second run in today's row")
            mm2 = hp2.mm
        (row,) = (await _pnl(h))["days"]
        assert row["runs"] == 2
        assert row["fills"] == first["fills"] + mm2.om.position.fill_count
        expected = Decimal(first["net_pnl"]) + Decimal(
            repr(mm2.om.position.net_pnl(mm2.book.mid) if mm2.book.mid else 0.0)
        )
        assert abs(Decimal(row["net_pnl"]) - expected) < Decimal("1e-6")
    finally:
        await h.http.aclose()
        await h.ctx.close()
