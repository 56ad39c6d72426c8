"""Sei protocol layer: wallet derivation, sdk.Dec encoding, dex messages and signed txs."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import bech32
import pytest
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PublicKey
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from cosmpy.protos.cosmos.tx.signing.v1beta1.signing_pb2 import SignMode
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import SignDoc, TxRaw

from flashmm.domain.instrument import SEI_USDC
from flashmm.domain.orders import Side
from flashmm.venue.base import PlaceOrder
from flashmm.venue.sei import protos
from flashmm.venue.sei.tx import (
    FEE_DENOM,
    ChainCancel,
    MarketRef,
    build_tx,
    cancel_msg,
    decode_tx,
    order_data,
    order_fields,
    parse_order_data,
    place_msg,
    tx_hash,
)
from flashmm.venue.sei.wallet import (
    HD_PATH,
    Wallet,
    address_of,
    contract_address,
    dev_mnemonic,
    valid_address,
)

ABANDON = "abandon " * 11 + "about"
ABANDON_SEI = "sei19rl4cm2hmr8afy4kldpxz3fka4jguq0a3vute5"
ABANDON_COSMOS = "cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4"
SEI_USDC_CONTRACT = "sei12xntaxx3gwje93h9kcf4qs2hrzcw28a4qsk90n"

# Golden transaction. secp256k1 signing here is deterministic (RFC 6979 nonces, low-S
# canonical form), so the same key, messages, chain id, account number, sequence, gas and fee
# must always give the same TxRaw bytes. These constants were computed once from the inputs in
# ``_golden_tx`` and pasted here: any change to message encoding, SignDoc layout, key
# derivation or the signing scheme changes them.
GOLDEN_TX_HASH = "B1E47A1F0C260DFE24A2B0A1C026CAC045D956B8FDD1DA0E040566755A7D058B"
GOLDEN_SIGNATURE_HEX = (
    "46d911b9b4f5f17ef81061600785f251ec0370923fbd5fcb7e0082229e004643"
    "4ebae53545bd7eca038e135623afb0c6dd6c9113aba22617f4856d9fb537b9de"
)
GOLDEN_CHAIN_ID = "sei-test-1"
GOLDEN_ACCOUNT_NUMBER = 5
GOLDEN_SEQUENCE = 3
GOLDEN_GAS = 200_000
GOLDEN_FEE = 4_000

# order of the secp256k1 group
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return Wallet.from_mnemonic(ABANDON)


@pytest.fixture(scope="module")
def market() -> MarketRef:
    return MarketRef(contract_address("SEI/USDC"), "uusdc", "usei", SEI_USDC)


def _golden_msgs(w: Wallet, m: MarketRef) -> list[object]:
    return [
        cancel_msg(w.address, m, [ChainCancel(7, Side.BUY, 4999)]),
        place_msg(
            w.address,
            m,
            [
                PlaceOrder("b1", Side.BUY, 15000, 10),
                PlaceOrder("s1", Side.SELL, 5000, 3, post_only=False),
            ],
        ),
    ]


def _golden_tx(w: Wallet, m: MarketRef, **over: object) -> bytes:
    kw: dict[str, object] = {
        "chain_id": GOLDEN_CHAIN_ID,
        "account_number": GOLDEN_ACCOUNT_NUMBER,
        "sequence": GOLDEN_SEQUENCE,
        "gas_limit": GOLDEN_GAS,
        "fee_amount": GOLDEN_FEE,
    }
    kw.update(over)
    return build_tx(w, _golden_msgs(w, m), **kw)  # type: ignore[arg-type]


# --- wallet --------------------------------------------------------------------------------


def test_abandon_mnemonic_gives_the_known_address(wallet: Wallet) -> None:
    assert HD_PATH == "m/44'/118'/0'/0/0"
    assert wallet.address == ABANDON_SEI
    assert address_of(wallet.public_key_bytes) == ABANDON_SEI
    assert address_of(wallet.public_key) == ABANDON_SEI
    assert len(wallet.public_key_bytes) == 33  # compressed secp256k1 point
    assert wallet.public_key_bytes[0] in (2, 3)


def test_sei_and_cosmos_forms_share_the_same_20_bytes() -> None:
    sei_hrp, sei_data = bech32.bech32_decode(ABANDON_SEI)
    cosmos_hrp, cosmos_data = bech32.bech32_decode(ABANDON_COSMOS)
    assert (sei_hrp, cosmos_hrp) == ("sei", "cosmos")
    assert sei_data is not None
    assert sei_data == cosmos_data
    raw = bytes(Address(ABANDON_COSMOS))
    assert len(raw) == 20
    assert bytes(Address(ABANDON_SEI)) == raw
    assert str(Address(raw, prefix="sei")) == ABANDON_SEI


def test_other_derivation_path_or_mnemonic_gives_another_address(wallet: Wallet) -> None:
    other_path = Wallet.from_mnemonic(ABANDON, path="m/44'/118'/0'/0/1")
    assert other_path.address != wallet.address
    assert valid_address(other_path.address)
    assert Wallet.from_mnemonic(dev_mnemonic("alice")).address != wallet.address


def test_wallet_repr_hides_key_material(wallet: Wallet) -> None:
    text = repr(wallet)
    assert ABANDON_SEI in text
    assert wallet.key.private_key_hex not in text
    assert "key=" not in text


def test_dev_mnemonic_is_reproducible_and_distinct() -> None:
    a1, a2, b = dev_mnemonic("alice"), dev_mnemonic("alice"), dev_mnemonic("bob")
    assert a1 == a2
    assert a1 != b
    assert len(a1.split()) == 12
    assert valid_address(Wallet.from_mnemonic(a1).address)


def test_valid_address() -> None:
    assert valid_address(ABANDON_SEI)
    assert not valid_address(ABANDON_COSMOS)  # right checksum, wrong prefix
    assert not valid_address(ABANDON_SEI[:-1] + "6")  # checksum broken
    assert not valid_address("")
    assert not valid_address("sei1")
    assert not valid_address("not an address")
    # a 32-byte (contract-style) payload is not a 20-byte account address
    long_addr = bech32.bech32_encode("sei", bech32.convertbits(b"\x01" * 32, 8, 5))
    assert bech32.bech32_decode(long_addr)[0] == "sei"
    assert not valid_address(long_addr)


def test_contract_address_is_stable_and_valid() -> None:
    c = contract_address("SEI/USDC")
    assert c == SEI_USDC_CONTRACT
    assert c == contract_address("SEI/USDC")
    assert valid_address(c)
    expected = str(Address(hashlib.sha256(b"flashmm-dex/SEI/USDC").digest()[:20], prefix="sei"))
    assert c == expected
    others = {contract_address(s) for s in ("ATOM/USDC", "ETH/USDC", "sei/usdc")}
    assert c not in others
    assert len(others) == 3
    assert all(valid_address(o) for o in others)


# --- sdk.Dec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("1.5"), "1500000000000000000"),
        (Decimal("0.5000"), "500000000000000000"),
        (Decimal("0.0001"), "100000000000000"),
        (Decimal("0.000000000000000001"), "1"),
        (Decimal(0), "0"),
        (12, "12000000000000000000"),
        ("0.4998", "499800000000000000"),
        (Decimal("-2.25"), "-2250000000000000000"),
    ],
)
def test_sdk_dec_round_trip(value: Decimal | int | str, wire: str) -> None:
    assert protos.to_sdk_dec(value) == wire
    assert protos.from_sdk_dec(wire) == Decimal(value)


@pytest.mark.parametrize("value", ["0.0000000000000000001", "1.1234567890123456789", "1e-19"])
def test_to_sdk_dec_rejects_more_than_18_decimals(value: str) -> None:
    with pytest.raises(ValueError, match="18 decimal places"):
        protos.to_sdk_dec(value)


@pytest.mark.parametrize("text", ["", "-", "1.5", "abc", "1e18", " 1", "1 ", "+1", "0x10", "1_000"])
def test_from_sdk_dec_rejects_non_integer_strings(text: str) -> None:
    with pytest.raises(ValueError, match=r"not an sdk\.Dec integer string"):
        protos.from_sdk_dec(text)


def test_from_sdk_dec_rejects_non_ascii_digits() -> None:
    with pytest.raises(ValueError):
        protos.from_sdk_dec("١٢")


# --- order data -----------------------------------------------------------------------------


def test_order_data_round_trip() -> None:
    assert order_data("c-1", True) == '{"cid":"c-1","po":1}'
    assert parse_order_data(order_data("c-1", True)) == ("c-1", True)
    assert parse_order_data(order_data("c-2", False)) == ("c-2", False)
    assert parse_order_data('{"cid":"x"}') == ("x", False)  # po defaults to not post-only
    assert parse_order_data(order_data("x" * 64, False)) == ("x" * 64, False)


@pytest.mark.parametrize(
    "data",
    [
        "",
        "not json",
        "null",
        "[]",
        '"cid"',
        "{}",
        '{"po":1}',
        '{"cid":1}',
        '{"cid":null}',
        '{"cid":""}',
        '{"cid":["a"]}',
        '{"cid":"' + "x" * 65 + '"}',
    ],
)
def test_parse_order_data_rejects_malformed(data: str) -> None:
    with pytest.raises(ValueError, match=r"Order\.data"):
        parse_order_data(data)


# --- messages and decoding ----------------------------------------------------------------

BATCHES = [
    pytest.param([], [PlaceOrder("b1", Side.BUY, 15000, 10)], id="one-buy"),
    pytest.param(
        [],
        [
            PlaceOrder("b1", Side.BUY, 5000, 1),
            PlaceOrder("b2", Side.BUY, 1, 7),
            PlaceOrder("s1", Side.SELL, 5001, 250, post_only=False),
            PlaceOrder("s2", Side.SELL, 15000, 3),
        ],
        id="places",
    ),
    pytest.param([ChainCancel(11, Side.SELL, 5002)], [], id="one-cancel"),
    pytest.param(
        [ChainCancel(11, Side.SELL, 5002), ChainCancel(12, Side.BUY, 4990)],
        [PlaceOrder("n1", Side.BUY, 4991, 40), PlaceOrder("n2", Side.SELL, 5003, 40)],
        id="cancels-and-places",
    ),
]


@pytest.mark.parametrize(("cancels", "places"), BATCHES)
def test_built_tx_decodes_into_exactly_the_intended_messages(
    wallet: Wallet,
    market: MarketRef,
    cancels: list[ChainCancel],
    places: list[PlaceOrder],
) -> None:
    msgs = []
    if cancels:
        msgs.append(cancel_msg(wallet.address, market, cancels))
    if places:
        msgs.append(place_msg(wallet.address, market, places))
    raw = build_tx(
        wallet,
        msgs,
        chain_id="c-1",
        account_number=9,
        sequence=4,
        gas_limit=123_456,
        fee_amount=2_470,
        memo="m",
    )
    tx = decode_tx(raw)

    urls = [u for u, _ in tx.messages]
    expected_urls = ([protos.TYPE_URL_CANCEL] if cancels else []) + (
        [protos.TYPE_URL_PLACE] if places else []
    )
    assert urls == expected_urls
    assert protos.TYPE_URL_CANCEL == "/seiprotocol.seichain.dex.MsgCancelOrders"
    assert protos.TYPE_URL_PLACE == "/seiprotocol.seichain.dex.MsgPlaceOrders"
    assert tx.body.memo == "m"
    assert len(tx.signatures) == 1
    assert len(tx.signatures[0]) == 64

    info = tx.auth_info.signer_infos
    assert len(info) == 1
    assert info[0].sequence == 4
    assert info[0].mode_info.single.mode == SignMode.SIGN_MODE_DIRECT
    assert info[0].public_key.type_url == "/cosmos.crypto.secp256k1.PubKey"
    assert PubKey.FromString(info[0].public_key.value).key == wallet.public_key_bytes
    assert tx.auth_info.fee.gas_limit == 123_456
    assert [(c.denom, c.amount) for c in tx.auth_info.fee.amount] == [(FEE_DENOM, "2470")]

    for url, m in tx.messages:
        assert m.creator == wallet.address
        assert m.contractAddr == market.contract
        if url == protos.TYPE_URL_CANCEL:
            assert len(m.cancellations) == len(cancels)
            for c, want in zip(m.cancellations, cancels, strict=True):
                assert c.id == want.order_id
                assert c.creator == wallet.address
                assert c.contractAddr == market.contract
                assert c.initiator == protos.USER
                assert (c.priceDenom, c.assetDenom) == ("uusdc", "usei")
                assert c.positionDirection == (
                    protos.LONG if want.side is Side.BUY else protos.SHORT
                )
                assert protos.from_sdk_dec(c.price) == SEI_USDC.ticks_to_price(want.price)
        else:
            assert len(m.orders) == len(places)
            for o, p in zip(m.orders, places, strict=True):
                assert o.account == wallet.address
                assert o.contractAddr == market.contract
                assert o.orderType == protos.LIMIT
                assert o.positionDirection == (protos.LONG if p.side is Side.BUY else protos.SHORT)
                assert (o.priceDenom, o.assetDenom) == ("uusdc", "usei")
                assert o.price == str(p.price * 10**14)  # tick 0.0001 = 10^14 sdk.Dec units
                assert o.quantity == str(p.lots * 10**18)  # lot 1
                assert parse_order_data(o.data) == (p.client_id, p.post_only)
                assert order_fields(o, SEI_USDC) == (p.side, p.price, p.lots)


@pytest.mark.parametrize(
    ("ticks", "wire"),
    [(15000, "1500000000000000000"), (5000, "500000000000000000"), (1, "100000000000000")],
)
def test_place_prices_are_sdk_dec_strings(
    wallet: Wallet, market: MarketRef, ticks: int, wire: str
) -> None:
    msg = place_msg(wallet.address, market, [PlaceOrder("p", Side.SELL, ticks, 2)])
    (o,) = (
        decode_tx(
            build_tx(
                wallet,
                [msg],
                chain_id="c",
                account_number=1,
                sequence=0,
                gas_limit=1,
                fee_amount=1,
            )
        )
        .messages[0][1]
        .orders
    )
    assert o.price == wire
    assert o.quantity == "2000000000000000000"
    assert o.positionDirection == protos.SHORT


def _wire_order(price: str, quantity: str, direction: int = protos.LONG) -> object:
    return protos.Order(price=price, quantity=quantity, positionDirection=direction)


def test_order_fields_reads_side_ticks_lots() -> None:
    assert order_fields(
        _wire_order(protos.to_sdk_dec("0.4998"), protos.to_sdk_dec(25)), SEI_USDC
    ) == (
        Side.BUY,
        4998,
        25,
    )
    assert order_fields(
        _wire_order(protos.to_sdk_dec("1.5"), protos.to_sdk_dec(1), protos.SHORT), SEI_USDC
    ) == (Side.SELL, 15000, 1)


@pytest.mark.parametrize(
    ("price", "quantity", "match"),
    [
        ("0.00005", "1", "tick"),  # half a tick
        ("0.49985", "1", "tick"),
        ("0", "1", "tick"),
        ("-0.5", "1", "tick"),
        ("0.5", "1.5", "lot"),  # lot size 1
        ("0.5", "0", "lot"),
        ("0.5", "-3", "lot"),
    ],
)
def test_order_fields_rejects_off_grid(price: str, quantity: str, match: str) -> None:
    o = _wire_order(protos.to_sdk_dec(price), protos.to_sdk_dec(quantity))
    with pytest.raises(ValueError, match=match):
        order_fields(o, SEI_USDC)


def test_order_fields_rejects_non_dec_wire_text() -> None:
    with pytest.raises(ValueError):
        order_fields(_wire_order("0.5", protos.to_sdk_dec(1)), SEI_USDC)


def test_decode_tx_rejects_garbage_and_foreign_messages(wallet: Wallet) -> None:
    with pytest.raises(ValueError, match="cannot decode"):
        decode_tx(b"\x0a\xff")
    with pytest.raises(ValueError, match="cannot decode"):
        decode_tx(b"garbage bytes")
    from cosmpy.protos.cosmos.staking.v1beta1.tx_pb2 import MsgDelegate

    raw = build_tx(
        wallet,
        [MsgDelegate(delegator_address=wallet.address, validator_address=wallet.address)],
        chain_id="c",
        account_number=1,
        sequence=0,
        gas_limit=1,
        fee_amount=1,
    )
    with pytest.raises(ValueError, match="unsupported message type"):
        decode_tx(raw)


# --- signing --------------------------------------------------------------------------------


def test_golden_tx_is_byte_identical_and_pinned(wallet: Wallet, market: MarketRef) -> None:
    a = _golden_tx(wallet, market)
    b = _golden_tx(Wallet.from_mnemonic(ABANDON), market)
    assert a == b
    assert tx_hash(a) == GOLDEN_TX_HASH
    assert tx_hash(a) == hashlib.sha256(a).hexdigest().upper()
    sig = TxRaw.FromString(a).signatures[0]
    assert sig.hex() == GOLDEN_SIGNATURE_HEX
    # canonical low-S form
    assert int.from_bytes(sig[32:], "big") <= SECP256K1_N // 2


@pytest.mark.parametrize(
    "change",
    [
        {"sequence": GOLDEN_SEQUENCE + 1},
        {"account_number": GOLDEN_ACCOUNT_NUMBER + 1},
        {"chain_id": "sei-test-2"},
        {"fee_amount": GOLDEN_FEE + 1},
        {"gas_limit": GOLDEN_GAS + 1},
    ],
)
def test_any_input_change_changes_the_signature(
    wallet: Wallet, market: MarketRef, change: dict[str, object]
) -> None:
    raw = _golden_tx(wallet, market, **change)
    assert tx_hash(raw) != GOLDEN_TX_HASH
    assert TxRaw.FromString(raw).signatures[0].hex() != GOLDEN_SIGNATURE_HEX


def _sign_doc(tx_bytes: bytes, chain_id: str, account_number: int) -> bytes:
    tx = decode_tx(tx_bytes)
    return SignDoc(
        body_bytes=tx.body_bytes,
        auth_info_bytes=tx.auth_info_bytes,
        chain_id=chain_id,
        account_number=account_number,
    ).SerializeToString()


def test_signature_verifies_over_the_rebuilt_sign_doc(wallet: Wallet, market: MarketRef) -> None:
    raw = _golden_tx(wallet, market)
    tx = decode_tx(raw)
    key = PubKey.FromString(tx.auth_info.signer_infos[0].public_key.value).key
    pk = PublicKey(bytes(key))
    sig = tx.signatures[0]
    assert pk.verify(_sign_doc(raw, GOLDEN_CHAIN_ID, GOLDEN_ACCOUNT_NUMBER), sig)
    assert not pk.verify(_sign_doc(raw, "sei-test-2", GOLDEN_ACCOUNT_NUMBER), sig)
    assert not pk.verify(_sign_doc(raw, GOLDEN_CHAIN_ID, GOLDEN_ACCOUNT_NUMBER + 1), sig)
    other = Wallet.from_mnemonic(dev_mnemonic("alice"))
    assert not other.public_key.verify(_sign_doc(raw, GOLDEN_CHAIN_ID, GOLDEN_ACCOUNT_NUMBER), sig)
