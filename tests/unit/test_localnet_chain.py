"""Localnet state machine without a network: CheckTx (ante) codes, blocks, dex events,
settlement, persistence, and the RPC query helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import pytest
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, SignDoc, TxRaw

from flashmm.domain.instrument import SEI_USDC
from flashmm.domain.orders import Side
from flashmm.localnet import errors
from flashmm.localnet.chain import Block, Chain
from flashmm.localnet.config import MICRO, GenesisAccount, LocalnetConfig, MarketSpec
from flashmm.localnet.dex import DexMarket, Event
from flashmm.localnet.errors import TxError
from flashmm.localnet.rpc import flatten, matches, parse_query, tx_flat
from flashmm.sim.params import MarketParams
from flashmm.venue.base import PlaceOrder
from flashmm.venue.sei import protos
from flashmm.venue.sei.tx import ChainCancel, MarketRef, build_tx, cancel_msg, place_msg, tx_hash
from flashmm.venue.sei.wallet import Wallet, contract_address, dev_mnemonic

CONTRACT = contract_address("SEI/USDC")
SPEC = MarketSpec(SEI_USDC, CONTRACT, "uusdc", "usei", MarketParams(warmup_s=5))
REF = MarketRef(CONTRACT, "uusdc", "usei", SEI_USDC)
GAS_PRICE = LocalnetConfig().min_gas_price

ALICE = Wallet.from_mnemonic(dev_mnemonic("alice"))  # rich
BOB = Wallet.from_mnemonic(dev_mnemonic("bob"))  # little quote
CAROL = Wallet.from_mnemonic(dev_mnemonic("carol"))  # cannot pay fees
MALLORY = Wallet.from_mnemonic(dev_mnemonic("mallory"))  # not in genesis

ALICE_FUNDS = (("usei", 10**12), ("uusdc", 10**12))
BOB_FUNDS = (("usei", 10**9), ("uusdc", 1_000_000))  # 1 USDC
CAROL_FUNDS = (("usei", 1_000), ("uusdc", 10**9))


def make_chain(
    state_file: str | None = None, genesis: tuple[GenesisAccount, ...] | None = None
) -> Chain:
    if genesis is None:
        genesis = (
            GenesisAccount(ALICE.address, ALICE_FUNDS),
            GenesisAccount(BOB.address, BOB_FUNDS),
            GenesisAccount(CAROL.address, CAROL_FUNDS),
        )
    return Chain(LocalnetConfig(markets=(SPEC,), genesis=genesis, state_file=state_file))


def min_fee(gas: int) -> int:
    return int((GAS_PRICE * gas).to_integral_value(rounding=ROUND_CEILING))


class Client:
    """Builds and submits signed transactions for one wallet against a Chain."""

    def __init__(self, chain: Chain, wallet: Wallet) -> None:
        self.chain = chain
        self.wallet = wallet

    @property
    def address(self) -> str:
        return self.wallet.address

    def msgs(
        self,
        places: Iterable[PlaceOrder] = (),
        cancels: Iterable[ChainCancel] = (),
        market: MarketRef = REF,
    ) -> list[Any]:
        places, cancels = list(places), list(cancels)
        out = []
        if cancels:
            out.append(cancel_msg(self.address, market, cancels))
        if places:
            out.append(place_msg(self.address, market, places))
        return out

    def tx(
        self,
        places: Iterable[PlaceOrder] = (),
        cancels: Iterable[ChainCancel] = (),
        *,
        msgs: list[Any] | None = None,
        chain_id: str | None = None,
        account_number: int | None = None,
        sequence: int | None = None,
        gas_limit: int | None = None,
        fee_amount: int | None = None,
        memo: str = "",
    ) -> bytes:
        places, cancels = list(places), list(cancels)
        if msgs is None:
            msgs = self.msgs(places, cancels)
        acct = self.chain.accounts.get(self.address)
        gas = (
            gas_limit
            if gas_limit is not None
            else self.chain.cfg.gas_needed(len(places), len(cancels))
        )
        return build_tx(
            self.wallet,
            msgs,
            chain_id=chain_id if chain_id is not None else self.chain.cfg.chain_id,
            account_number=(
                account_number if account_number is not None else (acct.number if acct else 77)
            ),
            sequence=sequence if sequence is not None else (acct.sequence if acct else 0),
            gas_limit=gas,
            fee_amount=fee_amount if fee_amount is not None else min_fee(gas),
            memo=memo,
        )

    def send(self, places: Iterable[PlaceOrder] = (), cancels: Iterable[ChainCancel] = ()) -> str:
        return self.chain.check_tx(self.tx(places, cancels))


def resign(w: Wallet, tx_bytes: bytes, chain: Chain, mutate: Callable[[Any], None]) -> bytes:
    """Change a tx's AuthInfo and sign it again correctly."""
    raw = TxRaw.FromString(tx_bytes)
    auth = AuthInfo.FromString(raw.auth_info_bytes)
    mutate(auth)
    auth_bytes = auth.SerializeToString()
    doc = SignDoc(
        body_bytes=raw.body_bytes,
        auth_info_bytes=auth_bytes,
        chain_id=chain.cfg.chain_id,
        account_number=chain.accounts[w.address].number,
    )
    sig = w.sign(doc.SerializeToString())
    return bytes(
        TxRaw(
            body_bytes=raw.body_bytes, auth_info_bytes=auth_bytes, signatures=[sig]
        ).SerializeToString()
    )


def attrs(e: Event) -> dict[str, str]:
    return {a["key"]: a["value"] for a in e["attributes"]}


def of_type(events: Iterable[Event], kind: str, account: str | None = None) -> list[dict[str, str]]:
    out = [attrs(e) for e in events if e["type"] == kind]
    return [a for a in out if account is None or a.get("account") == account]


def market(chain: Chain) -> DexMarket:
    return chain.markets[CONTRACT]


def quiet_block(chain: Chain) -> Block:
    """A block at the market's current time: no background events, only the mempool."""
    return chain.produce_block(market(chain).sim.time)


def state(chain: Chain) -> dict[str, tuple[int, dict[str, int]]]:
    return {a.address: (a.sequence, dict(a.balances)) for a in chain.accounts.values()}


def ticks(price: str) -> int:
    return int(Decimal(price) / SEI_USDC.tick_size)


def micro(value: str) -> int:
    d = Decimal(value) * MICRO
    assert d == d.to_integral_value()
    return int(d)


@pytest.fixture
def chain() -> Chain:
    return make_chain()


@pytest.fixture
def alice(chain: Chain) -> Client:
    return Client(chain, ALICE)


# --- genesis --------------------------------------------------------------------------------


def test_genesis_accounts(chain: Chain) -> None:
    a = chain.accounts[ALICE.address]
    assert (a.sequence, a.pubkey, a.balances) == (0, None, dict(ALICE_FUNDS))
    numbers = sorted(x.number for x in chain.accounts.values())
    assert numbers == [1, 2, 3]  # 0 is the background market
    assert chain.by_number[a.number] is a
    bb, ba = market(chain).exchange.book.best_bid, market(chain).exchange.book.best_ask
    assert 0 < bb < ba  # the background book is two-sided after warmup


def test_genesis_rejects_invalid_address() -> None:
    with pytest.raises(ValueError, match="invalid address"):
        make_chain(genesis=(GenesisAccount("cosmos1xyz", ()),))


# --- CheckTx: accepted ----------------------------------------------------------------------


def test_check_tx_accepts_charges_fee_and_bumps_sequence(chain: Chain, alice: Client) -> None:
    gas = chain.cfg.gas_needed(1, 0)
    fee = min_fee(gas) + 123  # pays more than the minimum: all of it is charged
    raw = alice.tx([PlaceOrder("a1", Side.BUY, 4000, 5)], fee_amount=fee)
    h = chain.check_tx(raw)
    assert h == tx_hash(raw)
    acct = chain.accounts[ALICE.address]
    assert acct.sequence == 1
    assert acct.balances == {"usei": 10**12 - fee, "uusdc": 10**12}
    assert acct.pubkey == ALICE.public_key_bytes
    assert [m[0] for m in chain.mempool] == [h]

    # the next sequence is accepted into the same block
    h2 = alice.send([PlaceOrder("a2", Side.BUY, 4001, 5)])
    assert chain.accounts[ALICE.address].sequence == 2

    block = quiet_block(chain)
    assert block.height == 1
    assert [r.txhash for r in block.txs] == [h, h2]
    r = block.txs[0]
    assert (r.code, r.index, r.sender, r.height) == (0, 0, ALICE.address, 1)
    assert (r.gas_wanted, r.gas_used) == (gas, gas)
    assert chain.results[h] is r
    assert chain.mempool == []


# --- CheckTx: rejected ----------------------------------------------------------------------

ONE = [PlaceOrder("r1", Side.BUY, 4000, 5)]


def _foreign_fee(denom_coins: list[tuple[str, int]]) -> Callable[[Any], None]:
    def mutate(auth: Any) -> None:
        del auth.fee.amount[:]
        auth.fee.amount.extend([Coin(denom=d, amount=str(a)) for d, a in denom_coins])

    return mutate


def _mutated_place(mutate: Callable[[Any], None], market_ref: MarketRef = REF) -> Callable:
    def make(c: Chain) -> bytes:
        cl = Client(c, ALICE)
        msgs = cl.msgs(ONE, market=market_ref)
        mutate(msgs[0].orders[0])
        return cl.tx(ONE, msgs=msgs)

    return make


def _nothing(_: Any) -> None:
    pass


def _set(field: str, value: Any) -> Callable[[Any], None]:
    def mutate(o: Any) -> None:
        setattr(o, field, value)

    return mutate


def _bob_signs_for_alice(c: Chain) -> bytes:
    msgs = Client(c, ALICE).msgs(ONE)  # creator is alice
    gas = c.cfg.gas_needed(1, 0)
    return build_tx(
        BOB,
        msgs,
        chain_id=c.cfg.chain_id,
        account_number=c.accounts[ALICE.address].number,
        sequence=0,
        gas_limit=gas,
        fee_amount=min_fee(gas),
    )


NEED_1 = LocalnetConfig().gas_needed(1, 0)

REJECTIONS = [
    pytest.param(
        lambda c: Client(c, ALICE).tx(ONE, sequence=1),
        errors.WRONG_SEQUENCE,
        "sdk",
        "account sequence mismatch, expected 0, got 1",
        id="wrong-sequence",
    ),
    pytest.param(
        lambda c: Client(c, ALICE).tx(ONE, chain_id="other-chain-1"),
        errors.UNAUTHORIZED,
        "sdk",
        "signature verification failed",
        id="wrong-chain-id",
    ),
    pytest.param(
        lambda c: Client(c, ALICE).tx(ONE, account_number=2),
        errors.UNAUTHORIZED,
        "sdk",
        "signature verification failed",
        id="wrong-account-number",
    ),
    pytest.param(
        lambda c: Client(c, ALICE).tx(ONE, fee_amount=min_fee(NEED_1) - 1),
        errors.INSUFFICIENT_FEE,
        "sdk",
        f"insufficient fees; got: {min_fee(NEED_1) - 1}usei required: {min_fee(NEED_1)}usei",
        id="fee-too-low",
    ),
    pytest.param(
        lambda c: resign(
            ALICE, Client(c, ALICE).tx(ONE), c, _foreign_fee([("uusdc", 10 * NEED_1)])
        ),
        errors.INSUFFICIENT_FEE,
        "sdk",
        "insufficient fees",
        id="wrong-fee-denom",
    ),
    pytest.param(
        lambda c: resign(
            ALICE,
            Client(c, ALICE).tx(ONE),
            c,
            _foreign_fee([("usei", 10 * NEED_1), ("uusdc", 1)]),
        ),
        errors.INSUFFICIENT_FEE,
        "sdk",
        "insufficient fees",
        id="extra-fee-denom",
    ),
    pytest.param(
        lambda c: Client(c, ALICE).tx(ONE, gas_limit=NEED_1 - 1, fee_amount=10 * NEED_1),
        errors.OUT_OF_GAS,
        "sdk",
        f"out of gas: gasWanted: {NEED_1 - 1}, gasUsed: {NEED_1}",
        id="gas-below-need",
    ),
    pytest.param(
        lambda c: Client(c, MALLORY).tx(ONE),
        errors.UNKNOWN_ADDRESS,
        "sdk",
        f"account {MALLORY.address} not found",
        id="unknown-signer",
    ),
    pytest.param(
        _bob_signs_for_alice,
        errors.INVALID_PUBKEY,
        "sdk",
        "public key does not match the signer address",
        id="key-of-another-account",
    ),
    pytest.param(
        lambda c: Client(c, CAROL).tx(ONE),
        errors.INSUFFICIENT_FUNDS,
        "sdk",
        "insufficient funds to pay fee",
        id="cannot-pay-fee",
    ),
    pytest.param(
        lambda c: Client(c, ALICE).tx(ONE, memo="x" * (c.cfg.max_tx_bytes + 1)),
        errors.TX_TOO_LARGE,
        "sdk",
        "tx too large",
        id="too-large",
    ),
    pytest.param(
        lambda c: b"\x0a\xff",
        errors.TX_DECODE,
        "sdk",
        "cannot decode transaction",
        id="undecodable",
    ),
    pytest.param(
        lambda c: Client(c, ALICE).tx(msgs=[]),
        errors.INVALID_REQUEST,
        "sdk",
        "transaction has no messages",
        id="no-messages",
    ),
    pytest.param(
        _mutated_place(
            _nothing, MarketRef(contract_address("ATOM/USDC"), "uusdc", "usei", SEI_USDC)
        ),
        errors.INVALID_REQUEST,
        "dex",
        f"unknown contract {contract_address('ATOM/USDC')}",
        id="unknown-contract",
    ),
    pytest.param(
        _mutated_place(_set("price", protos.to_sdk_dec("0.49995"))),
        errors.INVALID_REQUEST,
        "dex",
        "not a positive multiple of tick",
        id="off-grid-price",
    ),
    pytest.param(
        _mutated_place(_set("quantity", protos.to_sdk_dec("2.5"))),
        errors.INVALID_REQUEST,
        "dex",
        "not a positive multiple of lot",
        id="off-grid-quantity",
    ),
    pytest.param(
        _mutated_place(_set("orderType", protos.MARKET)),
        errors.INVALID_REQUEST,
        "dex",
        "only LIMIT orders are supported",
        id="market-order",
    ),
    pytest.param(
        _mutated_place(_set("priceDenom", "uatom")),
        errors.INVALID_REQUEST,
        "dex",
        "denoms do not match the market",
        id="wrong-market-denom",
    ),
    pytest.param(
        _mutated_place(_set("data", "not json")),
        errors.INVALID_REQUEST,
        "dex",
        "Order.data",
        id="bad-order-data",
    ),
]


@pytest.mark.parametrize(("make", "code", "codespace", "log"), REJECTIONS)
def test_check_tx_rejects_with_cosmos_code(
    chain: Chain, make: Callable[[Chain], bytes], code: int, codespace: str, log: str
) -> None:
    raw = make(chain)
    before = state(chain)
    with pytest.raises(TxError) as ei:
        chain.check_tx(raw)
    assert (ei.value.code, ei.value.codespace) == (code, codespace)
    assert log in ei.value.log
    assert state(chain) == before  # no fee charged, no sequence bump
    assert chain.mempool == []
    # and the account can still transact at its current sequence
    assert Client(chain, ALICE).send([PlaceOrder("after", Side.BUY, 4000, 1)])
    assert chain.accounts[ALICE.address].sequence == before[ALICE.address][0] + 1


def test_duplicate_tx_bytes_rejected_in_mempool_and_after_block(
    chain: Chain, alice: Client
) -> None:
    raw = alice.tx(ONE)
    chain.check_tx(raw)
    after_first = state(chain)
    for _ in range(2):
        with pytest.raises(TxError) as ei:
            chain.check_tx(raw)
        assert ei.value.code == 19
        assert "already exists" in ei.value.log
        assert state(chain) == after_first
        assert len(chain.mempool) <= 1
        quiet_block(chain)  # second round: the tx is now in a block, still a duplicate
    assert len(of_type(chain.results[tx_hash(raw)].events, "dex_order_placed")) == 1


def test_mempool_full() -> None:
    chain = Chain(
        LocalnetConfig(
            markets=(SPEC,), genesis=(GenesisAccount(ALICE.address, ALICE_FUNDS),), max_mempool=1
        )
    )
    cl = Client(chain, ALICE)
    cl.send(ONE)
    before = state(chain)
    with pytest.raises(TxError) as ei:
        cl.send([PlaceOrder("r2", Side.BUY, 4000, 5)])
    assert ei.value.code == errors.MEMPOOL_FULL
    assert state(chain) == before


def test_non_integer_fee_amount_is_a_tx_error(chain: Chain, alice: Client) -> None:
    def mutate(auth: Any) -> None:
        auth.fee.amount[0].amount = "1.5"

    raw = resign(ALICE, alice.tx(ONE), chain, mutate)
    before = state(chain)
    with pytest.raises(TxError):
        chain.check_tx(raw)
    assert state(chain) == before


def test_malformed_public_key_is_a_tx_error(chain: Chain, alice: Client) -> None:
    def mutate(auth: Any) -> None:
        auth.signer_infos[0].public_key.value = PubKey(key=b"\x05" * 33).SerializeToString()

    raw = resign(ALICE, alice.tx(ONE), chain, mutate)
    with pytest.raises(TxError) as ei:
        chain.check_tx(raw)
    assert ei.value.code == errors.INVALID_PUBKEY


# --- blocks: placing, rejecting, cancelling -------------------------------------------------


def test_resting_post_only_order_is_visible_everywhere(chain: Chain, alice: Client) -> None:
    m = market(chain)
    bb = m.exchange.book.best_bid
    price = bb - 3
    before_lots = m.exchange.book.bids.get(price, 0)
    seq0 = m.book_seq
    alice.send([PlaceOrder("rest-1", Side.BUY, price, 7)])
    block = quiet_block(chain)

    (tx,) = block.txs
    assert of_type(tx.events, "message") == [{"sender": ALICE.address, "module": "dex"}]
    (placed,) = of_type(tx.events, "dex_order_placed")
    assert placed["client_id"] == "rest-1"
    assert placed["side"] == "buy"
    assert placed["price"] == str(SEI_USDC.ticks_to_price(price))
    assert placed["quantity"] == "7"
    assert placed["contract"] == CONTRACT
    assert of_type(tx.events, "dex_order_filled") == []

    (oo,) = chain.open_orders(CONTRACT, ALICE.address)
    assert oo["id"] == placed["order_id"]
    assert (oo["price"], oo["quantity"], oo["positionDirection"]) == (placed["price"], "7", "LONG")
    assert json.loads(oo["data"])["cid"] == "rest-1"
    assert chain.open_orders(CONTRACT, BOB.address) == []

    snap = m.snapshot()
    assert [placed["price"], str(before_lots + 7)] in snap["bids"]
    assert snap["seq"] == seq0 + 1

    (book,) = of_type(block.end_events, "dex_book")
    assert book["contract"] == CONTRACT
    assert int(book["seq"]) == seq0 + 1
    assert [1, placed["price"], str(before_lots + 7)] in json.loads(book["levels"])

    # nothing changed: no book event; the next change gets the next sequence
    assert of_type(quiet_block(chain).end_events, "dex_book") == []
    alice.send(cancels=[ChainCancel(int(placed["order_id"]), Side.BUY, price)])
    (book2,) = of_type(quiet_block(chain).end_events, "dex_book")
    assert int(book2["seq"]) == seq0 + 2
    assert [1, placed["price"], str(before_lots)] in json.loads(book2["levels"])


def test_post_only_that_would_cross_is_rejected(chain: Chain, alice: Client) -> None:
    m = market(chain)
    ba, bb = m.exchange.book.best_ask, m.exchange.book.best_bid
    book_before = m.snapshot()
    quote_before = chain.accounts[ALICE.address].balances["uusdc"]
    alice.send([PlaceOrder("x-buy", Side.BUY, ba, 5), PlaceOrder("x-sell", Side.SELL, bb, 5)])
    (tx,) = quiet_block(chain).txs
    rejected = of_type(tx.events, "dex_order_rejected")
    assert [r["client_id"] for r in rejected] == ["x-buy", "x-sell"]
    assert all(r["reason"] == "post-only order would cross" for r in rejected)
    assert of_type(tx.events, "dex_order_placed") == []
    assert of_type(tx.events, "dex_trade") == []
    assert chain.open_orders(CONTRACT, ALICE.address) == []
    assert m.snapshot() == book_before
    assert chain.accounts[ALICE.address].balances["uusdc"] == quote_before


def test_duplicate_client_id_is_rejected(chain: Chain, alice: Client) -> None:
    price = market(chain).exchange.book.best_bid - 5
    alice.send([PlaceOrder("dup", Side.BUY, price, 1)])
    quiet_block(chain)
    alice.send([PlaceOrder("dup", Side.BUY, price - 1, 2)])
    (tx,) = quiet_block(chain).txs
    (rej,) = of_type(tx.events, "dex_order_rejected")
    assert (rej["client_id"], rej["reason"]) == ("dup", "duplicate client order id")
    (oo,) = chain.open_orders(CONTRACT, ALICE.address)
    assert oo["quantity"] == "1"

    # the same client id within one tx: the first is placed, the second refused
    alice.send([PlaceOrder("twin", Side.BUY, price, 1), PlaceOrder("twin", Side.BUY, price, 1)])
    (tx,) = quiet_block(chain).txs
    assert [p["client_id"] for p in of_type(tx.events, "dex_order_placed")] == ["twin"]
    assert [r["client_id"] for r in of_type(tx.events, "dex_order_rejected")] == ["twin"]


def test_buy_beyond_quote_balance_is_rejected(chain: Chain) -> None:
    bob = Client(chain, BOB)  # 1 USDC = 1_000_000 uusdc
    price = 4000  # 0.4 USDC: 2 lots need 800_000 uusdc
    bob.send([PlaceOrder("b-ok", Side.BUY, price, 2)])
    (tx,) = quiet_block(chain).txs
    assert len(of_type(tx.events, "dex_order_placed")) == 1
    # 1 more lot: 400_000 more, but open orders already need 800_000 of 1_000_000
    bob.send([PlaceOrder("b-too-much", Side.BUY, price, 1)])
    (tx,) = quiet_block(chain).txs
    (rej,) = of_type(tx.events, "dex_order_rejected")
    assert rej["client_id"] == "b-too-much"
    assert "insufficient" in rej["reason"]
    assert "uusdc" in rej["reason"]
    # a sell needs base, which bob has
    bob.send([PlaceOrder("b-sell", Side.SELL, market(chain).exchange.book.best_ask + 5, 100)])
    (tx,) = quiet_block(chain).txs
    assert len(of_type(tx.events, "dex_order_placed")) == 1
    # but not more base than the balance (10**9 usei = 1000 SEI, less fees)
    bob.send([PlaceOrder("b-sell-big", Side.SELL, market(chain).exchange.book.best_ask + 5, 1000)])
    (tx,) = quiet_block(chain).txs
    (rej,) = of_type(tx.events, "dex_order_rejected")
    assert "insufficient usei" in rej["reason"]
    assert chain.accounts[BOB.address].balances["uusdc"] == 1_000_000


def test_cancel_removes_order_and_unknown_cancel_is_rejected(chain: Chain, alice: Client) -> None:
    m = market(chain)
    price = m.exchange.book.best_bid - 2
    level_before = m.exchange.book.bids.get(price, 0)
    alice.send([PlaceOrder("c1", Side.BUY, price, 9)])
    (tx,) = quiet_block(chain).txs
    oid = int(of_type(tx.events, "dex_order_placed")[0]["order_id"])
    assert m.exchange.book.bids[price] == level_before + 9

    alice.send(cancels=[ChainCancel(oid, Side.BUY, price), ChainCancel(999_999, Side.BUY, price)])
    (tx,) = quiet_block(chain).txs
    (cancelled,) = of_type(tx.events, "dex_order_cancelled")
    assert (cancelled["order_id"], cancelled["client_id"], cancelled["quantity"]) == (
        str(oid),
        "c1",
        "9",
    )
    (crej,) = of_type(tx.events, "dex_cancel_rejected")
    assert (crej["order_id"], crej["reason"]) == ("999999", "order not found")
    assert chain.open_orders(CONTRACT, ALICE.address) == []
    assert m.exchange.book.bids.get(price, 0) == level_before

    # cancelling it again, or someone else's order, is rejected too
    alice.send(cancels=[ChainCancel(oid, Side.BUY, price)])
    (tx,) = quiet_block(chain).txs
    assert len(of_type(tx.events, "dex_cancel_rejected")) == 1
    alice.send([PlaceOrder("c2", Side.BUY, price, 1)])
    (tx,) = quiet_block(chain).txs
    oid2 = int(of_type(tx.events, "dex_order_placed")[0]["order_id"])
    Client(chain, BOB).send(cancels=[ChainCancel(oid2, Side.BUY, price)])
    (tx,) = quiet_block(chain).txs
    assert of_type(tx.events, "dex_order_cancelled") == []
    assert len(of_type(tx.events, "dex_cancel_rejected")) == 1
    assert len(chain.open_orders(CONTRACT, ALICE.address)) == 1


# --- settlement -----------------------------------------------------------------------------


def _expected_deltas(fills: list[dict[str, str]]) -> tuple[int, int]:
    """(Δ usei, Δ uusdc) from fill events: base ± qty·lot·1e6, quote ∓ price·qty·1e6 − fee."""
    d_base = d_quote = 0
    for f in fills:
        sign = 1 if f["side"] == "buy" else -1
        qty_micro = micro(f["quantity"])  # lot size 1
        notional = Decimal(f["price"]) * Decimal(f["quantity"]) * MICRO
        assert notional == notional.to_integral_value()
        d_base += sign * qty_micro
        d_quote += -sign * int(notional) - micro(f["fee"])
    return d_base, d_quote


def test_crossing_order_takes_liquidity_and_settles_exactly(chain: Chain, alice: Client) -> None:
    m = market(chain)
    ba = m.exchange.book.best_ask
    limit = ba + 20
    asks_within = sum(q for p, q in m.exchange.book.asks.items() if p <= limit)
    lots = 2000
    alice.send([PlaceOrder("take-1", Side.BUY, limit, lots, post_only=False)])
    before = dict(chain.accounts[ALICE.address].balances)  # after the gas fee
    (tx,) = quiet_block(chain).txs
    after = chain.accounts[ALICE.address].balances

    fills = of_type(tx.events, "dex_order_filled", ALICE.address)
    trades = of_type(tx.events, "dex_trade")
    assert len(fills) >= 2  # it walks the book
    assert len(trades) == len(fills)
    filled = sum(int(f["quantity"]) for f in fills)
    assert filled == min(lots, asks_within)
    for f, t in zip(fills, trades, strict=True):
        assert (f["price"], f["quantity"]) == (t["price"], t["quantity"])
        assert t["aggressor"] == "buy"
        assert f["liquidity"] == "taker"
        assert f["client_id"] == "take-1"
        assert f["side"] == "buy"
        assert ba <= ticks(f["price"]) <= limit
        notional = Decimal(f["price"]) * Decimal(f["quantity"]) * MICRO
        fee = micro(f["fee"])
        assert fee > 0
        assert abs(fee - notional * SEI_USDC.taker_fee_bps / 10_000) <= Decimal("0.5")
    prices = [ticks(f["price"]) for f in fills]
    assert prices == sorted(prices)  # best price first

    d_base, d_quote = _expected_deltas(fills)
    assert d_base == filled * MICRO
    assert after["usei"] - before["usei"] == d_base
    assert after["uusdc"] - before["uusdc"] == d_quote
    assert d_quote < -filled * ticks(fills[0]["price"]) * 100  # paid at least best ask + fees
    resting = chain.open_orders(CONTRACT, ALICE.address)
    assert sum(int(o["quantity"]) for o in resting) == lots - filled
    assert m.exchange.book.best_ask > ba  # liquidity was taken


def test_taker_fill_remaining_counts_down(chain: Chain, alice: Client) -> None:
    m = market(chain)
    lots = 2000
    alice.send([PlaceOrder("walk", Side.BUY, m.exchange.book.best_ask + 20, lots, post_only=False)])
    (tx,) = quiet_block(chain).txs
    fills = of_type(tx.events, "dex_order_filled", ALICE.address)
    assert len(fills) >= 2
    left = lots
    for f in fills:
        left -= int(f["quantity"])
        assert int(f["remaining"]) == left


def test_taker_fill_never_leaves_a_negative_balance() -> None:
    probe = make_chain(genesis=())
    ba = market(probe).exchange.book.best_ask
    lots = 10
    assert market(probe).exchange.book.asks[ba] >= lots  # fills entirely at ba
    chain = make_chain(
        genesis=(GenesisAccount(BOB.address, (("usei", 10**9), ("uusdc", ba * lots * 100))),)
    )
    Client(chain, BOB).send([PlaceOrder("all-in", Side.BUY, ba, lots, post_only=False)])
    (tx,) = quiet_block(chain).txs
    placed = of_type(tx.events, "dex_order_placed")
    fills = of_type(tx.events, "dex_order_filled")
    # either refused for insufficient funds, or filled without going below zero
    assert placed == [] or fills
    assert all(v >= 0 for v in chain.accounts[BOB.address].balances.values())


def test_background_fill_of_resting_order_pays_maker_rebate(chain: Chain, alice: Client) -> None:
    m = market(chain)
    bb, ba = m.exchange.book.best_bid, m.exchange.book.best_ask
    price = bb + 1 if ba - bb > 1 else bb  # best bid: first in line for market sells
    lots = 20
    alice.send([PlaceOrder("maker-1", Side.BUY, price, lots)])
    (tx,) = quiet_block(chain).txs
    oid = of_type(tx.events, "dex_order_placed")[0]["order_id"]
    before = dict(chain.accounts[ALICE.address].balances)

    fills: list[dict[str, str]] = []
    t = m.sim.time
    for _ in range(500):  # at most 200 simulated seconds of 0.4 s blocks
        t += 0.4
        block = chain.produce_block(t)
        assert block.txs == []
        fills += of_type(block.begin_events, "dex_order_filled", ALICE.address)
        if not chain.open_orders(CONTRACT, ALICE.address):
            break
    assert fills, "the background market never traded with the resting order"
    assert chain.open_orders(CONTRACT, ALICE.address) == []

    left = lots
    for f in fills:
        assert f["liquidity"] == "maker"
        assert (f["order_id"], f["client_id"], f["side"]) == (oid, "maker-1", "buy")
        assert ticks(f["price"]) == price  # a maker trades at its own price
        left -= int(f["quantity"])
        assert int(f["remaining"]) == left
        notional = Decimal(f["price"]) * Decimal(f["quantity"]) * MICRO
        fee = micro(f["fee"])
        assert fee < 0  # rebate
        assert abs(fee - notional * SEI_USDC.maker_fee_bps / 10_000) <= Decimal("0.5")
    assert left == 0
    assert len({f["fill_id"] for f in fills}) == len(fills)

    after = chain.accounts[ALICE.address].balances
    d_base, d_quote = _expected_deltas(fills)
    assert after["usei"] - before["usei"] == d_base == lots * MICRO
    assert after["uusdc"] - before["uusdc"] == d_quote
    assert d_quote > -lots * price * 100  # the rebate makes it cheaper than the notional


# --- persistence ----------------------------------------------------------------------------


def test_state_file_restores_accounts_and_forgets_orders(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    c1 = make_chain(state_file=path)
    a1 = Client(c1, ALICE)
    price = market(c1).exchange.book.best_bid - 4
    a1.send([PlaceOrder("p1", Side.BUY, price, 3)])
    quiet_block(c1)
    a1.send([PlaceOrder("p2", Side.BUY, price - 1, 2)])
    quiet_block(c1)
    assert len(c1.open_orders(CONTRACT, ALICE.address)) == 2
    assert Path(path).exists()
    saved = state(c1)
    assert saved[ALICE.address][0] == 2

    c2 = make_chain(state_file=path)
    assert state(c2) == saved
    assert c2.height == c1.height == 2
    acct = c2.accounts[ALICE.address]
    assert acct.number == c1.accounts[ALICE.address].number
    assert acct.pubkey == ALICE.public_key_bytes
    assert c2.by_number[acct.number] is acct
    assert c2.open_orders(CONTRACT, ALICE.address) == []

    # the restored sequence is enforced
    with pytest.raises(TxError) as ei:
        c2.check_tx(Client(c2, ALICE).tx(ONE, sequence=0))
    assert ei.value.code == errors.WRONG_SEQUENCE
    # client ids placed before the restart stay used (a retry is not placed twice)
    a2 = Client(c2, ALICE)
    a2.send([PlaceOrder("p1", Side.BUY, price, 3), PlaceOrder("p3", Side.BUY, price, 3)])
    (tx,) = quiet_block(c2).txs
    assert [r["client_id"] for r in of_type(tx.events, "dex_order_rejected")] == ["p1"]
    assert [p["client_id"] for p in of_type(tx.events, "dex_order_placed")] == ["p3"]


def test_without_state_file_nothing_is_restored() -> None:
    c1 = make_chain()
    Client(c1, ALICE).send(ONE)
    quiet_block(c1)
    c2 = make_chain()
    assert c2.accounts[ALICE.address].sequence == 0
    assert c2.height == 0
    assert c2.accounts[ALICE.address].balances == dict(ALICE_FUNDS)


# --- RPC query helpers ----------------------------------------------------------------------


def test_parse_query_accepts_and_conditions() -> None:
    q = f"tm.event='Tx' AND message.sender='{ALICE.address}'"
    assert parse_query(q) == [("tm.event", "Tx"), ("message.sender", ALICE.address)]
    assert parse_query("tm.event='NewBlock'") == [("tm.event", "NewBlock")]
    assert parse_query("  tm.event = 'Tx'   AND  tx.height='5' ") == [
        ("tm.event", "Tx"),
        ("tx.height", "5"),
    ]
    assert parse_query("a=''") == [("a", "")]


@pytest.mark.parametrize(
    "q",
    [
        "",
        "tm.event=Tx",
        'tm.event="Tx"',
        "tm.event='Tx' OR message.sender='x'",
        "tm.event='Tx' and message.sender='x'",
        "tm.event='Tx' AND",
        "AND tm.event='Tx'",
        "tm.event='Tx' AND AND a='b'",
        "tm.event>'Tx'",
        "tm event='Tx'",
        "tm.event='Tx'; drop",
        "a='" + "x" * 600 + "'",
    ],
)
def test_parse_query_rejects_junk(q: str) -> None:
    with pytest.raises(ValueError):
        parse_query(q)


def test_flatten_and_matches_select_the_right_events(chain: Chain, alice: Client) -> None:
    price = market(chain).exchange.book.best_bid - 3
    alice.send([PlaceOrder("q1", Side.BUY, price, 1)])
    Client(chain, BOB).send([PlaceOrder("q2", Side.BUY, price, 1)])
    block = quiet_block(chain)
    alice_tx, bob_tx = block.txs

    base = {"tm.event": ["Tx"]}
    flat = flatten(alice_tx.events, base)
    assert base == {"tm.event": ["Tx"]}  # not mutated
    assert flat["tm.event"] == ["Tx"]
    assert flat["message.sender"] == [ALICE.address]
    assert flat["dex_order_placed.client_id"] == ["q1"]
    assert flat["dex_order_placed.contract"] == [CONTRACT]

    two = flatten([{"type": "t", "attributes": [{"key": "k", "value": "1"}]}] * 2, {})
    assert two == {"t.k": ["1", "1"]}

    mine = parse_query(f"tm.event='Tx' AND message.sender='{ALICE.address}'")
    assert matches(mine, tx_flat(alice_tx))
    assert not matches(mine, tx_flat(bob_tx))
    assert matches(parse_query(f"tx.hash='{bob_tx.txhash}'"), tx_flat(bob_tx))
    assert not matches(parse_query(f"tx.hash='{bob_tx.txhash}'"), tx_flat(alice_tx))
    assert matches(parse_query("dex_order_placed.client_id='q2'"), tx_flat(bob_tx))
    assert not matches(parse_query("tm.event='NewBlock'"), tx_flat(alice_tx))
    assert not matches(parse_query("no.such='key'"), tx_flat(alice_tx))
    assert matches([], tx_flat(alice_tx))  # no conditions: everything
