"""Faults between the hot path and the localnet: a node killed and restarted, a feed
endpoint that dies, a sequence stolen by another signer, malformed and oversized WebSocket
frames (both directions), and transactions the chain refuses.

Everything runs on loopback with OS-chosen ports; the kill -9 test runs the node as a child
process (``python -m cli localnet``) and restarts it on the same ports and state file.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from flashmm.domain.orders import Side
from flashmm.localnet.config import GenesisAccount
from flashmm.localnet.rpc import MAX_FRAME
from flashmm.localnet.server import Localnet
from flashmm.venue.base import (
    BookDelta,
    BookSnapshot,
    Heartbeat,
    OrderAccepted,
    PlaceOrder,
    TradePrint,
)
from flashmm.venue.sei.gas import GasConfig
from flashmm.venue.sei.tx import ChainCancel, MarketRef, build_tx, cancel_msg, place_msg
from hotpath.risk import DenyReason, TradingState
from tests.integration.localnet_helpers import (
    BLOCK_S,
    CHAIN_ID,
    CHILD_ACCOUNT,
    SEI,
    BlockRecorder,
    NodeProcess,
    Rest,
    Running,
    TapSeiVenue,
    TcpProxy,
    atom_spec,
    bounded,
    default_genesis,
    expected_deltas,
    freeze_markets,
    hot_path,
    ledger,
    localnet,
    localnet_cfg,
    order_cid,
    running,
    sei_spec,
    send_tx,
    urls,
    venue_for,
    wait_until,
    wallet,
)

STALE = DenyReason.STALE_MARKET_DATA


def _fast_breakers(venue: TapSeiVenue, cooldown_s: float = 0.5) -> None:
    """The feed's breaker keeps a failed endpoint closed for 10 s by default; with a single
    endpoint that is 10 s without market data after the node is back. Shorten it so a
    restart test takes seconds (the adapter has no setting for it)."""
    for b in venue.feed.breakers:
        b.cooldown_s = cooldown_s


async def _two_sided(http: Rest, contract: str, address: str, r: Running, timeout: float) -> Any:
    t0 = time.monotonic()
    while True:
        r.alive()
        try:
            orders = await http.orders(contract, address)
        except (aiohttp.ClientError, TimeoutError):
            orders = []
        if {o["positionDirection"] for o in orders} == {"LONG", "SHORT"}:
            return orders
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"no two-sided quotes on chain within {timeout}s")
        await asyncio.sleep(0.05)


# --- the node is killed (SIGKILL) and restarted on the same ports and state file -----------


@bounded(60)
async def test_node_killed_and_restarted_hot_path_pulls_reconnects_and_resumes(
    tmp_path: Path,
) -> None:
    spec = atom_spec()  # the child serves ATOM/USDC only (see NodeProcess)
    node = NodeProcess(tmp_path / "state.json")
    await node.start()
    http = Rest(node.rest)
    venue = venue_for(spec, (node.rest,), (node.rpc,), wallet(CHILD_ACCOUNT))
    _fast_breakers(venue)
    loop, mm = hot_path(venue, spec.instrument, prefix="k9", reconcile_every_s=0.5)
    addr = venue.wallet.address
    r = Running(loop)
    try:
        await _two_sided(http, spec.contract, addr, r, timeout=8.0)
        await asyncio.sleep(0.5)
        live_before = set(mm.om.live)
        assert live_before
        connects = venue.feed.connects

        await node.kill()
        # what the node had committed (transactions still in its mempool die with it)
        committed = json.loads((tmp_path / "state.json").read_text())
        seq_committed = next(a["sequence"] for a in committed["accounts"] if a["address"] == addr)
        assert seq_committed > 0
        took = await wait_until(lambda: mm.risk.denials[STALE] > 0, 3.0, r, "stale gate")
        assert took > 0.5  # the data went stale (1 s), it was not pulled at once
        assert mm.trading_state is TradingState.ACTIVE  # stale pulls quotes, never halts
        n_places = len(venue.places)
        denied = mm.risk.denials[STALE]
        await asyncio.sleep(0.8)
        r.alive()
        assert len(venue.places) == n_places  # nothing new while the node is down
        assert mm.risk.denials[STALE] > denied  # every cycle is gated
        assert venue.feed.connects == connects  # nothing to connect to

        await node.start()  # same ports, same state file
        await wait_until(lambda: venue.feed.connects > connects, 5.0, r, "feed reconnect")
        orders = await _two_sided(http, spec.contract, addr, r, timeout=8.0)
        # resumed with new orders: the node came back without the old ones
        assert not {order_cid(o) for o in orders} & live_before
        # reconciled: what vanished with the old node is no longer live in the hot path
        await wait_until(lambda: not set(mm.om.live) & live_before, 3.0, r, "old orders dropped")
        # the sequence carried over the restart (not back to 0) and keeps moving: the
        # adapter's transactions are accepted again
        seq_restart = await http.sequence(addr)
        assert seq_restart > seq_committed
        sent = venue.txs_sent
        await wait_until(lambda: venue.txs_sent > sent + 2, 3.0, r, "more transactions")
        assert await http.sequence(addr) >= seq_restart + 3
        await r.stop()
        assert await http.orders(spec.contract, addr) == []
        assert mm.om.live == {}
        assert venue.sequence == await http.sequence(addr)
        state = json.loads((tmp_path / "state.json").read_text())
    finally:
        try:
            await r.stop()
        finally:
            await venue.close()
            await http.close()
            await node.stop()
    # no order lost or duplicated across the whole run
    sent_ids = [p.client_id for p in venue.places]
    assert len(sent_ids) == len(set(sent_ids))
    accepted = [e.client_id for e in venue.of(OrderAccepted)]
    assert len(accepted) == len(set(accepted))
    assert set(accepted) <= set(sent_ids)
    reasons = [e.reason for e in venue.rejects]
    assert not [x for x in reasons if "duplicate" in x]
    assert not [x for x in reasons if x.startswith("tx code 32")]  # no stuck sequence
    seen = {c for a, c in state["seen_clients"][spec.contract] if a == addr}
    assert set(accepted) <= seen <= set(sent_ids)


@bounded(60)
async def test_no_fill_lost_across_a_node_restart(tmp_path: Path) -> None:
    """Fill ids must stay unique across a node restart: the order manager drops a fill
    whose id it has seen (they used to restart from 1 with every node process)."""
    spec = atom_spec(seed=14, noise_market_rate=12.0)
    cfg = localnet_cfg((spec,), state_file=str(tmp_path / "state.json"))
    node = Localnet(cfg, rest_port=0, rpc_port=0)
    await node.start()
    logs = [BlockRecorder(node)]
    nodes = [node]
    rest, ws = urls(node)
    http = Rest(rest)
    venue = venue_for(spec, (rest,), (ws,))
    _fast_breakers(venue)
    loop, mm = hot_path(venue, spec.instrument, prefix="rs")
    addr = venue.wallet.address

    def chain_fills() -> list[dict[str, str]]:
        return [f for log in logs for f in log.events("dex_order_filled", addr)]

    try:
        before = await http.balances(addr)
        r = Running(loop)
        try:
            await wait_until(lambda: len(chain_fills()) >= 2, 12.0, r, "fills before restart")
            n_before = len(chain_fills())
            await node.stop()
            node = Localnet(cfg, rest_port=node.rest_port, rpc_port=node.rpc_port)
            await node.start()
            nodes.append(node)
            logs.append(BlockRecorder(node))
            await wait_until(
                lambda: len(chain_fills()) > n_before, 15.0, r, "fills after the restart"
            )
            await asyncio.sleep(1.0)
        finally:
            await r.stop()
            await venue.close()
        await asyncio.sleep(3 * BLOCK_S)
        after = await http.balances(addr)
    finally:
        await http.close()
        await node.stop()
    fills = chain_fills()
    pos = mm.om.position
    # every execution on chain moved the hot path's position once
    assert pos.fill_count == len(fills), (
        f"{len(fills) - pos.fill_count} fill(s) dropped; chain fill ids "
        f"{[f['fill_id'] for f in fills]}"
    )
    base, quote = expected_deltas(venue.fills, spec)
    assert after["uatom"] - before["uatom"] == pos.lots * spec.base_micro_per_lot == base
    assert after["uusdc"] - before["uusdc"] == quote
    assert sum(ledger(n, addr).txs for n in nodes) > 0


@bounded(30)
async def test_order_ids_are_not_reused_after_a_restart(tmp_path: Path) -> None:
    """A cancel for an order that vanished with the old node (the adapter still knows its
    chain id and sends it after the restart) must not cancel a different, new order."""
    spec = sei_spec(seed=63)
    ref = MarketRef(spec.contract, spec.price_denom, spec.asset_denom, spec.instrument)
    cfg = localnet_cfg((spec,), state_file=str(tmp_path / "state.json"))
    w = wallet("trader")

    async def place(http: Rest, cid: str) -> int:
        res = await send_tx(
            http, w, [place_msg(w.address, ref, [PlaceOrder(cid, Side.BUY, 4_900, 1)])]
        )
        assert res["code"] == 0, res
        t0 = time.monotonic()
        while True:
            ids = {order_cid(o): int(o["id"]) for o in await http.orders(spec.contract, w.address)}
            if cid in ids:
                return ids[cid]
            if time.monotonic() - t0 > 3.0:
                pytest.fail(f"{cid} never rested")
            await asyncio.sleep(0.05)

    node = Localnet(cfg, rest_port=0, rpc_port=0)
    freeze_markets(node)  # only our orders take ids: the comparison is exact
    await node.start()
    http = Rest(urls(node)[0])
    try:
        old_id = await place(http, "before-1")
        await asyncio.sleep(2 * BLOCK_S)  # committed
        await node.stop()
        node = Localnet(cfg, rest_port=node.rest_port, rpc_port=node.rpc_port)
        freeze_markets(node)
        await node.start()
        assert await http.orders(spec.contract, w.address) == []  # the old order is gone
        new_id = await place(http, "after-1")
        # the stale cancel, as the adapter sends it for the vanished order
        cancel = cancel_msg(w.address, ref, [ChainCancel(old_id, Side.BUY, 4_900)])
        assert (await send_tx(http, w, [cancel]))["code"] == 0
        await asyncio.sleep(3 * BLOCK_S)
        left = {order_cid(o) for o in await http.orders(spec.contract, w.address)}
    finally:
        await http.close()
        await node.stop()
    assert left == {"after-1"}, f"the stale cancel (id {old_id}) hit the new order (id {new_id})"
    assert new_id != old_id


async def _eventually(pred: Any, timeout: float, r: Running) -> bool:
    """Poll ``pred`` for up to ``timeout`` seconds; True as soon as it holds."""
    t0 = time.monotonic()
    while not pred():
        r.alive()
        if time.monotonic() - t0 > timeout:
            return False
        await asyncio.sleep(0.02)
    return True


@bounded(30)
async def test_single_endpoint_feed_reconnects_soon_after_a_short_outage() -> None:
    spec = sei_spec(seed=61)
    cfg = localnet_cfg((spec,))
    node = Localnet(cfg, rest_port=0, rpc_port=0)
    await node.start()
    rest, ws = urls(node)
    venue = venue_for(spec, (rest,), (ws,))  # default feed settings
    loop, _ = hot_path(venue, spec.instrument)
    r = Running(loop)
    try:
        await wait_until(lambda: len(venue.of(OrderAccepted)) >= 2, 5.0, r, "quotes")
        connects = venue.feed.connects
        await node.stop()
        await asyncio.sleep(1.0)  # a one-second blip
        node = Localnet(cfg, rest_port=node.rest_port, rpc_port=node.rpc_port)
        await node.start()
        back = await _eventually(lambda: venue.feed.connects > connects, 5.0, r)
        assert back, "the feed did not reconnect within 5 s of the node coming back"
    finally:
        try:
            await r.stop()
        finally:
            await venue.close()
            await node.stop()


# --- the primary feed endpoint dies ---------------------------------------------------------


@bounded(30)
async def test_primary_feed_endpoint_dies_feed_fails_over_and_book_keeps_updating() -> None:
    spec = sei_spec(seed=51)
    async with localnet(localnet_cfg((spec,))) as node:
        rest, direct = urls(node)
        proxy = TcpProxy(node.rpc_port)
        await proxy.start()
        primary = f"ws://127.0.0.1:{proxy.port}/websocket"
        venue = venue_for(spec, (rest,), (primary, direct))
        loop, mm = hot_path(venue, spec.instrument)
        try:
            async with running(loop) as r:
                await wait_until(lambda: len(venue.of(OrderAccepted)) >= 2, 5.0, r, "quotes")
                assert venue.feed.endpoint == primary  # the first endpoint is preferred
                assert venue.feed.failovers == 0
                assert proxy.connections == 1
                accepted = len(venue.of(OrderAccepted))
                await proxy.kill()
                took = await wait_until(
                    lambda: venue.feed.endpoint == direct, 2.0, r, "failover to the second"
                )
                assert took < 2.0
                assert venue.feed.failovers >= 1
                # the book keeps updating from the new endpoint
                seq, resyncs = mm.book.seq, loop.feed.resyncs
                await wait_until(lambda: mm.book.seq >= seq + 3, 3.0, r, "book updates")
                assert loop.feed.ready
                assert loop.feed.resyncs > resyncs  # resynced from a snapshot on reconnect
                # and quoting goes on through the new feed
                await wait_until(
                    lambda: len(venue.of(OrderAccepted)) > accepted + 2, 3.0, r, "new quotes"
                )
                assert mm.risk.denials[STALE] == 0  # never went stale
                assert venue.feed.endpoint == direct
        finally:
            await proxy.kill()


# --- another signer uses our key: the sequence moves under the adapter ---------------------


@bounded(30)
async def test_sequence_bumped_by_another_signer_is_recovered() -> None:
    spec = sei_spec(seed=53)
    async with localnet(localnet_cfg((spec,))) as node:
        rest, ws = urls(node)
        venue = venue_for(spec, (rest,), (ws,))
        loop, _ = hot_path(venue, spec.instrument, reconcile_every_s=0.5)
        addr = venue.wallet.address
        ref = MarketRef(spec.contract, spec.price_denom, spec.asset_denom, spec.instrument)
        http = Rest(rest)
        intruder = PlaceOrder("intruder-1", Side.BUY, 4_000, 1)  # far below the market
        try:
            async with running(loop) as r:
                await wait_until(lambda: len(venue.of(OrderAccepted)) >= 2, 5.0, r, "quotes")
                assert venue.sequence_recoveries == 0
                # the same key, another client: sign and broadcast at the chain's sequence
                for _ in range(20):
                    tx = build_tx(
                        venue.wallet,
                        [place_msg(addr, ref, [intruder])],
                        chain_id=CHAIN_ID,
                        account_number=venue.account_number,
                        sequence=await http.sequence(addr),
                        gas_limit=200_000,
                        fee_amount=4_000,
                    )
                    res = await http.broadcast(tx)
                    if res["code"] == 0:
                        break
                    assert res["code"] == 32, res  # lost a race with the adapter: again
                else:
                    pytest.fail("the other client never got its transaction in")
                sent = venue.txs_sent
                accepted = len(venue.of(OrderAccepted))
                await wait_until(lambda: venue.sequence_recoveries >= 1, 3.0, r, "recovery")
                # and it keeps placing orders
                await wait_until(lambda: venue.txs_sent >= sent + 3, 3.0, r, "more txs")
                await wait_until(
                    lambda: len(venue.of(OrderAccepted)) >= accepted + 2, 3.0, r, "new quotes"
                )
                # the intruder's order rests under our account: reconcile adopts it as an
                # orphan and the hot path cancels it
                await wait_until(lambda: loop.reconcile_orphans >= 1, 3.0, r, "orphan adopted")
                t0 = time.monotonic()
                while "intruder-1" in {
                    order_cid(o) for o in await http.orders(spec.contract, addr)
                }:
                    if time.monotonic() - t0 > 3.0:
                        pytest.fail("the adopted orphan was never cancelled")
                    await asyncio.sleep(0.05)
            assert venue.sequence == await http.sequence(addr)
        finally:
            await http.close()
    assert not [e for e in venue.rejects if e.reason.startswith("tx code")]
    assert venue.tx_rejects == 0


# --- malformed and oversized frames sent to the node ----------------------------------------


async def _recv_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def _recv_reply(ws: aiohttp.ClientWebSocketResponse, rid: Any) -> Any:
    """The next frame that answers request ``rid`` (events may arrive in between)."""
    while True:
        m = await _recv_json(ws)
        if m.get("id") == rid and ("error" in m or m.get("result") == {}):
            return m


@bounded(20)
async def test_node_answers_malformed_requests_with_json_rpc_errors_and_keeps_serving() -> None:
    async with localnet(localnet_cfg()) as node:
        _, ws_url = urls(node)
        hub = node.hub
        async with aiohttp.ClientSession() as s, s.ws_connect(ws_url) as ws:
            cases: list[tuple[str | bytes, Any, int, int]] = [
                # (frame, reply id, JSON-RPC error code, malformed counted)
                ("this is not json {", None, -32700, 1),
                ("[1, 2, 3]", None, -32700, 1),
                ('"just a string"', None, -32700, 1),
                (json.dumps({"jsonrpc": "2.0", "id": 7, "method": "frobnicate"}), 7, -32601, 0),
                (
                    json.dumps(
                        {"jsonrpc": "2.0", "id": 8, "method": "subscribe", "params": {"q": 1}}
                    ),
                    8,
                    -32602,
                    1,
                ),
                (
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": 9,
                            "method": "subscribe",
                            "params": {"query": "tm.event = NewBlock"},  # unquoted value
                        }
                    ),
                    9,
                    -32602,
                    1,
                ),
                (
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": 10,
                            "method": "subscribe",
                            "params": {"query": "tm.event='Tx' OR tm.event='NewBlock'"},
                        }
                    ),
                    10,
                    -32602,
                    1,
                ),
                (b"\x00\x01binary", None, -32700, 1),
            ]
            for frame, rid, code, counted in cases:
                m0 = hub.malformed
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
                reply = await _recv_reply(ws, rid)
                assert reply["jsonrpc"] == "2.0"
                assert reply["error"]["code"] == code, (frame, reply)
                assert reply["error"]["message"]
                assert hub.malformed == m0 + counted, frame
            assert hub.malformed == 7
            # the same connection still works: a valid subscribe, then events
            await ws.send_json(
                {
                    "jsonrpc": "2.0",
                    "id": 11,
                    "method": "subscribe",
                    "params": {"query": "tm.event='NewBlock'"},
                }
            )
            assert (await _recv_reply(ws, 11))["result"] == {}
            ev = await _recv_json(ws)
            assert ev["id"] == 11
            assert ev["result"]["data"]["type"] == "tendermint/event/NewBlock"
            h1 = int(ev["result"]["data"]["value"]["block"]["header"]["height"])
            ev = await _recv_json(ws)
            assert int(ev["result"]["data"]["value"]["block"]["header"]["height"]) == h1 + 1


@bounded(20)
async def test_oversized_frame_closes_only_that_connection() -> None:
    async with localnet(localnet_cfg()) as node:
        _, ws_url = urls(node)
        sub = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "subscribe",
            "params": {"query": "tm.event='NewBlock'"},
        }
        async with aiohttp.ClientSession() as s:
            good = await s.ws_connect(ws_url)
            bad = await s.ws_connect(ws_url)
            try:
                await good.send_json(sub)
                assert (await _recv_reply(good, 1))["result"] == {}
                m0 = node.hub.malformed
                await bad.send_str("x" * (MAX_FRAME + 1024))
                msg = await bad.receive(timeout=2.0)
                assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), msg
                assert bad.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
                assert node.hub.malformed == m0 + 1
                await wait_until(lambda: len(node.hub.subscribers) == 1, 2.0, what="bad gone")
                # the other connection keeps receiving blocks
                heights = []
                while len(heights) < 3:
                    ev = await _recv_json(good)
                    heights.append(int(ev["result"]["data"]["value"]["block"]["header"]["height"]))
                assert heights == list(range(heights[0], heights[0] + 3))
                # and new connections are served
                async with s.ws_connect(ws_url) as fresh:
                    await fresh.send_json(sub)
                    assert (await _recv_reply(fresh, 1))["result"] == {}
                    ev = await _recv_json(fresh)
                    assert ev["result"]["data"]["type"] == "tendermint/event/NewBlock"
                # a frame just under the limit is a request like any other
                async with s.ws_connect(ws_url) as edge:
                    await edge.send_str(" " * (MAX_FRAME - 100) + json.dumps({"id": 2}))
                    reply = await _recv_reply(edge, 2)
                    assert reply["error"]["code"] == -32601
            finally:
                await good.close()
                await bad.close()


# --- malformed frames sent to the client --------------------------------------------------


class JunkNode:
    """A fake node: the REST calls the adapter makes on connect, and a WebSocket that
    acknowledges subscriptions, then sends ``frames`` (text or bytes) in order."""

    def __init__(self, address: str, contract: str, frames: list[str | bytes]) -> None:
        self.address = address
        self.contract = contract
        self.frames = frames
        self.sent = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.get("/cosmos/auth/v1beta1/accounts/{a}", self._account),
                web.get("/flashmm/localnet/v1/book/{c}", self._book),
                web.get("/websocket", self._ws),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _account(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"account": {"address": self.address, "account_number": "1", "sequence": "0"}}
        )

    async def _book(self, request: web.Request) -> web.Response:
        return web.json_response({"contract": self.contract, "seq": 0, "bids": [], "asks": []})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for _ in range(2):  # the adapter subscribes to blocks and to its own txs
            msg = await ws.receive(timeout=5)
            rid = json.loads(msg.data)["id"]
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}))
        for f in self.frames:
            if isinstance(f, bytes):
                await ws.send_bytes(f)
            else:
                await ws.send_str(f)
        self.sent.set()
        while not ws.closed:  # keep the connection open (a heartbeat every 0.2 s)
            await asyncio.sleep(0.2)
            await ws.send_str(_new_block(0, []))
        return ws


def _event(kind: str, **attrs: object) -> dict[str, Any]:
    return {"type": kind, "attributes": [{"key": k, "value": str(v)} for k, v in attrs.items()]}


def _result(data: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": {"query": "q", "data": data, "events": {}}}


def _new_block(height: int, begin: list[dict[str, Any]], **drop: bool) -> str:
    value: dict[str, Any] = {
        "block": {"header": {"height": str(height)}},
        "result_begin_block": {"events": begin},
        "result_end_block": {"events": []},
    }
    for k in drop:
        value.pop(k)
    return json.dumps(_result({"type": "tendermint/event/NewBlock", "value": value}))


def _tx(events: list[dict[str, Any]]) -> str:
    data = {
        "type": "tendermint/event/Tx",
        "value": {"TxResult": {"result": {"code": 0, "gas_used": "85000", "events": events}}},
    }
    return json.dumps(_result(data))


async def _junk_session(frames: list[str | bytes]) -> tuple[TapSeiVenue, list[Any]]:
    """Connect the real adapter to a ``JunkNode`` sending ``frames``; returns the venue and
    every event it produced (Heartbeats of the keep-alive blocks excluded)."""
    spec = sei_spec()
    w = wallet("trader")
    junk = JunkNode(w.address, spec.contract, frames)
    await junk.start()
    venue = venue_for(
        spec, (f"http://127.0.0.1:{junk.port}",), (f"ws://127.0.0.1:{junk.port}/websocket",), w
    )
    out: list[Any] = []
    try:
        await venue.connect()
        await asyncio.wait_for(junk.sent.wait(), 5)
        await asyncio.sleep(0.1)  # the last frames (and the snapshot) are handled
        while not venue._queue.empty():
            out.append(venue._queue.get_nowait())
        await asyncio.sleep(0.3)  # keep-alive blocks only from here on
        assert all(isinstance(e, Heartbeat) for e in list(venue._queue._queue))
        assert venue.feed.connects == 1  # junk never cost the connection
    finally:
        await venue.close()
        await junk.stop()
    return venue, out


def _valid_frames(spec_contract: str, address: str) -> list[str | bytes]:
    levels = json.dumps([[1, "0.4999", "100"], [-1, "0.5001", "120"]])
    return [
        _new_block(
            5,
            [
                _event(
                    "dex_trade",
                    contract=spec_contract,
                    price="0.5001",
                    quantity="7",
                    aggressor="buy",
                ),
            ],
        ),
        _new_block(6, [_event("dex_book", contract=spec_contract, seq=1, levels=levels)]),
        _tx(
            [
                _event(
                    "dex_order_placed",
                    contract=spec_contract,
                    account=address,
                    order_id=42,
                    client_id="fmm-1",
                    side="buy",
                    price="0.4999",
                    quantity="100",
                )
            ]
        ),
    ]


@bounded(20)
async def test_feed_counts_malformed_frames_and_keeps_delivering_valid_ones() -> None:
    contract, address = sei_spec().contract, wallet("trader").address
    junk: list[str | bytes] = [
        "not json at all {",
        "[1, 2, 3]",
        "42",
        json.dumps({"jsonrpc": "2.0", "id": 1, "result": "oops"}),
        json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"query": "q", "data": "x"}}),
        json.dumps(_result({"type": "tendermint/event/Unknown", "value": {}})),
        json.dumps(_result({"value": {}})),  # no type
        _tx([{"type": "dex_book"}]),  # an event without attributes
        _new_block(
            3, [_event("dex_book", contract=contract, seq=1, levels="not json")]
        ),  # bad levels
        _new_block(4, [_event("dex_trade", contract=contract, price="x", quantity="1")]),
        b"\x00binary",
    ]
    errors = [json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "x"}})]
    valid = _valid_frames(contract, address)
    # junk first, valid events in between and after
    frames = [*junk[:6], valid[0], *errors, *junk[6:], valid[1], valid[2]]
    venue, events = await _junk_session(frames)
    assert venue.feed.malformed == len(junk)
    kinds = [type(e) for e in events if not isinstance(e, Heartbeat | BookSnapshot)]
    assert kinds == [TradePrint, BookDelta, OrderAccepted]
    trade = next(e for e in events if isinstance(e, TradePrint))
    assert (trade.price, trade.lots, trade.aggressor) == (5001, 7, Side.BUY)
    delta = next(e for e in events if isinstance(e, BookDelta))
    assert delta.seq == 1 and delta.levels == ((1, 4999, 100), (-1, 5001, 120))
    acc = next(e for e in events if isinstance(e, OrderAccepted))
    assert (acc.client_id, acc.venue_id) == ("fmm-1", 42)
    assert sum(isinstance(e, BookSnapshot) for e in events) == 1  # once, on connect


@bounded(20)
async def test_malformed_new_block_is_dropped_whole() -> None:
    """A NewBlock the adapter cannot parse must produce no events at all, not even the
    Heartbeat that tells the risk gate the data is fresh (it used to produce one)."""
    contract, address = sei_spec().contract, wallet("trader").address
    frames: list[str | bytes] = [
        _new_block(3, [], result_begin_block=True),  # NewBlock missing a field
        _new_block(4, [], result_end_block=True),
        *_valid_frames(contract, address),
    ]
    venue, events = await _junk_session(frames)
    assert venue.feed.malformed == 2
    # two valid NewBlocks → exactly two Heartbeats; nothing from the dropped ones
    assert sum(isinstance(e, Heartbeat) for e in events) == 2


# --- transactions the chain refuses -------------------------------------------------------


@bounded(30)
async def test_fee_below_the_minimum_every_place_rejected_with_the_cosmos_code() -> None:
    spec = sei_spec(seed=57)
    async with localnet(localnet_cfg((spec,))) as node:
        rest, ws = urls(node)
        venue = venue_for(spec, (rest,), (ws,), gas=GasConfig(max_fee_usei=1))
        loop, mm = hot_path(venue, spec.instrument)
        addr = venue.wallet.address
        http = Rest(rest)
        try:
            before = await http.balances(addr)
            async with running(loop) as r:
                await wait_until(lambda: venue.tx_rejects >= 3, 5.0, r, "three rejected txs")
                cycles = mm.stats.cycles
                await asyncio.sleep(0.5)
                r.alive()
                assert mm.stats.cycles > cycles + 3  # still quoting (and still refused)
                assert await http.orders(spec.contract, addr) == []
            assert await http.sequence(addr) == 0  # refused at CheckTx: no sequence used
            assert await http.balances(addr) == before  # and no fee charged
        finally:
            await http.close()
        refused = node.rejected
    sent = {p.client_id for p in venue.places}
    rejects = venue.rejects
    assert sent and {e.client_id for e in rejects} == sent  # every place came back
    for e in rejects:
        assert e.reason.startswith("tx code 13:"), e.reason
        assert "insufficient fees" in e.reason
    assert venue.tx_rejects >= 3 and refused >= venue.tx_rejects
    assert venue.txs_sent == 0
    assert mm.om.rejects == len(sent)
    assert mm.om.live == {}


@bounded(30)
async def test_account_without_quote_funds_buys_rejected_on_chain() -> None:
    spec = sei_spec(seed=59)
    poor = wallet("no-usdc")
    genesis = default_genesis(GenesisAccount(poor.address, (("usei", 50_000 * SEI),)))
    async with localnet(localnet_cfg((spec,), genesis)) as node:
        rest, ws = urls(node)
        venue = venue_for(spec, (rest,), (ws,), w=poor)
        loop, mm = hot_path(venue, spec.instrument)
        http = Rest(rest)
        try:
            async with running(loop) as r:
                await wait_until(
                    lambda: sum(1 for e in venue.rejects if "insufficient" in e.reason) >= 4,
                    5.0,
                    r,
                    "buys rejected",
                )
                # sells rest (the account has the base asset), buys never do
                t0 = time.monotonic()
                while True:
                    orders = await http.orders(spec.contract, poor.address)
                    if orders:
                        break
                    if time.monotonic() - t0 > 3.0:
                        pytest.fail("no sell order rested")
                    await asyncio.sleep(0.05)
                assert {o["positionDirection"] for o in orders} == {"SHORT"}
                cycles = mm.stats.cycles
                await asyncio.sleep(0.3)
                assert mm.stats.cycles > cycles  # the loop keeps running
        finally:
            await http.close()
        book = ledger(node, poor.address)
    buys = {p.client_id for p in venue.places if p.side is Side.BUY}
    sells = {p.client_id for p in venue.places if p.side is Side.SELL}
    assert buys and sells
    rejected = {e.client_id: e.reason for e in venue.rejects}
    insufficient = {
        c for c, why in rejected.items() if why == "insufficient uusdc for open buy orders"
    }
    # every buy that reached the chain was refused for funds, and the hot path was told
    chain_refused = {c for c, why in book.rejected if "insufficient" in why}
    assert chain_refused == insufficient
    assert buys & set(book.placed) == set()
    assert buys <= set(rejected)
    assert insufficient <= buys
    assert venue.tx_rejects == 0  # the transactions were fine; the orders were refused
    assert sells & set(book.placed)
    # the fills, if any, were sells (the account cannot buy)
    assert all(f.side is Side.SELL for f in venue.fills)


@bounded(30)
async def test_gas_estimate_too_low_is_raised_until_transactions_fit() -> None:
    spec = sei_spec(seed=65)
    async with localnet(localnet_cfg((spec,))) as node:
        rest, ws = urls(node)
        low = GasConfig(prior_base=2_000, prior_per_item=500)  # far below what txs use
        venue = venue_for(spec, (rest,), (ws,), gas=low)
        loop, _ = hot_path(venue, spec.instrument)
        addr = venue.wallet.address
        http = Rest(rest)
        try:
            async with running(loop) as r:
                await wait_until(lambda: venue.tx_rejects >= 1, 3.0, r, "an out-of-gas reject")
                await _two_sided(http, spec.contract, addr, r, timeout=8.0)
                assert venue.gas.bumps >= 1
                rejects = venue.tx_rejects
                sent = venue.txs_sent
                await asyncio.sleep(1.0)
                await wait_until(lambda: venue.txs_sent >= sent + 3, 3.0, r, "more txs")
                assert venue.tx_rejects == rejects  # learned: no more out-of-gas
            assert await http.sequence(addr) == venue.txs_sent == venue.sequence
        finally:
            await http.close()
    reasons = [e.reason for e in venue.rejects if e.reason.startswith("tx code")]
    assert reasons and all(x.startswith("tx code 11:") and "out of gas" in x for x in reasons)
