"""Builds one cycle's desired quotes: model offset/spread, skews, widening, ladder, rounding.

Everything is in ticks. The result is a short list of ``Quote`` that never crosses the
book (post-only) and never has a bid at or above an ask.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from hotpath.quoting.models import as_quote, glft_quote
from hotpath.quoting.params import MODE_SCALES, Mode, QuoteModel, QuoteParams


class Quote(NamedTuple):
    side: int  # +1 bid, -1 ask
    level: int
    price: int
    lots: int


class QuoteInputs(NamedTuple):
    """What a cycle knows: the book touch, estimates, inventory and the external signal."""

    best_bid: int
    best_ask: int
    mid: float
    sigma: float
    A: float
    k: float
    inventory_lots: int
    utilisation: float  # |position notional| / limit, 0..1+
    signal: float  # −1..1 expected direction
    confidence: float  # 0..1
    spread_mult: float = 1.0  # ≥ 1: extra widening from a regime advisor


def pick_mode(p: QuoteParams, sigma: float, utilisation: float) -> Mode:
    """Adaptive mode: conservative in high volatility or heavy inventory, aggressive when calm."""
    if p.mode is not Mode.ADAPTIVE:
        return p.mode
    if sigma > 1.5 * p.vol_ref or utilisation > 0.6:
        return Mode.CONSERVATIVE
    if sigma < 0.8 * p.vol_ref and utilisation < 0.3:
        return Mode.AGGRESSIVE
    return Mode.ADAPTIVE


def build_quotes(p: QuoteParams, x: QuoteInputs, lot_notional_per_tick: float) -> list[Quote]:
    """Desired ladder for this cycle (empty if the book has no mid)."""
    if x.mid <= 0 or not (x.best_bid and x.best_ask):
        return []
    if p.model is QuoteModel.FIXED:
        return fixed_quotes(p, x, lot_notional_per_tick)
    mode = pick_mode(p, x.sigma, x.utilisation)
    g_mult, s_mult, z_mult = MODE_SCALES.get(mode, (1.0, 1.0, 1.0))
    gamma = p.gamma * g_mult
    if p.order_lots:
        base_lots = max(1, int(p.order_lots * z_mult))
    else:
        base_lots = max(1, int(p.order_notional * z_mult / (x.mid * lot_notional_per_tick)))
    q = x.inventory_lots / base_lots
    if p.model is QuoteModel.AS:
        offset, half = as_quote(q, x.sigma, gamma, x.k, p.horizon_s)
    else:
        offset, half = glft_quote(q, x.sigma, gamma, x.k, x.A)
    offset *= p.inventory_skew_mult
    if x.confidence >= p.signal_min_confidence:
        offset += p.signal_skew_ticks * x.signal * x.confidence
    widen = (1.0 + p.vol_widen * max(0.0, x.sigma / p.vol_ref - 1.0)) * max(1.0, x.spread_mult)
    half = min(max(half * s_mult * widen, p.min_half_spread_ticks), p.max_half_spread_ticks)
    centre = x.mid + offset
    bid0 = math.floor(centre - half)
    ask0 = math.ceil(centre + half)
    # post-only: never at or through the opposite touch
    bid0 = min(bid0, x.best_ask - 1)
    ask0 = max(ask0, x.best_bid + 1)
    if bid0 >= ask0:
        bid0 = ask0 - 1
    out: list[Quote] = []
    lots = float(base_lots)
    for level in range(p.levels):
        n = max(1, int(lots))
        step = level * p.level_spacing_ticks
        if bid0 - step > 0:
            out.append(Quote(1, level, bid0 - step, n))
        out.append(Quote(-1, level, ask0 + step, n))
        lots *= p.size_decay
    return out


def fixed_quotes(p: QuoteParams, x: QuoteInputs, lot_notional_per_tick: float) -> list[Quote]:
    """The ``fixed`` baseline: bid = ⌊mid − h⌋, ask = ⌈mid + h⌉ (h = ``min_half_spread_ticks``),
    never inside the touch, ``levels`` levels of one constant size."""
    h = p.min_half_spread_ticks
    bid0 = min(math.floor(x.mid - h), x.best_bid)
    ask0 = max(math.ceil(x.mid + h), x.best_ask)
    n = p.order_lots or max(1, int(p.order_notional / (x.mid * lot_notional_per_tick)))
    out: list[Quote] = []
    for level in range(p.levels):
        step = level * p.level_spacing_ticks
        if bid0 - step > 0:
            out.append(Quote(1, level, bid0 - step, n))
        out.append(Quote(-1, level, ask0 + step, n))
    return out
