"""Property tests for the matcher over random place/market/cancel sequences by several owners.

A small reference ledger follows every order we submit; after each operation the exchange's
book, resting orders and trades are checked against it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flashmm.sim.matching import Exchange, Trade

OWNERS = st.integers(0, 3)
SIDES = st.sampled_from([1, -1])

_limit = st.tuples(
    st.just("limit"), OWNERS, SIDES, st.integers(1, 12), st.integers(1, 6), st.booleans()
)
_market = st.tuples(st.just("market"), OWNERS, SIDES, st.integers(1, 15))
_cancel = st.tuples(st.just("cancel"), st.integers(0, 10_000))
OPS = st.lists(st.one_of(_limit, _limit, _market, _cancel), max_size=60)

Op = tuple[Any, ...]
PROPS = settings(max_examples=200, deadline=None)


@dataclass
class Ledger:
    """What was submitted, and what each operation said about it."""

    submitted: dict[int, int] = field(default_factory=lambda: {1: 0, -1: 0})
    cancelled: dict[int, int] = field(default_factory=lambda: {1: 0, -1: 0})
    market_unfilled: dict[int, int] = field(default_factory=lambda: {1: 0, -1: 0})
    refused: int = 0
    # every limit order that got an id: oid -> (owner, side, price, lots)
    limits: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    cancelled_by_oid: dict[int, int] = field(default_factory=dict)
    # per operation: (taker owner, side, limit price or None, trades it caused)
    ops: list[tuple[int, int, int | None, list[Trade]]] = field(default_factory=list)
    oids: list[int] = field(default_factory=list)


def _run(
    ops: list[Op], check_each: Callable[[Exchange], None] | None = None
) -> tuple[Exchange, Ledger]:
    ex = Exchange()
    led = Ledger()
    for op in ops:
        n_before = len(ex.trades)
        if op[0] == "limit":
            _, owner, side, price, lots, post_only = op
            oid, rest = ex.place_limit(
                owner, side, price, lots, tag=f"o{owner}", post_only=post_only
            )
            if oid == 0:
                assert rest == 0
                led.refused += lots
                assert len(ex.trades) == n_before
            else:
                led.submitted[side] += lots
                led.limits[oid] = (owner, side, price, lots)
                led.oids.append(oid)
                led.ops.append((owner, side, price, ex.trades[n_before:]))
                assert 0 <= rest <= lots
                assert rest == (ex.orders[oid].lots if oid in ex.orders else 0)
                assert sum(t.lots for t in ex.trades[n_before:]) == lots - rest
        elif op[0] == "market":
            _, owner, side, lots = op
            filled = ex.market(owner, side, lots, tag=f"o{owner}")
            assert 0 <= filled <= lots
            assert sum(t.lots for t in ex.trades[n_before:]) == filled
            led.submitted[side] += lots
            led.market_unfilled[side] += lots - filled
            led.ops.append((owner, side, None, ex.trades[n_before:]))
        else:
            _, k = op
            oid = led.oids[k % len(led.oids)] if led.oids and k % 5 else 10_000 + k
            resting = ex.orders[oid].lots if oid in ex.orders else 0
            n = ex.cancel(oid)
            assert n == resting
            assert oid not in ex.orders
            assert len(ex.trades) == n_before
            if n:
                side = led.limits[oid][1]
                led.cancelled[side] += n
                led.cancelled_by_oid[oid] = n
        if check_each is not None:
            check_each(ex)
    return ex, led


def _check_book(ex: Exchange) -> None:
    book = ex.book
    # (a) never crossed, and the tracked bests are the true extremes
    assert not book.crossed()
    assert book.best_bid == max(book.bids, default=0)
    assert book.best_ask == min(book.asks, default=0)
    # (b) L2 aggregates equal the live resting orders per level
    agg: dict[int, dict[int, int]] = {1: defaultdict(int), -1: defaultdict(int)}
    for o in ex.orders.values():
        assert o.lots > 0
        agg[o.side][o.price] += o.lots
    assert book.bids == dict(agg[1])
    assert book.asks == dict(agg[-1])


@PROPS
@given(OPS)
def test_book_never_crossed_and_aggregates_match_orders(ops: list[Op]) -> None:
    _run(ops, check_each=_check_book)


@PROPS
@given(OPS)
def test_quantity_conservation_per_side(ops: list[Op]) -> None:
    ex, led = _run(ops)
    for side in (1, -1):
        resting = sum(o.lots for o in ex.orders.values() if o.side == side)
        traded = sum(t.lots for t in ex.trades if t.aggressor == side)  # as taker
        traded += sum(t.lots for t in ex.trades if t.aggressor == -side)  # as maker
        total = resting + traded + led.cancelled[side] + led.market_unfilled[side]
        assert led.submitted[side] == total
    # per limit order: lots = resting + filled (as taker or maker) + cancelled
    filled: dict[int, int] = defaultdict(int)
    for t in ex.trades:
        filled[t.maker_oid] += t.lots
        filled[t.taker_oid] += t.lots
    for oid, (_, _, _, lots) in led.limits.items():
        resting = ex.orders[oid].lots if oid in ex.orders else 0
        assert lots == resting + filled[oid] + led.cancelled_by_oid.get(oid, 0)


@PROPS
@given(OPS)
def test_cash_and_position_conservation(ops: list[Op]) -> None:
    ex, led = _run(ops)
    base: dict[int, int] = defaultdict(int)
    cash: dict[int, int] = defaultdict(int)
    for t in ex.trades:
        # the taker moves by aggressor * lots, the maker the opposite way, at the maker's price
        base[t.taker_owner] += t.aggressor * t.lots
        base[t.maker_owner] -= t.aggressor * t.lots
        cash[t.taker_owner] -= t.aggressor * t.lots * t.price
        cash[t.maker_owner] += t.aggressor * t.lots * t.price
    assert sum(base.values()) == 0
    assert sum(cash.values()) == 0
    # each owner's position also follows from its own orders' fills, independently of trades'
    # owner fields: limit fills = lots - resting - cancelled; market fills = what market returned
    expected: dict[int, int] = defaultdict(int)
    for oid, (owner, side, _, lots) in led.limits.items():
        resting = ex.orders[oid].lots if oid in ex.orders else 0
        expected[owner] += side * (lots - resting - led.cancelled_by_oid.get(oid, 0))
    for owner, side, limit, trades in led.ops:
        if limit is None:
            expected[owner] += side * sum(t.lots for t in trades)
    for owner in set(base) | set(expected):
        assert base[owner] == expected[owner], owner


@PROPS
@given(OPS)
def test_trade_prices_respect_limits_and_maker_prices(ops: list[Op]) -> None:
    _, led = _run(ops)
    left = {oid: spec[3] for oid, spec in led.limits.items()}
    for owner, side, limit, trades in led.ops:
        prev = None
        for t in trades:
            assert t.aggressor == side
            assert t.taker_owner == owner
            assert t.taker_tag == f"o{owner}"
            assert t.lots > 0
            if limit is not None:
                assert (t.price <= limit) if side > 0 else (t.price >= limit)
            m_owner, m_side, m_price, _ = led.limits[t.maker_oid]
            assert t.price == m_price  # executes at the maker's resting price
            assert m_side == -side
            assert t.maker_owner == m_owner
            assert t.maker_tag == f"o{m_owner}"
            left[t.maker_oid] -= t.lots
            assert t.maker_left == left[t.maker_oid] >= 0
            if t.taker_oid in left:
                left[t.taker_oid] -= t.lots
            assert t.maker_oid < t.taker_oid  # the maker was there first
            # within one sweep prices only get worse for the taker
            if prev is not None:
                assert (t.price >= prev) if side > 0 else (t.price <= prev)
            prev = t.price


@PROPS
@given(OPS)
def test_time_priority_no_older_order_left_behind(ops: list[Op]) -> None:
    # whenever a maker trades, every older order at its price on its side must already be
    # gone (filled or cancelled): checked against the orders still resting after that op
    ex = Exchange()
    for op in ops:
        n_before = len(ex.trades)
        if op[0] == "limit":
            _, owner, side, price, lots, post_only = op
            ex.place_limit(owner, side, price, lots, post_only=post_only)
        elif op[0] == "market":
            _, owner, side, lots = op
            ex.market(owner, side, lots)
        else:
            oids = sorted(ex.orders)
            if oids:
                ex.cancel(oids[op[1] % len(oids)])
        for t in ex.trades[n_before:]:
            side = -t.aggressor
            for oid, o in ex.orders.items():
                if o.side == side and o.price == t.price:
                    assert oid >= t.maker_oid
