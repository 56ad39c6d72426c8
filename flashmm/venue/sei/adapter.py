"""The Sei dex venue: one signed transaction per batch over REST, events over the
Tendermint WebSocket, implementing the hot path's ``Venue`` interface.

Safety rules:
* the account sequence is tracked locally; a sequence mismatch re-reads the account and
  rebuilds the transaction once;
* a broadcast whose outcome is unknown (timeout) is never rebuilt with new content: the
  same bytes are re-sent until the chain's sequence shows it landed, and every order's
  client id rides in ``Order.data`` so the venue never places one twice;
* a cancel for an order whose chain id is not known yet waits for the placement event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from flashmm.venue.base import (
    BookSnapshot,
    CancelOrder,
    CancelRejected,
    Heartbeat,
    OpenOrder,
    OrderBatch,
    OrderRejected,
    PlaceOrder,
    VenueEvent,
)
from flashmm.venue.feed import FeedClient, FeedConfig
from flashmm.venue.sei import events
from flashmm.venue.sei.chain import ChainAnswerError, SeiChain
from flashmm.venue.sei.gas import GasConfig, GasEstimator, Urgency
from flashmm.venue.sei.rest import RestError
from flashmm.venue.sei.tx import (
    ChainCancel,
    MarketRef,
    build_tx,
    cancel_msg,
    place_msg,
)
from flashmm.venue.sei.wallet import Wallet

log = logging.getLogger(__name__)
WRONG_SEQUENCE, ALREADY_IN_CACHE, OUT_OF_GAS = 32, 19, 11


@dataclass(frozen=True, slots=True)
class SeiVenueConfig:
    rest_urls: tuple[str, ...]
    ws_urls: tuple[str, ...]
    chain_id: str
    market: MarketRef
    gas: GasConfig = field(default_factory=GasConfig)
    broadcast_timeout_s: float = 2.0
    feed_stale_after_s: float = 1.5


def _queries(address: str) -> tuple[str, ...]:
    return (
        "tm.event='NewBlock'",
        f"tm.event='Tx' AND message.sender='{address}'",
        # our resting orders filled by someone else's transaction
        f"tm.event='Tx' AND dex_order_filled.account='{address}'",
    )


class SeiVenue:
    def __init__(self, cfg: SeiVenueConfig, wallet: Wallet) -> None:
        self.cfg = cfg
        self.wallet = wallet
        self.market = cfg.market
        self.inst = cfg.market.instrument
        self.chain = SeiChain.connect(cfg.rest_urls, cfg.broadcast_timeout_s)
        self.gas = GasEstimator(cfg.gas)
        self.feed = FeedClient(
            FeedConfig(
                endpoints=cfg.ws_urls,
                queries=_queries(wallet.address),
                stale_after_s=cfg.feed_stale_after_s,
            ),
            self._on_event,
        )
        self._queue: asyncio.Queue[VenueEvent] = asyncio.Queue()
        self._ids = events.OrderIds()
        self._known = self._ids.known  # the same dicts: cleared in place, never replaced
        self._by_order_id = self._ids.by_order_id
        self._waiting_cancels: dict[str, CancelOrder] = {}
        self._seen_txs: dict[str, None] = {}
        self._unsure: tuple[bytes, int] | None = None  # (tx bytes, its sequence)
        self._lock = asyncio.Lock()
        self._feed_task: asyncio.Task[None] | None = None
        self._seen_connects = 0
        self.account_number = 0
        self.sequence = 0
        self.txs_sent = 0
        self.tx_rejects = 0
        self.sequence_recoveries = 0
        self.urgency = Urgency.NORMAL

    # --- Venue protocol -----------------------------------------------------------------
    async def connect(self) -> None:
        await self._read_account()
        if self._feed_task is None:
            self._feed_task = asyncio.create_task(self.feed.run(), name="sei-feed")
        try:
            await asyncio.wait_for(self.feed.connected.wait(), 5.0)
        except TimeoutError:
            log.warning("feed not connected yet; quoting waits for market data")

    async def close(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            await asyncio.gather(self._feed_task, return_exceptions=True)
            self._feed_task = None
        await self.chain.close()

    async def events(self) -> AsyncIterator[VenueEvent]:
        while True:
            yield await self._queue.get()

    async def snapshot(self) -> BookSnapshot:
        book = await self.chain.book(self.market.contract)
        return BookSnapshot(
            book.seq,
            tuple((self._ticks(p), self._lots(q)) for p, q in book.bids),
            tuple((self._ticks(p), self._lots(q)) for p, q in book.asks),
            time.monotonic_ns(),
        )

    async def open_orders(self) -> list[OpenOrder]:
        orders = await self.chain.open_orders(self.market.contract, self.wallet.address)
        out = []
        for o in orders:
            if o.cid is None:  # not placed by us: no client id to take it over by
                raise ChainAnswerError("open orders (an order without a client id)", 200, o)
            price = self._ticks(o.price)
            out.append(OpenOrder(o.cid, o.order_id, o.side, price, self._lots(o.quantity)))
            self._known.setdefault(o.cid, events.Known(o.side, price))
            self._known[o.cid].order_id = o.order_id
            self._by_order_id[o.order_id] = o.cid
        return out

    async def submit(self, batch: OrderBatch) -> None:
        async with self._lock:
            await self._resolve_unsure()
            if self._unsure is not None:
                # the last broadcast's fate is unknown and the venue is unreachable: new
                # orders cannot go out now; say so at once rather than leave them in flight
                now = time.monotonic_ns()
                for p in batch.places:
                    self._queue.put_nowait(OrderRejected(p.client_id, "venue unreachable", now))
                for c in batch.cancels:
                    self._waiting_cancels[c.client_id] = c
                return
            for c in batch.cancels:
                self._waiting_cancels[c.client_id] = c
            cancels = self._ready_cancels()
            places = list(batch.places)
            if not cancels and not places:
                return
            for p in places:
                self._known[p.client_id] = events.Known(p.side, p.price)
            await self._send(cancels, places)

    async def switch_wallet(self, wallet: Wallet) -> None:
        """Sign with another key from the next batch on (the caller has cancelled the old
        key's orders first); events follow the new address."""
        async with self._lock:
            self.wallet = wallet
            self._known.clear()
            self._by_order_id.clear()
            self._waiting_cancels.clear()
            self._unsure = None
            await self._read_account()
            self.feed.cfg = replace(self.feed.cfg, queries=_queries(wallet.address))
            if self._feed_task is not None:
                self._feed_task.cancel()
                await asyncio.gather(self._feed_task, return_exceptions=True)
                self._feed_task = asyncio.create_task(self.feed.run(), name="sei-feed")

    # --- sending ------------------------------------------------------------------------
    def _ready_cancels(self) -> list[ChainCancel]:
        out = []
        for cid in list(self._waiting_cancels):
            k = self._known.get(cid)
            if k is None:  # unknown to us and to the chain: nothing to cancel
                del self._waiting_cancels[cid]
                self._queue.put_nowait(CancelRejected(cid, "unknown order", time.monotonic_ns()))
            elif k.order_id is not None:
                out.append(ChainCancel(k.order_id, k.side, k.price))
                del self._waiting_cancels[cid]
        return out

    async def _send(self, cancels: list[ChainCancel], places: list[PlaceOrder]) -> None:
        addr = self.wallet.address
        msgs = []
        if cancels:
            msgs.append(cancel_msg(addr, self.market, cancels))
        if places:
            msgs.append(place_msg(addr, self.market, places))
        urgency = (
            self.urgency
            if places
            else max(self.urgency, Urgency.CANCEL, key=lambda u: self.cfg.gas.multiplier(u))
        )
        for attempt in range(2):
            gas_limit = self.gas.gas_limit(len(places), len(cancels))
            tx = build_tx(
                self.wallet,
                msgs,
                chain_id=self.cfg.chain_id,
                account_number=self.account_number,
                sequence=self.sequence,
                gas_limit=gas_limit,
                fee_amount=self.gas.fee(gas_limit, urgency),
            )
            code, log_text = await self._broadcast(tx, self.sequence)
            if code in (0, ALREADY_IN_CACHE):
                self.sequence += 1
                self.txs_sent += 1
                return
            if code is None:  # outcome unknown: resolve before anything else is sent
                return
            if code == WRONG_SEQUENCE and attempt == 0:
                self.sequence_recoveries += 1
                await self._read_account()
                continue
            if code == OUT_OF_GAS and attempt == 0:
                self.gas.out_of_gas()
                continue
            break
        self.tx_rejects += 1
        log.warning("transaction rejected: code %s: %s", code, log_text)
        now = time.monotonic_ns()
        for p in places:
            self._known.pop(p.client_id, None)
            self._queue.put_nowait(OrderRejected(p.client_id, f"tx code {code}: {log_text}", now))
        for c in cancels:  # still resting: try again with the next batch
            cid = self._by_order_id.get(c.order_id)
            if cid is not None:
                self._waiting_cancels[cid] = CancelOrder(cid, c.order_id)

    async def _broadcast(self, tx: bytes, sequence: int) -> tuple[int | None, str]:
        try:
            answer = await self.chain.broadcast(tx)
            return answer.code, answer.raw_log
        except RestError as e:  # unreachable, or an answer without a tx outcome
            log.warning("broadcast outcome unknown (%s); will resolve before sending more", e)
            self._unsure = (tx, sequence)
            return None, str(e)

    async def _resolve_unsure(self) -> None:
        """After an unknown outcome: if the chain's sequence moved past it, it landed;
        otherwise send exactly the same bytes again."""
        if self._unsure is None:
            return
        tx, seq = self._unsure
        try:
            await self._read_account()
        except RestError:
            return  # still unreachable; keep waiting
        if self.sequence > seq:
            self._unsure = None
            return
        code, _ = await self._broadcast(tx, seq)
        if code is not None:
            self._unsure = None
            if code in (0, ALREADY_IN_CACHE):
                self.sequence = seq + 1

    async def _read_account(self) -> None:
        acct = await self.chain.account(self.wallet.address)
        self.account_number = acct.number
        self.sequence = acct.sequence

    # --- events -------------------------------------------------------------------------
    def _ticks(self, price: Decimal | str) -> int:
        return events.ticks(self.inst, price)

    def _lots(self, qty: Decimal | str) -> int:
        return events.lots(self.inst, qty)

    def _on_event(self, result: dict[str, Any]) -> None:
        data = result["data"]
        now = self.feed.frame_ns or time.monotonic_ns()  # when the frame arrived
        if self.feed.connects != self._seen_connects:  # new connection: book must resync
            self._seen_connects = self.feed.connects
            asyncio.get_running_loop().create_task(self._push_snapshot())
        kind = data["type"]
        out: list[VenueEvent] = []
        if kind == "tendermint/event/NewBlock":
            v = data["value"]
            for e in v["result_begin_block"]["events"] + v["result_end_block"]["events"]:
                self._apply(e, now, out)
            out.append(Heartbeat(now))  # only once the whole block parsed
        elif kind == "tendermint/event/Tx":
            # a tx can match both subscriptions (ours, and one touching our orders): once
            txhash = (result.get("events") or {}).get("tx.hash", [""])[0]
            if txhash:
                if txhash in self._seen_txs:
                    return
                self._seen_txs[txhash] = None
                if len(self._seen_txs) > 4096:
                    del self._seen_txs[next(iter(self._seen_txs))]
            res = data["value"]["TxResult"]["result"]
            for e in res["events"]:
                self._apply(e, now, out)
            if "gas_used" in res and any(
                a["key"] == "sender" and a["value"] == self.wallet.address
                for e in res["events"]
                if e["type"] == "message"
                for a in e["attributes"]
            ):
                self._observe_gas(res)
        else:
            raise ValueError(f"unexpected event type {kind!r}")
        for ev in out:
            self._queue.put_nowait(ev)

    def _observe_gas(self, res: dict[str, Any]) -> None:
        items = sum(
            1
            for e in res["events"]
            if e["type"].startswith(
                (
                    "dex_order_placed",
                    "dex_order_rejected",
                    "dex_order_cancelled",
                    "dex_cancel_rejected",
                )
            )
        )
        self.gas.observe(items, int(res["gas_used"]))

    async def _push_snapshot(self) -> None:
        try:
            self._queue.put_nowait(await self.snapshot())
        except RestError as e:
            log.warning("snapshot after reconnect failed: %s", e)

    def _apply(self, e: dict[str, Any], now: int, out: list[VenueEvent]) -> None:
        accepted = events.apply(
            e, now, self.inst, self.market.contract, self.wallet.address, self._ids, out
        )
        if accepted is not None and accepted in self._waiting_cancels:
            asyncio.get_running_loop().create_task(self.submit(OrderBatch()))

    def _forget(self, cid: str) -> None:
        self._ids.forget(cid)
