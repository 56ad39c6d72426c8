"""The one Sei chain client against the real localnet: account lookup, balances, open orders,
the book, broadcasts and transaction lookups; every unusable answer is the project's
``ChainAnswerError`` naming what was asked (never a ``KeyError``), and the activities turn it
into their retryable ``VenueAnswerError``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.chain import VENUE_ANSWER
from activities.keys import KeyActivities
from activities.venue import VenueActivities
from flashmm.config import load_settings
from flashmm.config.settings import Settings
from flashmm.domain.orders import Side
from flashmm.localnet.config import GenesisAccount
from flashmm.localnet.server import Localnet
from flashmm.venue.base import PlaceOrder
from flashmm.venue.sei.chain import (
    Account,
    ChainAnswerError,
    SeiChain,
    parse_account,
    parse_balances,
    parse_book,
    parse_broadcast,
    parse_orders,
    parse_tx,
)
from flashmm.venue.sei.market import market_ref
from flashmm.venue.sei.rest import RestError
from flashmm.venue.sei.tx import build_tx, place_msg, tx_hash
from flashmm.venue.sei.wallet import Wallet, dev_mnemonic
from tests.integration.localnet_helpers import (
    CHAIN_ID,
    SEI,
    USDC,
    default_genesis,
    localnet,
    localnet_cfg,
    sei_spec,
    wallet,
)

TRADER_COINS = {"uatom": 5_000 * SEI, "usei": 50_000 * SEI, "uusdc": 50_000 * USDC}
BLOCK_WAIT_S = 0.6  # three blocks of the test localnet


def _settings(rest_url: str) -> Settings:
    base = load_settings(None)
    return base.model_copy(
        update={"venue": base.venue.model_copy(update={"rest_urls": [rest_url]})}
    )


def _venue_wallet(settings: Settings) -> Wallet:
    """The development key the venue activities sign with for SEI/USDC."""
    return Wallet.from_mnemonic(dev_mnemonic(settings.venue.account_name("SEI/USDC")))


@pytest_asyncio.fixture
async def node() -> AsyncIterator[Localnet]:
    settings = load_settings(None)
    extra = GenesisAccount(
        _venue_wallet(settings).address, (("usei", 1_000 * SEI), ("uusdc", 1_000 * USDC))
    )
    async with localnet(localnet_cfg(genesis=default_genesis(extra))) as n:
        yield n


@pytest_asyncio.fixture
async def chain(node: Localnet) -> AsyncIterator[SeiChain]:
    c = SeiChain.connect((f"http://127.0.0.1:{node.rest_port}",))
    try:
        yield c
    finally:
        await c.close()


async def _place(chain: SeiChain, w: Wallet, *orders: PlaceOrder) -> str:
    """Sign and broadcast one placement transaction; its hash."""
    mref = market_ref(load_settings(None), "SEI/USDC")
    acct = await chain.account(w.address)
    tx = build_tx(
        w,
        [place_msg(w.address, mref, list(orders))],
        chain_id=CHAIN_ID,
        account_number=acct.number,
        sequence=acct.sequence,
        gas_limit=400_000,
        fee_amount=20_000,
    )
    answer = await chain.broadcast(tx)
    assert answer.code == 0, answer.raw_log
    return tx_hash(tx)


# --- against the localnet ---------------------------------------------------------------------
async def test_account_lookup(chain: SeiChain) -> None:
    acct = await chain.account(wallet("trader").address)
    assert isinstance(acct, Account) and acct.sequence == 0 and acct.number >= 0
    with pytest.raises(ChainAnswerError) as e:
        await chain.account(wallet("nobody").address)
    assert e.value.what == "account lookup" and e.value.status == 404
    assert isinstance(e.value, RestError)  # the venue adapter waits it out like an outage


async def test_balances(chain: SeiChain) -> None:
    assert await chain.balances(wallet("trader").address) == TRADER_COINS
    assert await chain.balances(wallet("nobody").address) == {}


async def test_open_orders_book_broadcast_and_lookup(chain: SeiChain) -> None:
    w = wallet("trader")
    contract = sei_spec().contract
    assert await chain.open_orders(contract, w.address) == []
    h = await _place(
        chain,
        w,
        PlaceOrder("t-bid", Side.BUY, 4_000, 3),  # far from the market: rests
        PlaceOrder("t-ask", Side.SELL, 6_000, 2),
    )
    await asyncio.sleep(BLOCK_WAIT_S)
    found = await chain.tx(h)
    assert found is not None and found.code == 0 and found.height > 0
    orders = {o.cid: o for o in await chain.open_orders(contract, w.address)}
    assert set(orders) == {"t-bid", "t-ask"}
    bid, ask = orders["t-bid"], orders["t-ask"]
    assert (bid.side, bid.price, bid.quantity) == (Side.BUY, Decimal("0.4"), Decimal("3"))
    assert (ask.side, ask.price, ask.quantity) == (Side.SELL, Decimal("0.6"), Decimal("2"))
    assert bid.order_id != ask.order_id
    book = await chain.book(contract)
    assert book.seq >= 0 and all(isinstance(p, Decimal) for p, _ in book.bids + book.asks)
    # an unknown transaction is not an error: no block holds it
    assert await chain.tx("00" * 32) is None
    with pytest.raises(ChainAnswerError) as e:
        await chain.open_orders("sei1unknowncontract", w.address)
    assert e.value.what == "open orders" and e.value.status == 404


async def test_a_refused_broadcast_is_a_code_not_an_error(chain: SeiChain) -> None:
    w = wallet("trader")
    mref = market_ref(load_settings(None), "SEI/USDC")
    tx = build_tx(
        w,
        [place_msg(w.address, mref, [PlaceOrder("t-late", Side.BUY, 4_000, 1)])],
        chain_id=CHAIN_ID,
        account_number=(await chain.account(w.address)).number,
        sequence=7,  # not the account's
        gas_limit=400_000,
        fee_amount=20_000,
    )
    answer = await chain.broadcast(tx)
    assert answer.code == 32 and answer.raw_log


async def test_activities_read_through_the_chain_client(node: Localnet) -> None:
    settings = _settings(f"http://127.0.0.1:{node.rest_port}")
    venue = VenueActivities(settings, block_wait_s=0)
    from workflows.types import VenueRequest

    got = await ActivityEnvironment().run(venue.balances, VenueRequest("SEI/USDC"))
    assert got.address == _venue_wallet(settings).address
    assert got.balances == {"usei": 1_000 * SEI, "uusdc": 1_000 * USDC}
    assert await ActivityEnvironment().run(venue.open_orders, VenueRequest("SEI/USDC")) == 0
    keys = KeyActivities(settings)
    assert await ActivityEnvironment().run(keys.balances, wallet("trader").address) == (
        TRADER_COINS
    )
    assert await ActivityEnvironment().run(keys.balances, wallet("nobody").address) == {}


# --- unusable answers -------------------------------------------------------------------------
BAD_BODIES: list[tuple[int, Any]] = [
    (502, {"error": "upstream unavailable"}),
    (200, "<html>bad gateway</html>"),
    (200, None),
    (200, []),
    (200, {"code": 13, "message": "out of gas"}),  # a gRPC-gateway error body
]


@pytest.mark.parametrize(
    ("what", "parse", "good"),
    [
        ("account lookup", parse_account, {"account": {"account_number": "7", "sequence": "3"}}),
        ("broadcast", parse_broadcast, {"tx_response": {"code": 0, "raw_log": ""}}),
        ("balances", parse_balances, {"balances": [{"denom": "usei", "amount": "5"}]}),
        ("open orders", parse_orders, {"orders": []}),
        ("book", parse_book, {"seq": 1, "bids": [], "asks": []}),
        ("tx lookup", parse_tx, {"tx_response": {"code": 0, "height": "4"}}),
    ],
)
def test_every_answer_is_read_explicitly(what: str, parse: Any, good: Any) -> None:
    parse(200, good)
    for status, body in [*BAD_BODIES, (500, good)]:
        with pytest.raises(ChainAnswerError) as e:
            parse(status, body)
        assert e.value.what == what and f"{what}: venue answered {status}" in str(e.value)


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_account, {"account": {"account_number": "x", "sequence": "3"}}),
        (parse_account, {"account": {"sequence": "3"}}),
        (parse_broadcast, {"tx_response": {"code": "x"}}),
        (parse_broadcast, {"tx_response": "yes"}),
        (parse_balances, {"balances": [{"denom": "usei"}]}),
        (parse_balances, {"balances": {"usei": 5}}),
        (parse_orders, {"orders": [{"id": "1", "price": "0.5"}]}),
        (parse_orders, {"orders": [{"id": "1", "positionDirection": "LONG", "price": "x"}]}),
        (parse_book, {"seq": 1, "bids": [["x", "1"]], "asks": []}),
        (parse_book, {"seq": 1, "bids": [["0.5"]], "asks": []}),
        (parse_tx, {"tx_response": {"height": "4"}}),
    ],
)
def test_a_malformed_field_is_a_chain_answer_error(parse: Any, body: Any) -> None:
    with pytest.raises(ChainAnswerError):
        parse(200, body)


def test_an_order_without_our_client_id_is_still_an_order() -> None:
    row = {"id": "9", "positionDirection": "SHORT", "price": "0.5", "quantity": "2"}
    for data in ({}, {"data": ""}, {"data": "not json"}, {"data": '{"other": 1}'}):
        (o,) = parse_orders(200, {"orders": [{**row, **data}]})
        assert (o.order_id, o.side, o.cid) == (9, Side.SELL, None)
    (o,) = parse_orders(200, {"orders": [{**row, "data": '{"cid":"x-1","po":1}'}]})
    assert o.cid == "x-1"


def test_a_broadcast_answer_without_a_code_reads_as_refused() -> None:
    assert parse_broadcast(200, {"tx_response": {"raw_log": "?"}}).code == -1


@pytest_asyncio.fixture
async def odd_venue() -> AsyncIterator[str]:
    """A venue on loopback that answers 200 with a body of the wrong shape to everything."""

    async def odd(request: web.Request) -> web.Response:
        return web.json_response({"unexpected": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", odd)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_odd_answers_raise_the_projects_error_from_every_call(odd_venue: str) -> None:
    chain = SeiChain.connect((odd_venue,))
    addr = wallet("trader").address
    try:
        calls = [
            chain.account(addr),
            chain.balances(addr),
            chain.open_orders("c", addr),
            chain.book("c"),
            chain.broadcast(b"\x01\x02"),
            chain.tx("AB"),
        ]
        for call in calls:
            with pytest.raises(ChainAnswerError) as e:
                await call
            assert "venue answered 200" in str(e.value)
    finally:
        await chain.close()


@pytest.mark.parametrize("call", ["cancel_all", "balances", "open_orders"])
async def test_venue_activities_turn_odd_answers_into_venue_answer_errors(
    odd_venue: str, call: str
) -> None:
    from workflows.types import VenueRequest

    act = VenueActivities(_settings(odd_venue), block_wait_s=0)
    with pytest.raises(ApplicationError) as e:
        await ActivityEnvironment().run(getattr(act, call), VenueRequest("SEI/USDC"))
    assert e.value.type == VENUE_ANSWER and not e.value.non_retryable
    assert "venue answered 200" in str(e.value)


async def test_key_activities_turn_odd_answers_into_venue_answer_errors(odd_venue: str) -> None:
    keys = KeyActivities(_settings(odd_venue))
    with pytest.raises(ApplicationError) as e:
        await ActivityEnvironment().run(keys.balances, wallet("trader").address)
    assert e.value.type == VENUE_ANSWER and "balances: venue answered 200" in str(e.value)
