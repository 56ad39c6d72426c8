"""MarketMaker's operations, used without reaching into its order manager or risk engine."""

from __future__ import annotations

from dataclasses import replace

from flashmm.config.quoting import QuotingPolicy
from flashmm.domain.instrument import SEI_USDC
from flashmm.domain.market_state import Activity, MarketState
from flashmm.venue.base import Heartbeat, OrderAccepted, OrderCancelled
from hotpath.engine import MarketMaker
from hotpath.quoting.params import QuoteParams
from hotpath.risk import DenyReason, RiskLimits, TradingState


def _mm(**kw: object) -> MarketMaker:
    mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits(), **kw)  # type: ignore[arg-type]
    mm.book.set_level(1, 4990, 100)
    mm.book.set_level(-1, 5010, 100)
    return mm


def test_halt_resume_stop_start_and_status() -> None:
    mm = _mm()
    mm.on_data(1_000)
    batch = mm.cycle(1_000)
    assert batch.places and mm.status()["open_orders"] == len(batch.places)
    cancels = mm.halt("drill", 2_000)
    assert len(cancels.cancels) == len(batch.places)
    st = mm.status()
    assert (st["state"], st["halt_reason"], st["activity"]) == ("halted", "drill", "halted")
    assert mm.halted and not mm.cycle(3_000).places
    mm.resume()
    assert mm.status()["activity"] == "trading" and not mm.halted
    mm.stop()
    assert mm.status()["activity"] == "stopped"
    mm.start()
    assert mm.status()["enabled"] is True


def test_restore_a_halted_market() -> None:
    mm = _mm()
    mm.restore(MarketState.HALTED, "halted before restart")
    assert mm.halted and mm.status()["enabled"] is False
    mm.restore(MarketState.STOPPED, "")
    assert mm.status()["activity"] == "halted"  # only a resume leaves a halt


def test_set_params_and_apply_events() -> None:
    mm = _mm()
    mm.set_params(replace(mm.params, levels=1), replace(mm.limits, max_actions_per_s=7))
    assert mm.params.levels == 1 and mm.limits.max_actions_per_s == 7
    batch = mm.cycle(1_000)
    cid = batch.places[0].client_id
    done = mm.apply(OrderAccepted(cid, 42, 1), 2_000)
    assert done.order is mm.order(cid)
    done = mm.apply(OrderCancelled(cid, 0, 3), 3_000)
    assert done.order is not None and mm.order(cid) is None
    mm.apply(Heartbeat(4), 5_000)
    assert mm.status()["open_orders"] == len(batch.places) - 1


def test_quoting_policy_setting_turns_the_touch_policy_on() -> None:
    assert _mm().policy is None
    touch = MarketMaker(SEI_USDC, QuoteParams(policy=QuotingPolicy.TOUCH), RiskLimits())
    assert touch.policy is not None


def test_risk_view_is_a_copy_of_the_risk_side() -> None:
    mm = _mm()
    mm.on_data(1_000)
    mm.cycle(1_000)
    view = mm.risk_view()
    assert (view.state, view.activity, view.enabled) == (
        TradingState.ACTIVE,
        Activity.TRADING,
        True,
    )
    assert view.last_data_ns == 1_000 and view.limits is mm.limits
    assert not view.stale(1_000) and view.stale(1_000 + int(mm.limits.stale_after_s * 1e9) + 1)
    assert not view.breaker_tripped(1_000) and view.day_start_pnl == 0.0
    mm.halt("drill", 2_000)
    mm.cycle(3_000)  # gated: counts a denial
    mm.stop()
    assert view.state is TradingState.ACTIVE and not any(view.denials.values())
    now = mm.risk_view()
    assert (now.state, now.halt_reason, now.enabled) == (TradingState.HALTED, "drill", False)
    assert now.activity is Activity.HALTED and now.denials[DenyReason.HALTED] == 1
    assert mm.trading_state is TradingState.HALTED and mm.open_order_count > 0  # cancels pending


def test_bench_style_feeding_through_operations() -> None:
    """What the benchmarks do without reaching in: the feed is alive, cancels confirmed."""
    mm = _mm()
    mm.on_data(5_000)
    batch = mm.cycle(5_000)
    assert mm.risk_view().last_data_ns == 5_000
    cancels = mm.pull_quotes(6_000)
    for c in cancels.cancels:
        mm.on_cancelled(c.client_id)
    assert len(cancels.cancels) == len(batch.places) and mm.open_order_count == 0
