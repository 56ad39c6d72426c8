"""The hot path end to end against a real localnet over loopback.

Each test starts an in-process ``Localnet`` on OS-chosen ports (0.2 s blocks), connects the
real Sei adapter (signed transactions over REST, events over the Tendermint WebSocket) and
runs a ``QuoteLoop`` for a few seconds. The chain is the judge: open orders come from the
REST API, balances from the bank module, fills from the blocks the node produced, gas from
the fee of every delivered transaction.
"""

from __future__ import annotations

import asyncio
import base64
import time
from decimal import Decimal

import pytest

from flashmm.domain.orders import Liquidity, Side
from flashmm.localnet.chain import Block
from flashmm.localnet.config import MICRO, GenesisAccount, MarketSpec
from flashmm.localnet.dex import DexMarket
from flashmm.sim.market import BACKGROUND
from flashmm.venue.base import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    PlaceOrder,
    VenueEvent,
)
from flashmm.venue.sei import protos
from flashmm.venue.sei.tx import MarketRef, build_tx, place_msg
from flashmm.venue.sei.wallet import Wallet
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits
from tests.integration.localnet_helpers import (
    BLOCK_S,
    CHAIN_ID,
    SEI,
    USDC,
    BlockRecorder,
    Rest,
    Running,
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
    order_ticks,
    running,
    sei_spec,
    stop_and_drain,
    tx_fee_usei,
    urls,
    venue_for,
    wait_until,
    wallet,
)


def _side(o: dict[str, str]) -> Side:
    return Side.BUY if o["positionDirection"] == "LONG" else Side.SELL


def _sides(orders: list[dict[str, str]]) -> set[str]:
    return {o["positionDirection"] for o in orders}


async def _wait_two_sided_on_chain(
    http: Rest, contract: str, address: str, r: Running, timeout: float = 5.0
) -> list[dict[str, str]]:
    t0 = time.monotonic()
    while True:
        r.alive()
        orders = await http.orders(contract, address)
        if _sides(orders) == {"LONG", "SHORT"}:
            return orders
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"no two-sided quotes on chain within {timeout}s")
        await asyncio.sleep(0.05)


# --- (a) two-sided quotes on chain that never cross ----------------------------------------


@bounded(30)
async def test_quotes_rest_on_both_sides_on_chain_and_never_cross() -> None:
    spec = sei_spec(seed=21, noise_market_rate=6.0)
    inst = spec.instrument
    async with localnet(localnet_cfg((spec,))) as node:
        rest, ws = urls(node)
        venue = venue_for(spec, (rest,), (ws,))
        loop, mm = hot_path(venue, inst)
        addr = venue.wallet.address
        http = Rest(rest)
        samples = two_sided = 0
        try:
            async with running(loop) as r:
                await _wait_two_sided_on_chain(http, spec.contract, addr, r)
                t_end = time.monotonic() + 2.5
                while time.monotonic() < t_end:
                    await asyncio.sleep(0.1)
                    r.alive()
                    orders = await http.orders(spec.contract, addr)
                    bids = [
                        order_ticks(o, inst) for o in orders if o["positionDirection"] == "LONG"
                    ]
                    asks = [
                        order_ticks(o, inst) for o in orders if o["positionDirection"] == "SHORT"
                    ]
                    if bids and asks:
                        two_sided += 1
                        # never crossing ourselves (that would trade with our own orders)
                        assert max(bids) < min(asks), (bids, asks)
                    samples += 1
                    placed = {p.client_id: p for p in venue.places}
                    for o in orders:
                        # what rests on chain is exactly what the hot path sent, on the grid
                        p = placed[order_cid(o)]
                        assert order_ticks(o, inst) == p.price
                        assert _side(o) is p.side
                        lots = Decimal(o["quantity"]) / inst.lot_size
                        assert lots == int(lots) and 0 < lots <= p.lots
                assert mm.stats.cycles >= 20
        finally:
            await http.close()
    assert samples >= 15
    assert two_sided >= samples // 2, (two_sided, samples)
    # every order was priced inside the book the engine saw (post-only, passive)
    assert venue.placed_against
    for p, bid, ask in venue.placed_against:
        if p.side is Side.BUY:
            assert ask == 0 or p.price < ask, (p, bid, ask)
        else:
            assert p.price > bid, (p, bid, ask)
    # and nothing of ours ever took liquidity on chain
    assert all(f.liquidity is Liquidity.MAKER for f in venue.fills)


# --- (b) no fill lost: the chain's balances equal the hot path's fills ----------------------


@bounded(40)
async def test_no_fill_lost_chain_balances_equal_hot_path_position() -> None:
    spec = sei_spec(seed=23, noise_market_rate=12.0)
    async with localnet(localnet_cfg((spec,))) as node:
        chain_log = BlockRecorder(node)
        rest, ws = urls(node)
        venue = venue_for(spec, (rest,), (ws,))
        loop, mm = hot_path(venue, spec.instrument)
        addr = venue.wallet.address
        http = Rest(rest)
        try:
            before = await http.balances(addr)
            async with running(loop) as r:
                await wait_until(lambda: len(venue.fills) >= 4, 12.0, r, "four fills")
                # quiet the market, then stop once the feed has caught up: a fill in the
                # very last block is a separate case (see the shutdown-block test below)
                freeze_markets(node)
                await asyncio.sleep(3 * BLOCK_S)
            # the loop has cancelled everything; let anything still in flight land
            await asyncio.sleep(3 * BLOCK_S)
            after = await http.balances(addr)
            chain_seq = await http.sequence(addr)
            gas = ledger(node, addr)
            # the same fees, read back over REST from each of our transactions
            ours = [h for h, t in node.chain.results.items() if t.sender == addr]
            rest_gas = 0
            for h in ours:
                got = await http.tx(h)
                assert got["tx_response"]["txhash"] == h and got["tx_response"]["code"] == 0
                rest_gas += tx_fee_usei(base64.b64decode(got["tx"]["TxResult"]["tx"]))
        finally:
            await http.close()
    assert rest_gas == gas.gas_usei
    pos = mm.om.position
    fills = venue.fills
    chain_fills = chain_log.events("dex_order_filled", addr)
    # every execution on chain reached the position exactly once
    assert [f["fill_id"] for f in chain_fills] == [f.fill_id for f in fills]
    assert pos.fill_count == len(fills) == mm.stats.fills >= 4
    assert pos.lots == sum(int(f.side) * f.lots for f in fills)
    # balances in micro-units: base (usei, which also pays gas) and quote (uusdc)
    d_base, d_quote = expected_deltas(fills, spec)
    assert d_base == pos.lots * spec.base_micro_per_lot
    assert gas.gas_usei > 0 and gas.txs > 0
    assert after["usei"] - before["usei"] + gas.gas_usei == d_base
    assert after["uusdc"] - before["uusdc"] == d_quote
    # fees as the chain charged them (maker rebates, micro-units) = the position's fees
    chain_fees = sum(Decimal(f["fee"]) * MICRO for f in chain_fills)
    assert chain_fees == round(Decimal(repr(pos.fees)) * MICRO)
    assert chain_fees < 0  # maker rebate
    # every transaction the adapter counted as sent landed, and nothing else
    assert gas.txs == venue.txs_sent == chain_seq == venue.sequence


# --- (c) no duplicate orders ----------------------------------------------------------------


@bounded(30)
async def test_every_client_id_reaches_the_chain_at_most_once() -> None:
    spec = sei_spec(seed=25, noise_market_rate=8.0, fair_vol=2.0)
    async with localnet(localnet_cfg((spec,))) as node:
        rest, ws = urls(node)
        venue = venue_for(spec, (rest,), (ws,))
        loop, mm = hot_path(venue, spec.instrument, hz=20.0)
        addr = venue.wallet.address
        r = Running(loop)
        try:
            await wait_until(lambda: len(venue.places) >= 30, 10.0, r, "30 places")
        finally:
            left = await stop_and_drain(r, venue, 3 * BLOCK_S)
        book = ledger(node, addr)
        seen = {cid for a, cid in node.chain.markets[spec.contract].seen_clients if a == addr}
    sent = [p.client_id for p in venue.places]
    assert len(sent) == len(set(sent))  # the hot path never re-sent a client id
    placed = book.placed
    assert len(placed) == len(set(placed))  # placed on chain at most once each
    assert not [c for c, why in book.rejected if "duplicate" in why]
    # every client id the hot path sent reached the chain exactly once (placed or refused)
    assert sorted(placed + [c for c, _ in book.rejected]) == sorted(sent)
    assert seen == set(sent)
    # the venue acknowledged each placed order once (events the loop consumed, plus the
    # last ones it had not consumed yet when it stopped)
    accepted = [e.client_id for e in venue.of(OrderAccepted) + left if isinstance(e, OrderAccepted)]
    assert len(accepted) == len(set(accepted)) == len(placed)
    assert set(accepted) == set(placed)
    assert mm.stats.cancels_sent > 0  # it really requoted


# --- (d) stop leaves nothing on chain ----------------------------------------------------


@bounded(30)
async def test_stop_leaves_no_open_orders_on_chain() -> None:
    spec = sei_spec(seed=27)
    async with localnet(localnet_cfg((spec,))) as node:
        rest, ws = urls(node)
        venue = venue_for(spec, (rest,), (ws,))
        loop, mm = hot_path(venue, spec.instrument, shutdown_timeout_s=3.0)
        addr = venue.wallet.address
        market = node.chain.markets[spec.contract]
        http = Rest(rest)
        try:
            r = Running(loop)
            left: list[VenueEvent] = []
            try:
                resting = await _wait_two_sided_on_chain(http, spec.contract, addr, r)
                await asyncio.sleep(0.3)
                t0 = time.monotonic()
                await r.stop()
                took = time.monotonic() - t0
                assert await http.orders(spec.contract, addr) == []
                assert market.open_orders(addr) == []
                assert mm.om.live == {}
            finally:
                # nothing still in flight lands after run() returned
                left = await stop_and_drain(r, venue, 3 * BLOCK_S)
            assert await http.orders(spec.contract, addr) == []
            assert market.open_orders(addr) == []
        finally:
            await http.close()
    assert took < 3.0  # confirmed, not timed out
    # each order that was resting was cancelled (or filled) on chain, and the venue said so
    events = venue.seen + left
    ended = {e.client_id for e in events if isinstance(e, OrderCancelled)} | {
        e.fill.client_id for e in events if isinstance(e, OrderFilled) and e.remaining == 0
    }
    assert {order_cid(o) for o in resting} <= ended


# --- (e) two markets, each with its own contract, at once ----------------------------------


@bounded(40)
async def test_two_markets_trade_at_once_on_their_own_contracts() -> None:
    sei, atom = sei_spec(seed=31, noise_market_rate=8.0), atom_spec(seed=32, noise_market_rate=8.0)
    w_sei, w_atom = wallet("trader"), wallet("trader-atom")  # one key per hot path
    funds = (("uatom", 5_000 * SEI), ("usei", 50_000 * SEI), ("uusdc", 50_000 * USDC))
    genesis = default_genesis(GenesisAccount(w_atom.address, funds))
    async with localnet(localnet_cfg((sei, atom), genesis)) as node:
        rest, ws = urls(node)
        v_sei = venue_for(sei, (rest,), (ws,), w_sei)
        v_atom = venue_for(atom, (rest,), (ws,), w_atom)
        l_sei, mm_sei = hot_path(v_sei, sei.instrument, prefix="sei")
        l_atom, mm_atom = hot_path(v_atom, atom.instrument, prefix="atom")
        http = Rest(rest)
        try:
            before = {w: await http.balances(w.address) for w in (w_sei, w_atom)}
            async with running(l_sei) as r1, running(l_atom) as r2:
                both = 0
                t_end = time.monotonic() + 8.0
                while time.monotonic() < t_end and not (both >= 3 and v_sei.fills and v_atom.fills):
                    await asyncio.sleep(0.1)
                    r1.alive()
                    r2.alive()
                    o_sei = await http.orders(sei.contract, w_sei.address)
                    o_atom = await http.orders(atom.contract, w_atom.address)
                    assert all(order_cid(o).startswith("sei-") for o in o_sei)
                    assert all(order_cid(o).startswith("atom-") for o in o_atom)
                    # nothing of either hot path on the other's contract
                    assert await http.orders(atom.contract, w_sei.address) == []
                    assert await http.orders(sei.contract, w_atom.address) == []
                    for o in o_atom:  # ATOM's grid: 0.001 ticks, 0.1 lots, near 8.000
                        order_ticks(o, atom.instrument)
                        lots = Decimal(o["quantity"]) / atom.instrument.lot_size
                        assert lots == int(lots)
                        assert Decimal("7.5") < Decimal(o["price"]) < Decimal("8.5")
                    if _sides(o_sei) == _sides(o_atom) == {"LONG", "SHORT"}:
                        both += 1
                assert both >= 3, "both markets never quoted two-sided together"
                assert v_sei.fills and v_atom.fills, "both markets should trade"
                freeze_markets(node)  # quiet, so the last fills are in before the stop
                await asyncio.sleep(3 * BLOCK_S)
            await asyncio.sleep(3 * BLOCK_S)
            after = {w: await http.balances(w.address) for w in (w_sei, w_atom)}
            assert await http.orders(sei.contract, w_sei.address) == []
            assert await http.orders(atom.contract, w_atom.address) == []
            seqs = {w: await http.sequence(w.address) for w in (w_sei, w_atom)}
        finally:
            await http.close()
        gas = {w: ledger(node, w.address) for w in (w_sei, w_atom)}
    assert all(f.client_id.startswith("sei-") for f in v_sei.fills)
    assert all(f.client_id.startswith("atom-") for f in v_atom.fills)
    b_sei, q_sei = expected_deltas(v_sei.fills, sei)
    b_atom, q_atom = expected_deltas(v_atom.fills, atom)
    assert b_sei == mm_sei.om.position.lots * sei.base_micro_per_lot
    assert b_atom == mm_atom.om.position.lots * atom.base_micro_per_lot

    def delta(w: Wallet, denom: str) -> int:
        return after[w][denom] - before[w][denom]

    assert delta(w_sei, "usei") + gas[w_sei].gas_usei == b_sei
    assert delta(w_sei, "uusdc") == q_sei
    assert delta(w_sei, "uatom") == 0
    assert delta(w_atom, "uatom") == b_atom
    assert delta(w_atom, "uusdc") == q_atom
    assert delta(w_atom, "usei") == -gas[w_atom].gas_usei
    for w, v in ((w_sei, v_sei), (w_atom, v_atom)):
        assert seqs[w] == gas[w].txs == v.txs_sent == v.sequence


# --- fills that the hot path never sees -----------------------------------------------------


def _calm_market(seed: int) -> MarketSpec:
    """Little background trading: the fills in these tests are the ones the test makes."""
    return sei_spec(
        seed=seed, fair_vol=0.2, jump_rate=0.0, noise_market_rate=0.3, informed_rate=0.0
    )


def _ask_sweep_lots(market: DexMarket, address: str) -> tuple[int, int] | None:
    """(price, lots) of a buy that takes every ask up to and including our highest one."""
    asks = [o for o in market.open_orders(address) if o.side is Side.SELL]
    if not asks:
        return None
    top = max(o.price for o in asks)
    return top, sum(n for p, n in market.exchange.book.asks.items() if p <= top)


@bounded(30)
async def test_fill_by_another_accounts_order_reaches_the_position() -> None:
    """Another account's order trades against ours: the maker fill is reported inside that
    account's Tx, so the adapter must subscribe to Txs that touch our orders, not only to
    Txs we sent (this fill used to be invisible to the hot path)."""
    spec = _calm_market(43)
    taker = wallet("treasury")
    genesis = default_genesis(
        GenesisAccount(taker.address, (("usei", 1_000_000 * SEI), ("uusdc", 1_000_000 * USDC)))
    )
    async with localnet(localnet_cfg((spec,), genesis)) as node:
        chain_log = BlockRecorder(node)
        rest, ws = urls(node)
        venue = venue_for(spec, (rest,), (ws,))
        loop, mm = hot_path(venue, spec.instrument, quoting=QuoteParams(levels=1))
        addr = venue.wallet.address
        market = node.chain.markets[spec.contract]
        ref = MarketRef(spec.contract, spec.price_denom, spec.asset_denom, spec.instrument)
        http = Rest(rest)
        try:
            async with running(loop) as r:
                await _wait_two_sided_on_chain(http, spec.contract, addr, r)
                sweep = _ask_sweep_lots(market, addr)
                if sweep is None:
                    pytest.fail("no ask of ours resting")
                price, lots = sweep
                buy = PlaceOrder("taker-1", Side.BUY, price, lots, post_only=False)
                tx = build_tx(
                    taker,
                    [place_msg(taker.address, ref, [buy])],
                    chain_id=CHAIN_ID,
                    account_number=node.chain.accounts[taker.address].number,
                    sequence=await http.sequence(taker.address),
                    gas_limit=200_000,
                    fee_amount=4_000,
                )
                res = await http.broadcast(tx)
                if res["code"] != 0:
                    pytest.fail(f"taker tx refused: {res}")
                t0 = time.monotonic()
                while not chain_log.events("dex_order_filled", addr):
                    if time.monotonic() - t0 > 3.0:
                        pytest.fail("the taker's buy filled none of our orders")
                    await asyncio.sleep(0.02)
                # the hot path has the feed's whole view of that block within a second
                await asyncio.sleep(1.0)
                chain_fills = chain_log.events("dex_order_filled", addr)
                assert [f["fill_id"] for f in chain_fills] == [f.fill_id for f in venue.fills]
                chain_lots = sum(
                    (1 if f["side"] == "buy" else -1) * int(Decimal(f["quantity"]))
                    for f in chain_fills
                )
                assert mm.om.position.lots == chain_lots
        finally:
            await http.close()


@bounded(40)
async def test_fill_in_the_shutdown_block_reaches_the_position() -> None:
    """The background market fills our ask in the same block that carries our shutdown
    cancels, and the feed lags REST by 0.5 s: the loop must not stop consuming events as
    soon as REST shows no orders (it used to, and the fill never reached the position)."""
    spec = _calm_market(41)
    async with localnet(localnet_cfg((spec,))) as node:
        chain_log = BlockRecorder(node)
        rest, _ = urls(node)
        # the feed reaches us 0.5 s after REST does (another node, a slow link)
        lag = TcpProxy(node.rpc_port, delay_s=0.5)
        await lag.start()
        venue = venue_for(spec, (rest,), (f"ws://127.0.0.1:{lag.port}/websocket",))
        loop, mm = hot_path(
            venue,
            spec.instrument,
            quoting=QuoteParams(levels=1),
            limits=RiskLimits(stale_after_s=3.0),
            hz=5.0,
        )
        addr = venue.wallet.address
        chain = node.chain
        market = chain.markets[spec.contract]
        swept: list[int] = []
        armed = asyncio.Event()  # set when the loop is told to stop
        produce = chain.produce_block

        def background_buy_in_cancel_block(time_s: float) -> Block:
            """In the block that carries our shutdown cancels, the background market buys
            through our ask first (its trades settle at the start of the block)."""
            ours = [m for m in chain.mempool if m[3].address == addr]
            cancels_only = ours and all(
                u == protos.TYPE_URL_CANCEL for m in ours for u, _ in m[1].messages
            )
            if not armed.is_set() or swept:
                return produce(time_s)
            if cancels_only and (sweep := _ask_sweep_lots(market, addr)):
                market.exchange.market(BACKGROUND, 1, sweep[1])
                swept.append(sweep[1])
            return produce(time_s)

        chain.produce_block = background_buy_in_cancel_block  # type: ignore[method-assign]
        http = Rest(rest)
        try:
            r = Running(loop)
            try:
                await _wait_two_sided_on_chain(http, spec.contract, addr, r, timeout=8.0)
                # stop when every live order is acknowledged: all cancels go out at once
                await wait_until(
                    lambda: (
                        bool(mm.om.live)
                        and all(o.venue_id is not None for o in mm.om.live.values())
                        and any(o.side is Side.SELL for o in mm.om.live.values())
                    ),
                    8.0,
                    r,
                    "every live order acknowledged",
                )
                armed.set()
                await r.stop()
            finally:
                await r.stop()
                await asyncio.sleep(1.0)  # the lagging feed delivers the rest
                late = [e for e in list(venue._queue._queue) if isinstance(e, OrderFilled)]
                await venue.close()
                await lag.kill()
            after = await http.orders(spec.contract, addr)
        finally:
            await http.close()
    if not swept:
        pytest.fail("no shutdown cancel found with an ask of ours resting")
    chain_fills = chain_log.events("dex_order_filled", addr)
    if not chain_fills:
        pytest.fail("the background buy filled none of our orders")
    assert after == []
    assert [f["fill_id"] for f in chain_fills] == [f.fill_id for f in venue.fills], (
        f"{len(late)} fill(s) reached the venue only after the loop had returned"
    )
    chain_lots = sum(
        (1 if f["side"] == "buy" else -1) * int(Decimal(f["quantity"])) for f in chain_fills
    )
    assert mm.om.position.lots == chain_lots
