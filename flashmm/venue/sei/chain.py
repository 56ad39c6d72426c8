"""The Sei chain over REST, in one place: account numbers, balances, open orders, the book,
broadcasts and transaction lookups, each answer read explicitly into a small typed value.

Used by the hot path's venue adapter and by the control plane's venue and key activities.
An answer the caller cannot use (an error status, an error page, a body of another shape,
a field that is not a number) raises ``ChainAnswerError`` naming what was asked, never a
``KeyError``; no endpoint answering at all is the transport's ``RestError`` (which
``ChainAnswerError`` extends, so a caller that waits out an unreachable chain waits out an
unusable answer too).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flashmm.domain.orders import Side
from flashmm.venue.sei.rest import RestClient, RestError

BROADCAST_PATH = "/cosmos/tx/v1beta1/txs"


class ChainAnswerError(RestError):
    """The chain answered something we cannot use; ``what`` names the question."""

    def __init__(self, what: str, status: int, body: Any) -> None:
        text = str(body)[:200] if body is not None else ""
        super().__init__(f"{what}: venue answered {status}: {text}")
        self.what = what
        self.status = status


@dataclass(frozen=True, slots=True)
class Account:
    """What signing needs of an account."""

    number: int
    sequence: int


@dataclass(frozen=True, slots=True)
class Broadcast:
    """The check-tx outcome of a broadcast (``code`` 0: admitted to the mempool)."""

    code: int
    raw_log: str


@dataclass(frozen=True, slots=True)
class TxResult:
    """A transaction found in a block."""

    code: int
    height: int
    raw_log: str


@dataclass(frozen=True, slots=True)
class ChainOrder:
    """A resting order; ``cid`` is our client id from ``Order.data`` (None if it has none)."""

    order_id: int
    side: Side
    price: Decimal
    quantity: Decimal
    cid: str | None


@dataclass(frozen=True, slots=True)
class Book:
    """A book snapshot: (price, quantity) levels, best first."""

    seq: int
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]


# --- reading answers (pure: tested without a chain) -------------------------------------------
def _field(what: str, status: int, body: Any, key: str) -> Any:
    value = body.get(key) if isinstance(body, dict) else None
    if status != 200 or value is None:
        raise ChainAnswerError(what, status, body)
    return value


def parse_account(status: int, body: Any) -> Account:
    """(account_number, sequence) of ``/cosmos/auth/v1beta1/accounts/{address}``."""
    acct = _field("account lookup", status, body, "account")
    try:
        return Account(int(acct["account_number"]), int(acct["sequence"]))
    except (KeyError, TypeError, ValueError):
        raise ChainAnswerError("account lookup", status, body) from None


def parse_broadcast(status: int, body: Any) -> Broadcast:
    """Code and log of a broadcast answer; a ``tx_response`` without a code reads as -1."""
    tx = _field("broadcast", status, body, "tx_response")
    if not isinstance(tx, dict):
        raise ChainAnswerError("broadcast", status, body)
    try:
        return Broadcast(int(tx.get("code", -1)), str(tx.get("raw_log", "")))
    except (TypeError, ValueError):
        raise ChainAnswerError("broadcast", status, body) from None


def parse_balances(status: int, body: Any) -> dict[str, int]:
    """Every balance of ``/cosmos/bank/v1beta1/balances/{address}``, zeros included."""
    rows = _field("balances", status, body, "balances")
    try:
        if not isinstance(rows, list):
            raise TypeError
        return {str(b["denom"]): int(b["amount"]) for b in rows}
    except (KeyError, TypeError, ValueError):
        raise ChainAnswerError("balances", status, body) from None


def _cid(data: Any) -> str | None:
    try:
        cid = json.loads(data)["cid"] if data else None
    except (TypeError, ValueError, KeyError):
        return None
    return None if cid is None else str(cid)


def parse_orders(status: int, body: Any) -> list[ChainOrder]:
    """Resting orders of ``/sei-protocol/seichain/dex/get_orders/{contract}/{account}``."""
    rows = _field("open orders", status, body, "orders")
    try:
        if not isinstance(rows, list):
            raise TypeError
        return [
            ChainOrder(
                int(o["id"]),
                Side.BUY if o["positionDirection"] == "LONG" else Side.SELL,
                Decimal(str(o["price"])),
                Decimal(str(o["quantity"])),
                _cid(o.get("data")),
            )
            for o in rows
        ]
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation):
        raise ChainAnswerError("open orders", status, body) from None


def _levels(rows: Any) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((Decimal(str(p)), Decimal(str(q))) for p, q in rows)


def parse_book(status: int, body: Any) -> Book:
    """A book of ``/flashmm/localnet/v1/book/{contract}``."""
    seq = _field("book", status, body, "seq")
    try:
        return Book(int(seq), _levels(body["bids"]), _levels(body["asks"]))
    except (KeyError, TypeError, ValueError, InvalidOperation):
        raise ChainAnswerError("book", status, body) from None


def parse_tx(status: int, body: Any) -> TxResult | None:
    """A transaction of ``/cosmos/tx/v1beta1/txs/{hash}``; None when no block holds it."""
    if status == 404:
        return None
    tx = _field("tx lookup", status, body, "tx_response")
    try:
        return TxResult(int(tx["code"]), int(tx.get("height", 0)), str(tx.get("raw_log", "")))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ChainAnswerError("tx lookup", status, body) from None


# --- the client -------------------------------------------------------------------------------
class SeiChain:
    """Typed questions to the chain's REST endpoints (the endpoint list and fail-over are the
    ``RestClient``'s)."""

    def __init__(self, rest: RestClient) -> None:
        self.rest = rest

    @classmethod
    def connect(cls, urls: tuple[str, ...], timeout_s: float = 2.0) -> SeiChain:
        return cls(RestClient(urls, timeout_s))

    async def close(self) -> None:
        await self.rest.close()

    async def account(self, address: str) -> Account:
        return parse_account(*await self.rest.get(f"/cosmos/auth/v1beta1/accounts/{address}"))

    async def balances(self, address: str) -> dict[str, int]:
        return parse_balances(*await self.rest.get(f"/cosmos/bank/v1beta1/balances/{address}"))

    async def open_orders(self, contract: str, address: str) -> list[ChainOrder]:
        path = f"/sei-protocol/seichain/dex/get_orders/{contract}/{address}"
        return parse_orders(*await self.rest.get(path))

    async def book(self, contract: str) -> Book:
        return parse_book(*await self.rest.get(f"/flashmm/localnet/v1/book/{contract}"))

    async def broadcast(self, tx: bytes) -> Broadcast:
        """Broadcast signed bytes (sync mode: the answer is the check-tx outcome)."""
        body = {"tx_bytes": base64.b64encode(tx).decode(), "mode": "BROADCAST_MODE_SYNC"}
        return parse_broadcast(*await self.rest.post(BROADCAST_PATH, body))

    async def tx(self, tx_hash: str) -> TxResult | None:
        return parse_tx(*await self.rest.get(f"{BROADCAST_PATH}/{tx_hash}"))
