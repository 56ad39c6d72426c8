"""One dex market on the localnet: our accounts' orders and the seeded background market
share a price-time-priority matcher; fills settle into bank balances with maker/taker fees.

Events are ABCI-style ``{"type", "attributes"}`` dicts with decimal strings for prices and
quantities (as the chain would emit them), produced in the order things happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flashmm.domain.orders import Side
from flashmm.localnet.ante import Account
from flashmm.localnet.config import MICRO, MarketSpec
from flashmm.sim.market import BACKGROUND, SimMarket
from flashmm.sim.matching import Trade

Event = dict[str, Any]


def event(kind: str, **attrs: object) -> Event:
    return {
        "type": kind,
        "attributes": [{"key": k, "value": str(v), "index": True} for k, v in attrs.items()],
    }


@dataclass(slots=True)
class ChainOrder:
    order_id: int
    account: Account
    side: Side
    price: int
    lots: int  # remaining
    client_id: str


class DexMarket:
    """The book of one contract and the orders our accounts rest in it."""

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.inst = spec.instrument
        self.sim = SimMarket(spec.market, record_deltas=True)
        self.exchange = self.sim.exchange
        self.exchange.deltas.clear()
        self.book_seq = 0
        self.orders: dict[int, ChainOrder] = {}  # matcher order id -> our order
        self.by_client: dict[tuple[str, str], int] = {}  # (address, client id) -> order id
        self.seen_clients: set[tuple[str, str]] = set()
        self._fill_no = 0
        self.height = 0  # the block being built: fill ids are unique per (height, number)

    # --- prices -------------------------------------------------------------------------
    def px(self, ticks: int) -> str:
        return str(self.inst.ticks_to_price(ticks))

    def qty(self, lots: int) -> str:
        return str(self.inst.lots_to_size(lots))

    def begin_block(self, height: int) -> None:
        """Fill ids are (contract, height, number in block); the height is persisted, so
        they stay unique across node restarts."""
        self.height = height
        self._fill_no = 0

    # --- background ---------------------------------------------------------------------
    def advance(self, t: float, accounts_by_number: dict[int, Account]) -> list[Event]:
        """Run the background market to ``t``; settle fills against our resting orders."""
        out: list[Event] = []
        sim = self.sim
        while sim.next_time <= t:
            sim.step()
            if self.exchange.trades:
                out.extend(self._settle(sim.take_trades(), accounts_by_number))
        sim.run_until(t)
        return out

    # --- our orders ---------------------------------------------------------------------
    def place(
        self,
        acct: Account,
        side: Side,
        price: int,
        lots: int,
        client_id: str,
        post_only: bool,
        accounts_by_number: dict[int, Account],
    ) -> list[Event]:
        c = self.spec.contract
        key = (acct.address, client_id)
        if key in self.seen_clients:  # idempotent: a client id is placed at most once
            return [
                event(
                    "dex_order_rejected",
                    contract=c,
                    account=acct.address,
                    client_id=client_id,
                    reason="duplicate client order id",
                )
            ]
        self.seen_clients.add(key)
        reason = self._funds_problem(acct, side, price, lots)
        if reason is None and post_only and self.exchange.would_cross(int(side), price):
            reason = "post-only order would cross"
        if reason is not None:
            return [
                event(
                    "dex_order_rejected",
                    contract=c,
                    account=acct.address,
                    client_id=client_id,
                    reason=reason,
                )
            ]
        oid, resting = self.exchange.place_limit(acct.number, int(side), price, lots, tag=client_id)
        out = [
            event(
                "dex_order_placed",
                contract=c,
                account=acct.address,
                order_id=oid,
                client_id=client_id,
                side=side.name.lower(),
                price=self.px(price),
                quantity=self.qty(lots),
            )
        ]
        if resting:
            self.orders[oid] = ChainOrder(oid, acct, side, price, resting, client_id)
            self.by_client[key] = oid
        if self.exchange.trades:
            out.extend(
                self._settle(
                    self.sim.take_trades(),
                    accounts_by_number,
                    taker=(acct, oid, side, client_id, lots),
                )
            )
        return out

    def cancel(
        self, acct: Account, order_id: int, side: Side | None = None, price: int | None = None
    ) -> list[Event]:
        """Cancel by id; the cancellation's direction and price must match the order's."""
        c = self.spec.contract
        o = self.orders.get(order_id)
        if (
            o is None
            or o.account is not acct
            or (side is not None and o.side is not side)
            or (price is not None and o.price != price)
        ):
            return [
                event(
                    "dex_cancel_rejected",
                    contract=c,
                    account=acct.address,
                    order_id=order_id,
                    reason="order not found",
                )
            ]
        left = self.exchange.cancel(order_id)
        self._forget(o)
        return [
            event(
                "dex_order_cancelled",
                contract=c,
                account=acct.address,
                order_id=order_id,
                client_id=o.client_id,
                quantity=self.qty(left),
            )
        ]

    def cancel_all(self) -> None:
        """Drop every resting order of ours (used when a node restarts without its book)."""
        for oid in list(self.orders):
            self.exchange.cancel(oid)
            self._forget(self.orders[oid])

    def _forget(self, o: ChainOrder) -> None:
        self.orders.pop(o.order_id, None)
        self.by_client.pop((o.account.address, o.client_id), None)

    def open_orders(self, address: str) -> list[ChainOrder]:
        return [o for o in self.orders.values() if o.account.address == address]

    def reserved(self, acct: Account) -> dict[str, int]:
        """Micro-units the account's open orders in this market need, by denom."""
        s = self.spec
        out = {s.price_denom: 0, s.asset_denom: 0}
        for o in self.orders.values():
            if o.account is acct:
                if o.side is Side.BUY:
                    out[s.price_denom] += o.price * o.lots * s.quote_micro_per_tick_lot
                else:
                    out[s.asset_denom] += o.lots * s.base_micro_per_lot
        return out

    def _funds_problem(self, acct: Account, side: Side, price: int, lots: int) -> str | None:
        """Balance must cover this order plus what the account's open orders already need."""
        s = self.spec
        need_quote = need_base = 0
        for o in self.orders.values():
            if o.account is acct:
                if o.side is Side.BUY:
                    need_quote += o.price * o.lots * s.quote_micro_per_tick_lot
                else:
                    need_base += o.lots * s.base_micro_per_lot
        if side is Side.BUY:
            notional = price * lots * s.quote_micro_per_tick_lot
            # a buy may execute as taker: reserve the taker fee too
            fee = int(
                (
                    Decimal(notional) * max(self.inst.taker_fee_bps, Decimal(0)) / 10_000
                ).to_integral_value(rounding="ROUND_CEILING")
            )
            need = need_quote + notional + fee
            if acct.balances.get(s.price_denom, 0) < need:
                return f"insufficient {s.price_denom} for open buy orders"
        else:
            need = need_base + lots * s.base_micro_per_lot
            if acct.balances.get(s.asset_denom, 0) < need:
                return f"insufficient {s.asset_denom} for open sell orders"
        return None

    # --- settlement ---------------------------------------------------------------------
    def _settle(
        self,
        trades: list[Trade],
        accounts_by_number: dict[int, Account],
        taker: tuple[Account, int, Side, str, int] | None = None,
    ) -> list[Event]:
        s = self.spec
        c = s.contract
        out: list[Event] = []
        taken = 0  # the taker's lots filled so far in this sweep
        for tr in trades:
            out.append(
                event(
                    "dex_trade",
                    contract=c,
                    price=self.px(tr.price),
                    quantity=self.qty(tr.lots),
                    aggressor="buy" if tr.aggressor > 0 else "sell",
                )
            )
            if tr.maker_owner != BACKGROUND:
                acct = accounts_by_number[tr.maker_owner]
                out.append(
                    self._fill(
                        acct,
                        tr.maker_oid,
                        Side(-tr.aggressor),
                        tr.price,
                        tr.lots,
                        tr.maker_left,
                        tr.maker_tag,
                        maker=True,
                    )
                )
                if tr.maker_left == 0 and tr.maker_oid in self.orders:
                    self._forget(self.orders[tr.maker_oid])
                elif tr.maker_oid in self.orders:
                    self.orders[tr.maker_oid].lots = tr.maker_left
            if taker is not None and tr.taker_owner == taker[0].number:
                acct, oid, side, cid, lots = taker
                taken += tr.lots
                out.append(
                    self._fill(acct, oid, side, tr.price, tr.lots, lots - taken, cid, maker=False)
                )
        return out

    def _fill(
        self,
        acct: Account,
        order_id: int,
        side: Side,
        price: int,
        lots: int,
        remaining: int,
        client_id: str,
        maker: bool,
    ) -> Event:
        s = self.spec
        quote = price * lots * s.quote_micro_per_tick_lot
        base = lots * s.base_micro_per_lot
        bps = self.inst.maker_fee_bps if maker else self.inst.taker_fee_bps
        fee = int((Decimal(quote) * bps / 10_000).to_integral_value())
        b = acct.balances
        b[s.asset_denom] = b.get(s.asset_denom, 0) + base * int(side)
        b[s.price_denom] = b.get(s.price_denom, 0) - quote * int(side) - fee
        self._fill_no += 1
        return event(
            "dex_order_filled",
            contract=s.contract,
            account=acct.address,
            order_id=order_id,
            client_id=client_id,
            fill_id=f"{s.contract[-8:]}-{self.height}-{self._fill_no}",
            side=side.name.lower(),
            price=self.px(price),
            quantity=self.qty(lots),
            remaining=self.qty(remaining),
            fee=str(Decimal(fee) / MICRO),
            liquidity="maker" if maker else "taker",
        )

    # --- book stream --------------------------------------------------------------------
    def book_event(self) -> Event | None:
        """The block's net level changes (last value per level), with the next sequence."""
        deltas = self.exchange.deltas
        if not deltas:
            return None
        last: dict[tuple[int, int], int] = {}
        for side, price, lots in deltas:
            last[(side, price)] = lots
        deltas.clear()
        self.book_seq += 1
        levels = [[side, self.px(p), self.qty(q)] for (side, p), q in last.items()]
        import json

        return event(
            "dex_book",
            contract=self.spec.contract,
            seq=self.book_seq,
            levels=json.dumps(levels, separators=(",", ":")),
        )

    def snapshot(self) -> dict[str, Any]:
        bids, asks = self.exchange.book.snapshot()
        return {
            "contract": self.spec.contract,
            "seq": self.book_seq,
            "bids": [[self.px(p), self.qty(q)] for p, q in bids],
            "asks": [[self.px(p), self.qty(q)] for p, q in asks],
        }
