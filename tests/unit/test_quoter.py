"""Quote builder: model → skews → widening → clamps → post-only → ladder, and QuoteParams."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotpath.quoting.params import Mode, QuoteModel, QuoteParams
from hotpath.quoting.quoter import Quote, QuoteInputs, build_quotes, pick_mode

LOT_NOTIONAL = 0.0001  # SEI_USDC: tick 0.0001 × lot 1

# Default GLFT numbers at σ = 1, A = 1, k = 0.5, γ = 0.1 (ADAPTIVE → scales 1, 1, 1):
#   c1 = ln(1.2)/0.1 = 1.823216, c2 = sqrt(0.1/(2·0.5·1) · 1.2^6) = sqrt(0.2985984) = 0.546442
#   half = c1 + c2/2 = 2.096437
#   at mid 5000: bid = floor(4997.90) = 4997, ask = ceil(5002.10) = 5003
C1 = math.log(1.2) / 0.1
C2 = math.sqrt(0.1 / (2 * 0.5 * 1.0) * 1.2**6)
BASE_LOTS = 200  # 100 USDC / (5000 ticks × 0.0001 USDC per tick-lot)

# Every field that shapes a quote is pinned here, so a change of defaults does not move the
# hand-computed numbers below.
BASE = QuoteParams(
    model=QuoteModel.GLFT,
    mode=Mode.ADAPTIVE,
    gamma=0.1,
    horizon_s=5.0,
    levels=2,
    level_spacing_ticks=1,
    order_notional=100.0,
    size_decay=1.0,
    min_half_spread_ticks=0.5,
    max_half_spread_ticks=50.0,
    vol_ref=1.0,
    vol_widen=0.5,
    signal_skew_ticks=2.0,
    signal_min_confidence=0.5,
    inventory_skew_mult=1.0,
)


def inputs(**kw: Any) -> QuoteInputs:
    base: dict[str, Any] = {
        "best_bid": 4990,
        "best_ask": 5010,
        "mid": 5000.0,
        "sigma": 1.0,
        "A": 1.0,
        "k": 0.5,
        "inventory_lots": 0,
        "utilisation": 0.0,
        "signal": 0.0,
        "confidence": 0.0,
    }
    base.update(kw)
    return QuoteInputs(**base)


def bids(qs: list[Quote]) -> list[Quote]:
    return [q for q in qs if q.side == 1]


def asks(qs: list[Quote]) -> list[Quote]:
    return [q for q in qs if q.side == -1]


def touch(qs: list[Quote]) -> tuple[int, int]:
    return max(q.price for q in bids(qs)), min(q.price for q in asks(qs))


# --- exact values ----------------------------------------------------------------------------
def test_default_glft_ladder_hand_computed() -> None:
    half = C1 + C2 / 2
    assert half == pytest.approx(2.096437, abs=1e-6)
    qs = build_quotes(BASE, inputs(), LOT_NOTIONAL)
    assert qs == [
        Quote(1, 0, 4997, BASE_LOTS),
        Quote(-1, 0, 5003, BASE_LOTS),
        Quote(1, 1, 4996, BASE_LOTS),
        Quote(-1, 1, 5004, BASE_LOTS),
    ]


def test_as_model_with_fixed_mode_and_vol_widening_hand_computed() -> None:
    # CONSERVATIVE: γ = 2·0.1 = 0.2, spread × 1.5, size × 0.5. σ = 3 → widen = 1 + 0.5·(3 − 1) = 2
    # AS half = (0.2·9·5 + (2/0.2)·ln(1.4))/2 = (9 + 3.364722)/2 = 6.182361
    # half = 6.182361 · 1.5 · 2 = 18.547083
    # → bid = floor(4981.45) = 4981, ask = ceil(5018.55) = 5019
    p = BASE.with_(model=QuoteModel.AS, mode=Mode.CONSERVATIVE, levels=1)
    half = (0.2 * 9 * 5 + 10 * math.log(1.4)) / 2 * 1.5 * 2
    assert half == pytest.approx(18.547083, abs=1e-6)
    qs = build_quotes(p, inputs(best_bid=4900, best_ask=5100, sigma=3.0), LOT_NOTIONAL)
    assert qs == [Quote(1, 0, 4981, 100), Quote(-1, 0, 5019, 100)]


def test_prices_are_ints_and_bid_below_ask() -> None:
    qs = build_quotes(BASE.with_(levels=3), inputs(signal=0.3, confidence=0.9), LOT_NOTIONAL)
    assert qs
    for q in qs:
        assert type(q.price) is int
        assert type(q.lots) is int
    b, a = touch(qs)
    assert b < a


# --- ladder ----------------------------------------------------------------------------------
def test_ladder_spacing_level_count_and_size_decay() -> None:
    p = BASE.with_(levels=3, level_spacing_ticks=2, size_decay=0.5)
    qs = build_quotes(p, inputs(), LOT_NOTIONAL)
    assert [(q.level, q.price, q.lots) for q in bids(qs)] == [
        (0, 4997, 200),
        (1, 4995, 100),
        (2, 4993, 50),
    ]
    assert [(q.level, q.price, q.lots) for q in asks(qs)] == [
        (0, 5003, 200),
        (1, 5005, 100),
        (2, 5007, 50),
    ]


def test_sizes_never_drop_below_one_lot() -> None:
    p = BASE.with_(levels=4, size_decay=0.01)
    qs = build_quotes(p, inputs(), LOT_NOTIONAL)
    assert [q.lots for q in bids(qs)] == [200, 2, 1, 1]


def test_bids_at_or_below_zero_are_dropped() -> None:
    qs = build_quotes(BASE.with_(levels=3), inputs(best_bid=1, best_ask=3, mid=2.0), LOT_NOTIONAL)
    assert all(q.price > 0 for q in qs)
    assert bids(qs) == []
    assert len(asks(qs)) == 3


# --- skews -----------------------------------------------------------------------------------
def test_long_inventory_shifts_both_quotes_down() -> None:
    p = BASE.with_(levels=1)
    flat_b, flat_a = touch(build_quotes(p, inputs(), LOT_NOTIONAL))
    # q = 400/200 = 2 → offset = −2·c2 = −1.092884: bid = floor(4996.81) = 4996, ask = 5002
    long_b, long_a = touch(build_quotes(p, inputs(inventory_lots=400), LOT_NOTIONAL))
    assert (long_b, long_a) == (4996, 5002)
    assert long_b < flat_b
    assert long_a < flat_a
    short_b, short_a = touch(build_quotes(p, inputs(inventory_lots=-400), LOT_NOTIONAL))
    assert short_b > flat_b
    assert short_a > flat_a


def test_inventory_skew_multiplier() -> None:
    no_skew = BASE.with_(levels=1, inventory_skew_mult=0.0)
    flat = build_quotes(no_skew, inputs(), LOT_NOTIONAL)
    assert build_quotes(no_skew, inputs(inventory_lots=1000), LOT_NOTIONAL) == flat
    # mult 3, q = 2: offset = −6·c2 = −3.278652
    # → bid floor(4994.63) = 4994, ask ceil(4998.82) = 4999
    strong = BASE.with_(levels=1, inventory_skew_mult=3.0)
    assert touch(build_quotes(strong, inputs(inventory_lots=400), LOT_NOTIONAL)) == (4994, 4999)


def test_signal_at_or_above_confidence_threshold_shifts_up() -> None:
    p = BASE.with_(levels=1)  # signal_skew_ticks 2, signal_min_confidence 0.5
    flat_b, flat_a = touch(build_quotes(p, inputs(), LOT_NOTIONAL))
    # offset = 2 · 1 · 0.6 = 1.2 → bid floor(4999.10) = 4999, ask ceil(5003.30) = 5004
    up = touch(build_quotes(p, inputs(signal=1.0, confidence=0.6), LOT_NOTIONAL))
    assert up == (4999, 5004)
    assert up[0] > flat_b and up[1] > flat_a
    at = touch(build_quotes(p, inputs(signal=1.0, confidence=0.5), LOT_NOTIONAL))
    assert at[0] > flat_b and at[1] > flat_a  # threshold is inclusive
    down = touch(build_quotes(p, inputs(signal=-1.0, confidence=0.6), LOT_NOTIONAL))
    assert down[0] < flat_b and down[1] < flat_a


def test_signal_below_confidence_threshold_has_no_effect() -> None:
    p = BASE.with_(levels=2)
    flat = build_quotes(p, inputs(), LOT_NOTIONAL)
    assert build_quotes(p, inputs(signal=1.0, confidence=0.49), LOT_NOTIONAL) == flat
    assert build_quotes(p, inputs(signal=-1.0, confidence=0.1), LOT_NOTIONAL) == flat


# --- spread ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [QuoteModel.AS, QuoteModel.GLFT])
def test_higher_sigma_widens(model: QuoteModel) -> None:
    p = BASE.with_(model=model, mode=Mode.CONSERVATIVE, levels=1, max_half_spread_ticks=200)
    widths = []
    for sigma in (0.5, 1.0, 2.0, 4.0):
        qs = build_quotes(p, inputs(best_bid=4500, best_ask=5500, sigma=sigma), LOT_NOTIONAL)
        b, a = touch(qs)
        widths.append(a - b)
    assert all(x < y for x, y in pairwise(widths)), widths


def test_min_half_spread_clamp() -> None:
    p = BASE.with_(levels=1, min_half_spread_ticks=5.0)
    qs = build_quotes(p, inputs(sigma=0.0), LOT_NOTIONAL)
    assert touch(qs) == (4995, 5005)


def test_max_half_spread_clamp() -> None:
    p = BASE.with_(levels=1, max_half_spread_ticks=3.0)
    qs = build_quotes(p, inputs(sigma=10.0, best_bid=4900, best_ask=5100), LOT_NOTIONAL)
    assert touch(qs) == (4997, 5003)


def test_post_only_clamps_bid_below_best_ask() -> None:
    # a strong up-signal puts the centre at 5020 in a 4999/5001 book
    p = BASE.with_(levels=2, signal_skew_ticks=20.0)
    qs = build_quotes(
        p, inputs(best_bid=4999, best_ask=5001, signal=1.0, confidence=1.0), LOT_NOTIONAL
    )
    assert [q.price for q in bids(qs)] == [5000, 4999]
    assert [q.price for q in asks(qs)] == [5023, 5024]  # ceil(5020 + 2.096437)


def test_post_only_clamps_ask_above_best_bid() -> None:
    p = BASE.with_(levels=1, signal_skew_ticks=20.0)
    qs = build_quotes(
        p, inputs(best_bid=4999, best_ask=5001, signal=-1.0, confidence=1.0), LOT_NOTIONAL
    )
    assert touch(qs) == (4977, 5000)  # floor(4980 − 2.096437) = 4977


# --- modes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sigma", "util", "expected"),
    [
        (1.51, 0.0, Mode.CONSERVATIVE),
        (1.5, 0.0, Mode.ADAPTIVE),  # the boundary itself is not "high"
        (1.0, 0.61, Mode.CONSERVATIVE),
        (1.0, 0.6, Mode.ADAPTIVE),
        (0.5, 0.9, Mode.CONSERVATIVE),  # heavy inventory wins over calm
        (0.79, 0.29, Mode.AGGRESSIVE),
        (0.8, 0.0, Mode.ADAPTIVE),
        (0.5, 0.3, Mode.ADAPTIVE),
        (1.0, 0.0, Mode.ADAPTIVE),
    ],
)
def test_pick_mode_adaptive_rules(sigma: float, util: float, expected: Mode) -> None:
    assert pick_mode(BASE, sigma, util) is expected


def test_pick_mode_scales_with_vol_ref() -> None:
    p = BASE.with_(vol_ref=2.0)
    assert pick_mode(p, 2.9, 0.0) is Mode.ADAPTIVE
    assert pick_mode(p, 3.1, 0.0) is Mode.CONSERVATIVE
    assert pick_mode(p, 1.5, 0.0) is Mode.AGGRESSIVE


@pytest.mark.parametrize("mode", [Mode.AGGRESSIVE, Mode.CONSERVATIVE])
def test_pick_mode_fixed_modes_ignore_the_regime(mode: Mode) -> None:
    p = BASE.with_(mode=mode)
    for sigma, util in ((0.1, 0.0), (10.0, 0.0), (1.0, 0.99)):
        assert pick_mode(p, sigma, util) is mode


def test_mode_sizes() -> None:
    def first_bid_lots(sigma: float, util: float) -> int:
        qs = build_quotes(BASE.with_(levels=1), inputs(sigma=sigma, utilisation=util), 1e-4)
        return bids(qs)[0].lots

    assert first_bid_lots(0.5, 0.0) == 300  # AGGRESSIVE: 200 × 1.5
    assert first_bid_lots(1.0, 0.0) == 200  # ADAPTIVE: 200 × 1
    assert first_bid_lots(1.0, 0.9) == 100  # CONSERVATIVE: 200 × 0.5


def test_conservative_is_wider_than_aggressive() -> None:
    x = inputs(best_bid=4900, best_ask=5100)
    agg = touch(build_quotes(BASE.with_(mode=Mode.AGGRESSIVE, levels=1), x, LOT_NOTIONAL))
    con = touch(build_quotes(BASE.with_(mode=Mode.CONSERVATIVE, levels=1), x, LOT_NOTIONAL))
    assert con[1] - con[0] > agg[1] - agg[0]


# --- empty book ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {"best_bid": 0, "mid": 0.0},
        {"best_ask": 0, "mid": 0.0},
        {"best_bid": 0},
        {"best_ask": 0},
        {"mid": 0.0},
    ],
)
def test_empty_or_one_sided_book_gives_no_quotes(kw: dict[str, Any]) -> None:
    assert build_quotes(BASE, inputs(**kw), LOT_NOTIONAL) == []


# --- properties ------------------------------------------------------------------------------
@st.composite
def quoting_case(draw: st.DrawFn) -> tuple[QuoteParams, QuoteInputs]:
    min_half = draw(st.floats(0.0, 5.0))
    p = BASE.with_(
        model=draw(st.sampled_from(list(QuoteModel))),
        mode=draw(st.sampled_from(list(Mode))),
        gamma=draw(st.floats(0.01, 2.0)),
        horizon_s=draw(st.floats(0.1, 60.0)),
        levels=draw(st.integers(1, 5)),
        level_spacing_ticks=draw(st.integers(1, 4)),
        size_decay=draw(st.floats(0.1, 2.0)),
        min_half_spread_ticks=min_half,
        max_half_spread_ticks=min_half + draw(st.floats(0.01, 100.0)),
        signal_skew_ticks=draw(st.floats(0.0, 50.0)),
        inventory_skew_mult=draw(st.floats(0.0, 5.0)),
    )
    bb = draw(st.integers(1, 200_000))
    ba = bb + draw(st.integers(1, 40))
    x = QuoteInputs(
        best_bid=bb,
        best_ask=ba,
        mid=(bb + ba) / 2,
        sigma=draw(st.floats(0.0, 20.0)),
        A=draw(st.floats(0.05, 50.0)),
        k=draw(st.floats(0.05, 5.0)),
        inventory_lots=draw(st.integers(-20_000, 20_000)),
        utilisation=draw(st.floats(0.0, 2.0)),
        signal=draw(st.floats(-1.0, 1.0)),
        confidence=draw(st.floats(0.0, 1.0)),
    )
    return p, x


@settings(max_examples=400, deadline=None)
@given(quoting_case())
def test_quotes_never_cross_and_ladder_is_ordered(case: tuple[QuoteParams, QuoteInputs]) -> None:
    p, x = case
    qs = build_quotes(p, x, LOT_NOTIONAL)
    b = bids(qs)
    a = asks(qs)
    assert len(a) == p.levels
    assert len(b) <= p.levels
    for q in qs:
        assert type(q.price) is int
        assert q.price > 0
        assert q.lots >= 1
    for q in b:
        assert q.price < x.best_ask  # post-only: never at or through the best ask
    for q in a:
        assert q.price > x.best_bid
    if b:
        assert max(q.price for q in b) < min(q.price for q in a)
    for side in (b, a):
        prices = [q.price for q in side]
        gaps = [abs(u - v) for u, v in pairwise(prices)]
        assert all(g == p.level_spacing_ticks for g in gaps)
        assert [q.level for q in side] == list(range(len(side)))


# --- QuoteParams validation ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gamma", 0.0),
        ("horizon_s", -1.0),
        ("prior_sigma", 0.0),
        ("prior_A", -0.5),
        ("prior_k", 0.0),
        ("levels", 0),
        ("level_spacing_ticks", 0),
        ("order_notional", 0.0),
        ("size_decay", 0.0),
        ("vol_ref", -1.0),
        ("max_half_spread_ticks", 0.0),
        ("min_half_spread_ticks", -0.1),
        ("vol_widen", -1.0),
        ("signal_skew_ticks", -2.0),
        ("inventory_skew_mult", -1.0),
        ("requote_min_interval_s", -0.01),
        ("keep_size_tolerance", -0.1),
        ("signal_min_confidence", 1.5),
        ("signal_min_confidence", -0.1),
        ("levels", 11),
    ],
)
def test_quote_params_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"quoting\\.{field}"):
        QuoteParams(**{field: value})


def test_quote_params_min_above_max_half_spread() -> None:
    with pytest.raises(ValueError, match=r"quoting\.min_half_spread_ticks"):
        QuoteParams(min_half_spread_ticks=6.0, max_half_spread_ticks=5.0)
    QuoteParams(min_half_spread_ticks=5.0, max_half_spread_ticks=5.0)  # equal is fine


def test_quote_params_with_revalidates_and_as_dict_is_plain() -> None:
    p = BASE
    with pytest.raises(ValueError, match=r"quoting\.gamma"):
        p.with_(gamma=-1.0)
    q = p.with_(gamma=0.3, model=QuoteModel.AS)
    assert (q.gamma, p.gamma) == (0.3, 0.1)
    d = q.as_dict()
    assert d["model"] == "as"
    assert d["mode"] == "adaptive"
    assert d["levels"] == 2
    assert d["horizon_s"] == 5.0
