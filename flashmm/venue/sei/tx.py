"""Cosmos SDK transactions carrying Sei dex messages: build, sign (SIGN_MODE_DIRECT), decode.

One transaction per quote cycle: a ``MsgCancelOrders`` (if any) then a ``MsgPlaceOrders``
(if any). Each order's client id travels in ``Order.data`` as compact JSON
(``{"cid": ..., "po": 1}``; ``po`` = post-only), so a venue can refuse to place the same
client id twice.

Bank transfers (``cosmos.bank.v1beta1.MsgSend``, built with ``send_msg``) move funds between
our own keys, e.g. funding a new hot key from the warm key when keys are rotated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from cosmpy.protos.cosmos.tx.signing.v1beta1.signing_pb2 import SignMode
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import (
    AuthInfo,
    Fee,
    ModeInfo,
    SignDoc,
    SignerInfo,
    TxBody,
    TxRaw,
)
from google.protobuf.any_pb2 import Any as ProtoAny

from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import Side
from flashmm.venue.base import CancelOrder, PlaceOrder
from flashmm.venue.sei import protos
from flashmm.venue.sei.wallet import Wallet

FEE_DENOM = "usei"
TYPE_URL_SEND = "/cosmos.bank.v1beta1.MsgSend"


@dataclass(frozen=True, slots=True)
class MarketRef:
    """How a market is addressed on chain."""

    contract: str
    price_denom: str
    asset_denom: str
    instrument: Instrument


@dataclass(frozen=True, slots=True)
class ChainCancel:
    """A cancel with everything ``Cancellation`` needs (the venue id is required on chain)."""

    order_id: int
    side: Side
    price: int


def order_data(client_id: str, post_only: bool) -> str:
    return json.dumps({"cid": client_id, "po": int(post_only)}, separators=(",", ":"))


def parse_order_data(data: str) -> tuple[str, bool]:
    """(client id, post-only) from ``Order.data``; raises ValueError when malformed."""
    try:
        d = json.loads(data)
        cid = d["cid"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"Order.data is not FlashMM order data: {data[:80]!r}") from e
    if not isinstance(cid, str) or not cid or len(cid) > 64:
        raise ValueError("Order.data cid must be a non-empty string of at most 64 chars")
    po = d.get("po", 0)
    if po not in (0, 1):
        raise ValueError("Order.data po must be 0 or 1")
    return cid, po == 1


def place_msg(creator: str, m: MarketRef, places: list[PlaceOrder]) -> Any:
    inst = m.instrument
    msg = protos.MsgPlaceOrders(creator=creator, contractAddr=m.contract)
    for p in places:
        msg.orders.add(
            account=creator,
            contractAddr=m.contract,
            price=protos.to_sdk_dec(inst.ticks_to_price(p.price)),
            quantity=protos.to_sdk_dec(inst.lots_to_size(p.lots)),
            priceDenom=m.price_denom,
            assetDenom=m.asset_denom,
            orderType=protos.LIMIT,
            positionDirection=protos.LONG if p.side is Side.BUY else protos.SHORT,
            data=order_data(p.client_id, p.post_only),
            nominal=protos.to_sdk_dec(0),
        )
    return msg


def cancel_msg(creator: str, m: MarketRef, cancels: list[ChainCancel]) -> Any:
    inst = m.instrument
    msg = protos.MsgCancelOrders(creator=creator, contractAddr=m.contract)
    for c in cancels:
        msg.cancellations.add(
            id=c.order_id,
            initiator=protos.USER,
            creator=creator,
            contractAddr=m.contract,
            priceDenom=m.price_denom,
            assetDenom=m.asset_denom,
            positionDirection=protos.LONG if c.side is Side.BUY else protos.SHORT,
            price=protos.to_sdk_dec(inst.ticks_to_price(c.price)),
        )
    return msg


def send_msg(from_address: str, to_address: str, coins: dict[str, int]) -> Any:
    """A bank transfer of ``coins`` (denom -> positive micro-units), sorted by denom as the
    Cosmos SDK requires; raises ValueError on an empty transfer or a non-positive amount."""
    if not coins:
        raise ValueError("a transfer needs at least one coin")
    msg = MsgSend(from_address=from_address, to_address=to_address)
    for denom in sorted(coins):
        amount = coins[denom]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"transfer amount of {denom} must be a positive integer")
        msg.amount.add(denom=denom, amount=str(amount))
    return msg


def _any(msg: Any) -> ProtoAny:
    a = ProtoAny()
    a.Pack(msg, type_url_prefix="/")
    return a


def build_tx(
    wallet: Wallet,
    messages: list[Any],
    *,
    chain_id: str,
    account_number: int,
    sequence: int,
    gas_limit: int,
    fee_amount: int,
    memo: str = "",
) -> bytes:
    """Signed ``TxRaw`` bytes (deterministic: same inputs, same bytes)."""
    body = TxBody(messages=[_any(m) for m in messages], memo=memo)
    pub = ProtoAny()
    pub.Pack(PubKey(key=wallet.public_key_bytes), type_url_prefix="/")
    auth = AuthInfo(
        signer_infos=[
            SignerInfo(
                public_key=pub,
                mode_info=ModeInfo(single=ModeInfo.Single(mode=SignMode.SIGN_MODE_DIRECT)),
                sequence=sequence,
            )
        ],
        fee=Fee(amount=[Coin(denom=FEE_DENOM, amount=str(fee_amount))], gas_limit=gas_limit),
    )
    body_bytes = body.SerializeToString()
    auth_bytes = auth.SerializeToString()
    doc = SignDoc(
        body_bytes=body_bytes,
        auth_info_bytes=auth_bytes,
        chain_id=chain_id,
        account_number=account_number,
    )
    sig = wallet.sign(doc.SerializeToString())
    return bytes(
        TxRaw(
            body_bytes=body_bytes, auth_info_bytes=auth_bytes, signatures=[sig]
        ).SerializeToString()
    )


def tx_hash(tx_bytes: bytes) -> str:
    """Upper-case hex sha256 of the raw transaction, as Cosmos reports it."""
    return hashlib.sha256(tx_bytes).hexdigest().upper()


@dataclass(frozen=True, slots=True)
class DecodedTx:
    body: Any
    auth_info: Any
    signatures: list[bytes]
    body_bytes: bytes
    auth_info_bytes: bytes
    messages: list[tuple[str, Any]]  # (type url, decoded message)


_MSG_TYPES = {
    protos.TYPE_URL_PLACE: protos.MsgPlaceOrders,
    protos.TYPE_URL_CANCEL: protos.MsgCancelOrders,
    TYPE_URL_SEND: MsgSend,
}


def decode_tx(tx_bytes: bytes) -> DecodedTx:
    """Parse TxRaw → body, auth info and the dex/bank messages; raises ValueError if
    malformed."""
    from google.protobuf.message import DecodeError

    try:
        raw = TxRaw.FromString(tx_bytes)
        body = TxBody.FromString(raw.body_bytes)
        auth = AuthInfo.FromString(raw.auth_info_bytes)
        msgs: list[tuple[str, Any]] = []
        for a in body.messages:
            cls = _MSG_TYPES.get(a.type_url)
            if cls is None:
                raise ValueError(f"unsupported message type {a.type_url}")
            msgs.append((a.type_url, cls.FromString(a.value)))
    except DecodeError as e:
        raise ValueError(f"cannot decode transaction: {e}") from e
    return DecodedTx(body, auth, list(raw.signatures), raw.body_bytes, raw.auth_info_bytes, msgs)


def order_fields(o: Any, inst: Instrument) -> tuple[Side, int, int]:
    """(side, price ticks, lots) of a wire ``Order``; raises ValueError off the tick/lot grid."""
    price = protos.from_sdk_dec(o.price)
    qty = protos.from_sdk_dec(o.quantity)
    ticks = price / inst.tick_size
    lots = qty / inst.lot_size
    if ticks != ticks.to_integral_value() or ticks <= 0:
        raise ValueError(f"price {price} is not a positive multiple of tick {inst.tick_size}")
    if lots != lots.to_integral_value() or lots <= 0:
        raise ValueError(f"quantity {qty} is not a positive multiple of lot {inst.lot_size}")
    side = Side.BUY if o.positionDirection == protos.LONG else Side.SELL
    return side, int(ticks), int(lots)


def dec(value: Decimal | int | str) -> str:
    """Shorthand for sdk.Dec wire text."""
    return protos.to_sdk_dec(value)


__all__ = [
    "TYPE_URL_SEND",
    "CancelOrder",
    "ChainCancel",
    "DecodedTx",
    "MarketRef",
    "build_tx",
    "cancel_msg",
    "decode_tx",
    "order_data",
    "order_fields",
    "parse_order_data",
    "place_msg",
    "send_msg",
    "tx_hash",
]
