"""``PUT /v1/markets/{m}/params``: the configured risk limits are ceilings. Values that would
raise one, non-finite or absurd numbers and booleans read as numbers are refused with a 422
naming the field before anything reaches Temporal or the hot path; ``/v1/risk`` shows the
bounds."""

from __future__ import annotations

from typing import Any

import pytest

from api.auth.roles import Role
from tests.api.conftest import Harness

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"risk": {"max_position_notional": 1e12}}, "max_position_notional"),
    ({"risk": {"max_order_notional": 1e12}}, "max_order_notional"),
    ({"risk": {"max_open_notional": 1e12}}, "max_open_notional"),
    ({"risk": {"daily_loss_limit": 1e15}}, "daily_loss_limit"),
    ({"risk": {"stale_after_s": 1e9}}, "stale_after_s"),
    ({"risk": {"vol_breaker_sigma": 1e15}}, "vol_breaker_sigma"),
    ({"risk": {"max_position_notional": True}}, "max_position_notional"),
    ({"risk": {"max_actions_per_s": 1.5}}, "max_actions_per_s"),
    ({"risk": {"no_such_limit": 1}}, "no_such_limit"),
    ({"quoting": {"min_half_spread_ticks": 0}}, "min_half_spread_ticks"),
    ({"quoting": {"mode": "reckless"}}, "mode"),
    ({"quoting": {"gamma": 0.2}, "risk": {"max_drawdown": 10_000}}, "max_drawdown"),
]


@pytest.mark.parametrize(("body", "field"), REFUSED)
async def test_out_of_bounds_values_are_422_naming_the_field(
    harness: Harness, body: dict[str, Any], field: str
) -> None:
    r = await harness.http.put(
        "/v1/markets/SEI-USDC/params", json=body, headers=harness.auth(Role.TRADER)
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert any(field in f["loc"] for f in err["fields"]), err
    # refused before Temporal: the API's Temporal address is closed, so a 503 would mean
    # the change was on its way to the market
    rows = await harness.audit_rows()
    assert rows[-1]["action"] == "markets.set_params" and "422" in rows[-1]["outcome"]


async def test_large_integers_and_nan_are_refused(harness: Harness) -> None:
    for raw in (
        b'{"risk": {"max_drawdown": ' + b"9" * 400 + b"}}",
        b'{"risk": {"max_drawdown": NaN}}',
    ):
        r = await harness.http.put(
            "/v1/markets/SEI-USDC/params",
            content=raw,
            headers={**harness.auth(Role.TRADER), "Content-Type": "application/json"},
        )
        assert r.status_code == 422, r.text


async def test_a_change_within_bounds_goes_on_to_the_market(harness: Harness) -> None:
    r = await harness.http.put(
        "/v1/markets/SEI-USDC/params",
        json={"risk": {"max_position_notional": 1500}},
        headers=harness.auth(Role.TRADER),
    )
    assert r.status_code == 503, r.text  # valid: it went on, and Temporal is down here


async def test_risk_shows_the_bounds(harness: Harness) -> None:
    r = await harness.http.get("/v1/risk", headers=harness.auth(Role.VIEWER))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bounds"]["risk"]["max_position_notional"] == [1.0, 2000.0]
    assert body["limits"]["max_position_notional"] == 2000.0
