"""Chain events (Tendermint block/tx event attributes of the Sei dex module) turned into the
hot path's venue events, with the bookkeeping that maps chain order ids to our client ids.

Only this market's contract counts; order events count only for our account. Prices and
quantities arrive as decimal strings and leave as integer ticks and lots."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import Fill, Liquidity, Side
from flashmm.venue.base import (
    BookDelta,
    CancelRejected,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    TradePrint,
    VenueEvent,
)


@dataclass(slots=True)
class Known:
    """An order of ours: its side and price, and its chain id once placed."""

    side: Side
    price: int
    order_id: int | None = None


@dataclass(slots=True)
class OrderIds:
    """Our orders by client id, and chain order id → client id."""

    known: dict[str, Known] = field(default_factory=dict)
    by_order_id: dict[int, str] = field(default_factory=dict)

    def placed(self, cid: str, side: Side, price: int, order_id: int) -> None:
        k = self.known.setdefault(cid, Known(side, price))
        k.order_id = order_id
        self.by_order_id[order_id] = cid

    def forget(self, cid: str) -> None:
        k = self.known.pop(cid, None)
        if k is not None and k.order_id is not None:
            self.by_order_id.pop(k.order_id, None)

    def clear(self) -> None:
        self.known.clear()
        self.by_order_id.clear()


def ticks(inst: Instrument, price: Decimal | str) -> int:
    return int(Decimal(price) / inst.tick_size)


def lots(inst: Instrument, qty: Decimal | str) -> int:
    return int(Decimal(qty) / inst.lot_size)


def apply(
    e: dict[str, Any],
    now: int,
    inst: Instrument,
    contract: str,
    account: str,
    ids: OrderIds,
    out: list[VenueEvent],
) -> str | None:
    """Append the venue events one chain event means; returns the client id of an order of
    ours that the chain just accepted (a cancel may be waiting for its chain id)."""
    a = {x["key"]: x["value"] for x in e["attributes"]}
    if a.get("contract") != contract:
        return None
    kind = e["type"]
    if kind == "dex_book":
        levels = tuple(
            (int(s), ticks(inst, p), lots(inst, q)) for s, p, q in json.loads(a["levels"])
        )
        out.append(BookDelta(int(a["seq"]), levels, now))
        return None
    if kind == "dex_trade":
        side = Side.BUY if a["aggressor"] == "buy" else Side.SELL
        out.append(TradePrint(ticks(inst, a["price"]), lots(inst, a["quantity"]), side, now))
        return None
    if a.get("account") != account:
        return None
    if kind == "dex_order_placed":
        cid, oid = str(a["client_id"]), int(a["order_id"])
        ids.placed(cid, Side[a["side"].upper()], ticks(inst, a["price"]), oid)
        out.append(OrderAccepted(cid, oid, now))
        return cid
    if kind == "dex_order_rejected":
        ids.known.pop(a["client_id"], None)
        out.append(OrderRejected(a["client_id"], a["reason"], now))
    elif kind == "dex_order_cancelled":
        ids.forget(a["client_id"])
        out.append(OrderCancelled(a["client_id"], lots(inst, a["quantity"]), now))
    elif kind == "dex_cancel_rejected":
        known = ids.by_order_id.get(int(a["order_id"]))
        if known is not None:
            ids.forget(known)
            out.append(CancelRejected(known, a["reason"], now))
    elif kind == "dex_order_filled":
        remaining = lots(inst, a["remaining"])
        fill = Fill(
            a["fill_id"],
            a["client_id"],
            Side[a["side"].upper()],
            ticks(inst, a["price"]),
            lots(inst, a["quantity"]),
            float(a["fee"]),
            Liquidity(a["liquidity"]),
            now,
        )
        if remaining == 0:
            ids.forget(a["client_id"])
        out.append(OrderFilled(fill, remaining))
    return None
