"""Accounts and the ante handler: decode, chain id, signature, account number, sequence, fee.

As in the Cosmos SDK, a transaction that passes these checks is charged its fee and bumps
the signer's sequence when it enters the mempool (CheckTx), whatever its messages do later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cosmpy.crypto.keypairs import PublicKey
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from cosmpy.protos.cosmos.tx.signing.v1beta1.signing_pb2 import SignMode
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import SignDoc

from flashmm.localnet import errors
from flashmm.localnet.errors import TxError
from flashmm.venue.sei.tx import FEE_DENOM, TYPE_URL_SEND, DecodedTx, decode_tx
from flashmm.venue.sei.wallet import address_of, valid_address

_PUBKEY_URL = "/cosmos.crypto.secp256k1.PubKey"


@dataclass(slots=True)
class Account:
    address: str
    number: int
    sequence: int = 0
    pubkey: bytes | None = None
    balances: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        import base64

        pk = (
            {"@type": _PUBKEY_URL, "key": base64.b64encode(self.pubkey).decode()}
            if self.pubkey
            else None
        )
        return {
            "@type": "/cosmos.auth.v1beta1.BaseAccount",
            "address": self.address,
            "pub_key": pk,
            "account_number": str(self.number),
            "sequence": str(self.sequence),
        }


def signer_of(tx: DecodedTx) -> str:
    """The creator named by the dex messages, or the sender of a bank transfer (all must
    agree)."""
    creators = {m.from_address if url == TYPE_URL_SEND else m.creator for url, m in tx.messages}
    if len(creators) != 1:
        raise TxError(errors.UNAUTHORIZED, "transaction must have exactly one signer")
    creator = creators.pop()
    if not valid_address(creator):
        raise TxError(errors.INVALID_ADDRESS, f"invalid address {creator!r}")
    return str(creator)


def ante(
    tx_bytes: bytes,
    accounts: dict[str, Account],
    chain_id: str,
    min_gas_price: Decimal,
    max_tx_bytes: int,
    gas_needed: int | None = None,
) -> tuple[DecodedTx, Account, int, int]:
    """Validate a raw transaction; returns (tx, signer, fee paid, gas limit). Raises TxError."""
    if len(tx_bytes) > max_tx_bytes:
        raise TxError(errors.TX_TOO_LARGE, f"tx too large: {len(tx_bytes)} > {max_tx_bytes} bytes")
    try:
        tx = decode_tx(tx_bytes)
    except ValueError as e:
        raise TxError(errors.TX_DECODE, str(e)) from None
    if not tx.messages:
        raise TxError(errors.INVALID_REQUEST, "transaction has no messages")
    signer = signer_of(tx)
    acct = accounts.get(signer)
    if acct is None:
        raise TxError(errors.UNKNOWN_ADDRESS, f"account {signer} not found")
    infos = tx.auth_info.signer_infos
    if len(infos) != 1 or len(tx.signatures) != 1:
        raise TxError(errors.UNAUTHORIZED, "wrong number of signers; expected 1")
    info = infos[0]
    if info.mode_info.single.mode != SignMode.SIGN_MODE_DIRECT:
        raise TxError(errors.UNAUTHORIZED, "only SIGN_MODE_DIRECT is supported")
    if info.public_key.type_url != _PUBKEY_URL:
        raise TxError(errors.INVALID_PUBKEY, f"unsupported public key {info.public_key.type_url}")
    try:
        key = PubKey.FromString(info.public_key.value).key
        key_address = address_of(bytes(key))
    except Exception:  # malformed key bytes: ecdsa raises assertion-style errors
        raise TxError(errors.INVALID_PUBKEY, "malformed secp256k1 public key") from None
    if key_address != signer:
        raise TxError(errors.INVALID_PUBKEY, "public key does not match the signer address")
    if info.sequence != acct.sequence:
        raise TxError(
            errors.WRONG_SEQUENCE,
            f"account sequence mismatch, expected {acct.sequence}, got {info.sequence}: "
            "incorrect account sequence",
        )
    doc = SignDoc(
        body_bytes=tx.body_bytes,
        auth_info_bytes=tx.auth_info_bytes,
        chain_id=chain_id,
        account_number=acct.number,
    ).SerializeToString()
    if not PublicKey(bytes(key)).verify(doc, tx.signatures[0]):
        raise TxError(
            errors.UNAUTHORIZED,
            f"signature verification failed; please verify account number ({acct.number}) "
            f"and chain-id ({chain_id}): unauthorized",
        )
    fee = tx.auth_info.fee
    gas_limit = int(fee.gas_limit)
    try:
        paid = sum(int(c.amount) for c in fee.amount if c.denom == FEE_DENOM)
    except ValueError:
        raise TxError(errors.INSUFFICIENT_FEE, "fee amount must be an integer") from None
    if paid < 0:
        raise TxError(errors.INSUFFICIENT_FEE, "fee amount must not be negative")
    required = int((min_gas_price * gas_limit).to_integral_value(rounding="ROUND_CEILING"))
    if paid < required or any(c.denom != FEE_DENOM for c in fee.amount):
        raise TxError(
            errors.INSUFFICIENT_FEE,
            f"insufficient fees; got: {paid}{FEE_DENOM} required: {required}{FEE_DENOM}",
        )
    if gas_needed is not None and gas_limit < gas_needed:
        raise TxError(
            errors.OUT_OF_GAS, f"out of gas: gasWanted: {gas_limit}, gasUsed: {gas_needed}"
        )
    if acct.balances.get(FEE_DENOM, 0) < paid:
        raise TxError(errors.INSUFFICIENT_FUNDS, f"insufficient funds to pay fee {paid}{FEE_DENOM}")
    return tx, acct, paid, gas_limit
