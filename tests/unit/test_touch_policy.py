"""The touch policy on hand-built inputs: improve, join or stay behind, never crossing, and the
engine with it keeping every risk limit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import SEI_USDC
from flashmm.domain.orders import Order, OrderState, Side
from flashmm.sim.params import market_preset
from hotpath.backtest import Backtest, BacktestConfig
from hotpath.engine import MarketMaker
from hotpath.quoting.params import QuoteParams
from hotpath.quoting.quoter import Quote
from hotpath.quoting.touch_policy import (
    Choice,
    PolicyInputs,
    Reason,
    SideDecision,
    TouchPolicyConfig,
    apply,
    decide,
    others_best,
)
from hotpath.risk import DenyReason, RiskLimits

# every field pinned, so a change of defaults does not move these cases
CFG = TouchPolicyConfig(
    min_edge_ticks=1.5,
    join_edge_ticks=0.5,
    max_improve_ticks=8,
    min_half_spread_ticks=1.5,
    adverse_ticks=0.5,
    microprice_weight=0.5,
    signal_ticks=2.0,
    signal_min_confidence=0.5,
    inventory_skew_ticks=3.0,
    inventory_behind_util=0.7,
    behind_ticks=1,
)


def inputs(bid: int, ask: int, **kw: float) -> PolicyInputs:
    """Equal sizes (the microprice is the mid), no signal, flat, no rebate unless given."""
    base: dict[str, float] = dict(
        bid_lots=500, ask_lots=500, signal=0.0, confidence=0.0, utilisation=0.0
    )
    base.update(kw)
    return PolicyInputs(bid, ask, **base)  # type: ignore[arg-type]


def test_wide_touch_is_improved_on_both_sides_as_far_as_the_edge_allows() -> None:
    # fair 5000; a bid earns 5000 − P − 0.5, so the best improving bid with edge ≥ 1.5 and
    # half spread ≥ 1.5 is 4998 (max_improve 8 would allow 4998 too: 4990 + 8)
    bid, ask = decide(CFG, inputs(4990, 5010))
    assert bid == SideDecision(1, Choice.IMPROVE, Reason.EDGE, 4998, 1.5)
    assert ask == SideDecision(-1, Choice.IMPROVE, Reason.EDGE, 5002, 1.5)


def test_improvement_is_capped_at_max_improve_ticks() -> None:
    cfg = TouchPolicyConfig(max_improve_ticks=2)
    bid, ask = decide(cfg, inputs(4980, 5020))
    assert (bid.choice, bid.price) == (Choice.IMPROVE, 4982)
    assert (ask.choice, ask.price) == (Choice.IMPROVE, 5018)


def test_narrow_touch_is_joined_when_only_the_touch_earns_the_edge() -> None:
    # 4998/5002: improving to 4999 would sit 1 tick from fair (< 1.5); 4998 earns 1.5 ≥ 0.5
    bid, ask = decide(CFG, inputs(4998, 5002))
    assert bid == SideDecision(1, Choice.JOIN, Reason.EDGE_AT_TOUCH, 4998, 1.5)
    assert ask == SideDecision(-1, Choice.JOIN, Reason.EDGE_AT_TOUCH, 5002, 1.5)


def test_one_tick_touch_without_edge_stays_behind() -> None:
    cfg = TouchPolicyConfig(adverse_ticks=1.0)  # 4999 earns 1 − 1 = 0 < join_edge 0.5
    bid, ask = decide(cfg, inputs(4999, 5001))
    assert bid == SideDecision(1, Choice.BEHIND, Reason.NO_EDGE, 4998, 1.0)
    assert ask == SideDecision(-1, Choice.BEHIND, Reason.NO_EDGE, 5002, 1.0)


def test_one_tick_touch_with_edge_is_joined_for_want_of_room() -> None:
    bid, ask = decide(CFG, inputs(4999, 5000, bid_lots=100, ask_lots=900, rebate_ticks=2.0))
    assert bid.choice is Choice.JOIN and bid.reason is Reason.NO_ROOM and bid.price == 4999
    assert ask.price > bid.price


def test_rebate_counts_in_the_edge() -> None:
    cfg = TouchPolicyConfig(adverse_ticks=1.0)
    bid, _ = decide(cfg, inputs(4999, 5001, rebate_ticks=0.5))
    assert (bid.choice, bid.price, bid.edge_ticks) == (Choice.JOIN, 4999, 0.5)


def test_signal_moves_the_fair_price_improving_one_side_and_backing_off_the_other() -> None:
    cfg = TouchPolicyConfig(signal_ticks=10.0)
    # up signal at full confidence: fair 5010, the others' ask is worth nothing to sell at
    bid, ask = decide(cfg, inputs(4990, 5010, signal=1.0, confidence=1.0))
    assert (bid.choice, bid.price) == (Choice.IMPROVE, 4998)
    assert (ask.choice, ask.reason, ask.price) == (Choice.BEHIND, Reason.NO_EDGE, 5011)


def test_unconfident_signal_is_ignored() -> None:
    plain = decide(CFG, inputs(4990, 5010))
    weak = decide(CFG, inputs(4990, 5010, signal=1.0, confidence=0.4))
    assert weak == plain


def test_microprice_leans_toward_the_thin_side() -> None:
    # a heavy bid and a light ask: microprice near the ask, the fair price moves up
    # microprice 5008, fair 5000 + 0.5 × 8 = 5004
    bid, ask = decide(CFG, inputs(4990, 5010, bid_lots=900, ask_lots=100))
    assert (bid.choice, bid.price) == (Choice.IMPROVE, 4998)  # capped: 4990 + 8
    assert (ask.choice, ask.price) == (Choice.IMPROVE, 5006)  # not 5002 as with a flat book


def test_large_long_position_keeps_the_bid_behind_and_the_ask_improving() -> None:
    bid, ask = decide(CFG, inputs(4990, 5010, utilisation=0.8))
    assert bid.choice is Choice.BEHIND and bid.reason is Reason.INVENTORY and bid.price == 4989
    assert ask.choice is Choice.IMPROVE and ask.price == 5002


def test_moderate_inventory_shrinks_the_adding_side_only() -> None:
    flat_bid, flat_ask = decide(CFG, inputs(4990, 5010))
    bid, ask = decide(CFG, inputs(4990, 5010, utilisation=-0.5))  # short: buying reduces
    assert bid == flat_bid
    assert ask.choice is Choice.IMPROVE and ask.price > flat_ask.price  # penalty 1.5 ticks
    assert ask.edge_ticks >= CFG.min_edge_ticks


def test_one_sided_book_leaves_the_model_prices() -> None:
    bid, ask = decide(CFG, inputs(0, 5010))
    assert bid.choice is ask.choice is Choice.MODEL
    assert bid.reason is Reason.NO_TOUCH and bid.price == 0 and math.isnan(bid.edge_ticks)
    quotes = [Quote(1, 0, 4990, 200), Quote(-1, 0, 5012, 200)]
    assert apply(quotes, bid, ask) == quotes


def test_apply_moves_each_side_keeping_the_ladder_spacing() -> None:
    quotes = [Quote(1, 0, 4995, 200), Quote(-1, 0, 5005, 200), Quote(1, 1, 4994, 100)]
    quotes.append(Quote(-1, 1, 5006, 100))
    bid = SideDecision(1, Choice.IMPROVE, Reason.EDGE, 4998, 1.5)
    ask = SideDecision(-1, Choice.JOIN, Reason.EDGE_AT_TOUCH, 5010, 4.5)
    assert apply(quotes, bid, ask) == [
        Quote(1, 0, 4998, 200),
        Quote(-1, 0, 5010, 200),
        Quote(1, 1, 4997, 100),
        Quote(-1, 1, 5011, 100),
    ]


@settings(max_examples=300, deadline=None)
@given(
    bid=st.integers(100, 10_000),
    width=st.integers(1, 60),
    bid_lots=st.integers(0, 5_000),
    ask_lots=st.integers(0, 5_000),
    signal=st.floats(-1, 1),
    confidence=st.floats(0, 1),
    util=st.floats(-1.2, 1.2),
    rebate=st.floats(-1, 1),
    half=st.floats(0, 5),
    edge=st.floats(0, 5),
)
def test_never_crosses_the_others_touch_nor_itself(
    bid: int,
    width: int,
    bid_lots: int,
    ask_lots: int,
    signal: float,
    confidence: float,
    util: float,
    rebate: float,
    half: float,
    edge: float,
) -> None:
    cfg = TouchPolicyConfig(min_half_spread_ticks=half, min_edge_ticks=edge)
    x = PolicyInputs(bid, bid + width, bid_lots, ask_lots, signal, confidence, util, rebate)
    b, a = decide(cfg, x)
    assert isinstance(b.price, int) and isinstance(a.price, int)
    assert b.price < x.ask and a.price > x.bid  # post-only against everyone else
    assert b.price < a.price  # and against ourselves
    for d, best in ((b, x.bid), (a, x.ask)):
        if d.choice is Choice.JOIN:
            assert d.price == best
        if d.choice is Choice.IMPROVE:
            assert d.side * (d.price - best) >= 1
        if d.choice is Choice.BEHIND:
            assert d.side * (best - d.price) >= 1
        if util * d.side >= cfg.inventory_behind_util:
            assert d.choice is Choice.BEHIND  # never adds to a large position at the touch


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="min_edge_ticks"):
        TouchPolicyConfig(min_edge_ticks=-1)
    with pytest.raises(ValueError, match="max_improve_ticks"):
        TouchPolicyConfig(max_improve_ticks=0)
    with pytest.raises(ValueError, match="microprice_weight"):
        TouchPolicyConfig(microprice_weight=2)
    with pytest.raises(ValueError, match="inventory_behind_util"):
        TouchPolicyConfig(inventory_behind_util=0)
    with pytest.raises(ValueError, match="adverse_ticks"):
        TouchPolicyConfig(adverse_ticks=math.nan)


def test_others_best_leaves_out_our_resting_orders() -> None:
    book = L2Book()
    book.set_level(1, 4998, 200)  # ours alone
    book.set_level(1, 4995, 300)
    book.set_level(-1, 5004, 700)  # ours 200 + theirs 500
    book.set_level(-1, 5010, 100)
    ours = Order("a", Side.BUY, 4998, 200)
    ours.state = OrderState.OPEN
    mine_ask = Order("b", Side.SELL, 5004, 200)
    mine_ask.state = OrderState.OPEN
    in_flight = Order("c", Side.BUY, 4995, 300)  # not in the book yet: does not count
    assert others_best(book, {"a": ours, "b": mine_ask, "c": in_flight}) == (4995, 5004, 300, 500)


# --- in the engine -------------------------------------------------------------------------
def test_engine_improves_a_wide_book_and_sends_nothing_crossing() -> None:
    book = L2Book()
    book.set_level(1, 4990, 500)
    book.set_level(-1, 5010, 500)
    mm = MarketMaker(
        SEI_USDC, QuoteParams(levels=1), RiskLimits(), book=book, policy=TouchPolicyConfig()
    )
    mm.risk.last_data_ns = 10**9
    batch = mm.cycle(10**9)
    prices = {p.side: p.price for p in batch.places}
    assert prices == {Side.BUY: 4998, Side.SELL: 5002}
    assert mm.policy is not None and mm.policy.figures()["policy_improve_share"] == 1.0


@pytest.fixture(scope="module")
def tight_limit_run() -> Backtest:
    """The thin market with the policy and a position limit of 150 USDC (300 lots at 0.5):
    the risk engine, not the policy, has to stop it."""
    cfg = BacktestConfig(
        minutes=1.5,
        market=market_preset("thin", seed=4),
        policy=TouchPolicyConfig(inventory_behind_util=1.0),
        limits=RiskLimits(max_position_notional=150),
        counterfactual=False,
    )
    bt = Backtest(cfg)
    bt.run()
    return bt


def test_policy_never_breaches_the_position_limit(tight_limit_run: Backtest) -> None:
    bt = tight_limit_run
    assert len(bt.fills) > 50
    pos = 0
    for _, side, price, lots in bt.fills:
        pos += side * lots
        assert abs(pos) * price * SEI_USDC.notional_per_tick_lot <= 150.0
    assert bt.mm.risk.denials[DenyReason.POSITION_LIMIT] > 0


def test_policy_orders_only_ever_make(tight_limit_run: Backtest) -> None:
    """Post-only: every fill is a maker fill (the fees are the maker rebate on all the
    volume), and the venue refused (almost) nothing as crossing: the only refusals are
    orders the market moved into while they were in flight."""
    bt = tight_limit_run
    notional = sum(p * q for _, _, p, q in bt.fills) * SEI_USDC.notional_per_tick_lot
    assert bt.mm.om.position.fees == pytest.approx(-0.5e-4 * notional)
    assert bt.mm.om.rejects <= 0.01 * bt.mm.stats.quotes_sent
