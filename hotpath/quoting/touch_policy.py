"""Touch policy: per side, improve the touch, join it or stay behind it.

The quote model (AS/GLFT/fixed) says how wide we would like to be; on a thin book whose
touch is far wider than that, the question that decides both our PnL and how much we narrow
the market is simpler: on each side, do we step in front of everyone else, stand beside
them, or wait behind them? This answers it from the expected edge of a fill at each price:

    edge(bid at P) = fair − P + rebate − adverse − inventory penalty      (ticks per lot)

with ``fair`` the others' mid pulled toward their microprice and moved by the signal. The
touch is everyone else's (the book minus our orders), so we never improve on ourselves and
the spread cannot collapse onto our own quotes. Prices are integer ticks; a bid is always
below the others' ask and our ask (post-only, never crossing), an ask above. Position limits
stay with ``hotpath.risk``: every order still passes ``check_place``; this policy only stops
adding to a position it already finds large (``Reason.INVENTORY``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from flashmm.book.l2 import L2Book
from flashmm.domain.orders import Order, OrderState
from hotpath.quoting.quoter import Quote


class Choice(Enum):
    IMPROVE = "improve"  # one or more ticks in front of the others' best
    JOIN = "join"  # at the others' best
    BEHIND = "behind"  # behind the others' best
    MODEL = "model"  # no touch to compare with: the quote model's price


class Reason(Enum):
    EDGE = "edge"  # the improved price still earns min_edge_ticks
    EDGE_AT_TOUCH = "edge_at_touch"  # only the touch price earns join_edge_ticks
    NO_EDGE = "no_edge"  # not even the touch earns join_edge_ticks
    NO_ROOM = "no_room"  # no tick between the others' bid and ask (or our other side)
    INVENTORY = "inventory"  # this side adds to a position past inventory_behind_util
    NO_TOUCH = "no_touch"  # the others are missing on a side: both keep the model prices


@dataclass(frozen=True, slots=True)
class TouchPolicyConfig:
    """Edges and offsets in ticks, utilisation as |position notional| / limit."""

    min_edge_ticks: float = 1.5  # expected edge wanted to step in front
    join_edge_ticks: float = 0.5  # expected edge wanted to stand at the touch
    max_improve_ticks: int = 8  # at most this far in front of the others' best
    min_half_spread_ticks: float = 1.5  # never quote closer than this to the fair price
    adverse_ticks: float = 0.5  # expected move against a fill (informed flow)
    microprice_weight: float = 0.5  # 0: others' mid, 1: their microprice
    signal_ticks: float = 2.0  # fair moves by signal·confidence·this
    signal_min_confidence: float = 0.5
    inventory_skew_ticks: float = 3.0  # penalty on the adding side at full utilisation
    inventory_behind_util: float = 0.7  # past this, the adding side only stays behind
    behind_ticks: int = 1  # how far behind the others' best a behind quote stands

    def __post_init__(self) -> None:
        for name in (
            "min_edge_ticks",
            "join_edge_ticks",
            "min_half_spread_ticks",
            "adverse_ticks",
            "signal_ticks",
            "inventory_skew_ticks",
        ):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"policy.{name} must be a finite number >= 0, got {v}")
        if self.max_improve_ticks < 1:
            raise ValueError("policy.max_improve_ticks must be at least 1")
        if self.behind_ticks < 1:
            raise ValueError("policy.behind_ticks must be at least 1")
        for name in ("microprice_weight", "signal_min_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"policy.{name} must be in [0, 1]")
        if not 0.0 < self.inventory_behind_util <= 1.0:
            raise ValueError("policy.inventory_behind_util must be in (0, 1]")


class PolicyInputs(NamedTuple):
    """What the policy sees: the others' touch (book minus our orders) with its sizes, the
    signal, our position and the maker rebate."""

    bid: int  # others' best bid (0 = none)
    ask: int  # others' best ask (0 = none)
    bid_lots: int
    ask_lots: int
    signal: float  # −1..1
    confidence: float  # 0..1
    utilisation: float  # signed: > 0 long, < 0 short; 1 = at the position limit
    rebate_ticks: float = 0.0  # maker rebate per lot in ticks (negative: a maker fee)


class SideDecision(NamedTuple):
    side: int  # +1 bid, −1 ask
    choice: Choice
    reason: Reason
    price: int  # 0: keep the model's price
    edge_ticks: float  # expected edge per lot at that price (nan: not computed)


def fair_price(cfg: TouchPolicyConfig, x: PolicyInputs) -> float:
    """Others' mid, pulled toward their microprice, moved by a confident signal."""
    mid = (x.bid + x.ask) * 0.5
    fair = mid
    size = x.bid_lots + x.ask_lots
    if size > 0:
        micro = (x.bid * x.ask_lots + x.ask * x.bid_lots) / size
        fair += cfg.microprice_weight * (micro - mid)
    if x.confidence >= cfg.signal_min_confidence:
        fair += cfg.signal_ticks * x.signal * x.confidence
    return fair


def decide(cfg: TouchPolicyConfig, x: PolicyInputs) -> tuple[SideDecision, SideDecision]:
    """(bid decision, ask decision). Prices never cross the others' touch nor each other."""
    if not (x.bid and x.ask):
        nan = math.nan
        return (
            SideDecision(1, Choice.MODEL, Reason.NO_TOUCH, 0, nan),
            SideDecision(-1, Choice.MODEL, Reason.NO_TOUCH, 0, nan),
        )
    fair = fair_price(cfg, x)
    bid = _side(cfg, x, fair, 1)
    ask = _side(cfg, x, fair, -1)
    if bid.price >= ask.price:
        # both improved into each other (a very narrow touch): stay one tick apart, giving
        # up the side with less edge; each still strictly inside the others' touch
        if bid.edge_ticks >= ask.edge_ticks:
            ask = _at(cfg, x, fair, -1, bid.price + 1)
        else:
            bid = _at(cfg, x, fair, 1, ask.price - 1)
    return bid, ask


def _edge(cfg: TouchPolicyConfig, x: PolicyInputs, fair: float, side: int, price: int) -> float:
    adding = x.utilisation * side > 0  # this side's fills grow the position
    penalty = cfg.inventory_skew_ticks * abs(x.utilisation) if adding else 0.0
    return side * (fair - price) + x.rebate_ticks - cfg.adverse_ticks - penalty


def _side(cfg: TouchPolicyConfig, x: PolicyInputs, fair: float, side: int) -> SideDecision:
    best, opposite = (x.bid, x.ask) if side > 0 else (x.ask, x.bid)
    behind = best - side * cfg.behind_ticks
    if side * x.utilisation >= cfg.inventory_behind_util:
        edge = _edge(cfg, x, fair, side, behind)
        return SideDecision(side, Choice.BEHIND, Reason.INVENTORY, behind, edge)
    # the most aggressive price in front of the others that stays strictly inside their
    # touch (post-only), keeps min_half_spread_ticks from the fair price and earns min_edge
    for k in range(cfg.max_improve_ticks, 0, -1):
        price = best + side * k
        if side * (opposite - price) <= 0 or side * (fair - price) < cfg.min_half_spread_ticks:
            continue
        edge = _edge(cfg, x, fair, side, price)
        if edge >= cfg.min_edge_ticks:
            return SideDecision(side, Choice.IMPROVE, Reason.EDGE, price, edge)
    edge = _edge(cfg, x, fair, side, best)
    if edge >= cfg.join_edge_ticks:
        reason = Reason.NO_ROOM if side * (opposite - best) <= 1 else Reason.EDGE_AT_TOUCH
        return SideDecision(side, Choice.JOIN, reason, best, edge)
    return SideDecision(
        side, Choice.BEHIND, Reason.NO_EDGE, behind, _edge(cfg, x, fair, side, behind)
    )


def _at(
    cfg: TouchPolicyConfig, x: PolicyInputs, fair: float, side: int, price: int
) -> SideDecision:
    best = x.bid if side > 0 else x.ask
    if price == best:
        choice = Choice.JOIN
    elif (price - best) * side > 0:
        choice = Choice.IMPROVE
    else:
        choice = Choice.BEHIND
    return SideDecision(side, choice, Reason.NO_ROOM, price, _edge(cfg, x, fair, side, price))


def apply(quotes: list[Quote], bid: SideDecision, ask: SideDecision) -> list[Quote]:
    """The model's ladder with each side moved so its first level stands at the decided
    price (deeper levels keep their spacing behind it); a side without a decided price keeps
    the model's prices."""
    first = {1: 0, -1: 0}
    for q in quotes:
        if q.level == 0:
            first[q.side] = q.price
    shift = {
        1: bid.price - first[1] if bid.price and first[1] else 0,
        -1: ask.price - first[-1] if ask.price and first[-1] else 0,
    }
    return [
        q._replace(price=q.price + shift[q.side]) for q in quotes if q.price + shift[q.side] > 0
    ]


def others_best(book: L2Book, live: dict[str, Order]) -> tuple[int, int, int, int]:
    """(bid, ask, bid lots, ask lots) of everyone else: the book's best levels minus our
    resting orders (orders still in flight are not in the book yet)."""
    mine: dict[tuple[int, int], int] = {}
    for o in live.values():
        if o.state is not OrderState.PENDING_NEW:
            key = (int(o.side), o.price)
            mine[key] = mine.get(key, 0) + o.remaining
    out = [0, 0, 0, 0]
    for i, side in ((0, 1), (1, -1)):
        for price, lots in book.depth(side, 10):
            left = lots - mine.get((side, price), 0)
            if left > 0:
                out[i], out[i + 2] = price, left
                break
    return out[0], out[1], out[2], out[3]


class TouchPolicy:
    """The policy in the engine's cycle: decides, moves the ladder, counts its choices."""

    __slots__ = ("cfg", "choices", "last", "reasons")

    def __init__(self, cfg: TouchPolicyConfig) -> None:
        self.cfg = cfg
        self.choices: dict[tuple[int, Choice], int] = {}
        self.reasons: dict[Reason, int] = {}
        self.last: tuple[SideDecision, SideDecision] | None = None

    def quotes(
        self,
        quotes: list[Quote],
        book: L2Book,
        live: dict[str, Order],
        signal: float,
        confidence: float,
        utilisation: float,
        rebate_ticks: float,
    ) -> list[Quote]:
        bid, ask, bid_lots, ask_lots = others_best(book, live)
        x = PolicyInputs(
            bid, ask, bid_lots, ask_lots, signal, confidence, utilisation, rebate_ticks
        )
        decided = decide(self.cfg, x)
        self.last = decided
        for d in decided:
            key = (d.side, d.choice)
            self.choices[key] = self.choices.get(key, 0) + 1
            self.reasons[d.reason] = self.reasons.get(d.reason, 0) + 1
        return apply(quotes, *decided)

    def figures(self) -> dict[str, float]:
        """Share of cycles per choice (both sides together) and reason counts."""
        n = sum(self.choices.values())
        out: dict[str, float] = {}
        for c in Choice:
            k = sum(v for (_, ch), v in self.choices.items() if ch is c)
            out[f"policy_{c.value}_share"] = k / n if n else 0.0
        for r, v in sorted(self.reasons.items(), key=lambda kv: kv[0].value):
            out[f"policy_reason_{r.value}"] = float(v)
        return out
