"""The localnet's state machine: accounts, mempool, blocks and the dex markets.

``check_tx`` is CheckTx (ante checks, fee charged, sequence bumped, into the mempool);
``produce_block`` runs the background markets to the block time, delivers the mempool in
order and returns the block's events. Accounts (numbers, sequences, balances, keys) can be
persisted to a JSON state file so a restarted node keeps them; resting orders do not survive
a restart (the node comes back with its own orders cancelled, as after exchange maintenance).

Bank transfers (``MsgSend``) are checked against the sender's free balance (what its open
orders do not need) at CheckTx and again when delivered: a transfer that no longer fits
fails in its block with code 5 (insufficient funds), its fee kept and nothing moved. A
recipient the chain does not know yet gets a new account.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flashmm.domain.orders import Side
from flashmm.localnet import errors
from flashmm.localnet.ante import Account, ante
from flashmm.localnet.config import LocalnetConfig
from flashmm.localnet.dex import DexMarket, Event, event
from flashmm.localnet.errors import TxError
from flashmm.venue.sei import protos
from flashmm.venue.sei.tx import (
    FEE_DENOM,
    TYPE_URL_SEND,
    DecodedTx,
    order_fields,
    parse_order_data,
    tx_hash,
)
from flashmm.venue.sei.wallet import valid_address

_MAX_RESULTS = 50_000
INVALID_COINS = 10  # sdk ErrInvalidCoins (bank transfers)
_DENOM = re.compile(r"^[a-zA-Z][a-zA-Z0-9/:._-]{2,127}$")  # the Cosmos SDK's denom rule


@dataclass(slots=True)
class TxResult:
    txhash: str
    height: int
    index: int
    tx_bytes: bytes
    sender: str
    code: int
    log: str
    gas_wanted: int
    gas_used: int
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class Block:
    height: int
    time_s: float
    begin_events: list[Event]
    end_events: list[Event]
    txs: list[TxResult]


class Chain:
    def __init__(self, cfg: LocalnetConfig) -> None:
        self.cfg = cfg
        self.height = 0
        self.time_s = 0.0
        self.accounts: dict[str, Account] = {}
        self.by_number: dict[int, Account] = {}
        self.markets: dict[str, DexMarket] = {m.contract: DexMarket(m) for m in cfg.markets}
        self.mempool: list[tuple[str, DecodedTx, bytes, Account, int]] = []
        self.results: dict[str, TxResult] = {}
        for g in cfg.genesis:
            self._create(g.address, dict(g.balances))
        if cfg.state_file and Path(cfg.state_file).exists():
            self._restore(Path(cfg.state_file))

    def _create(self, address: str, balances: dict[str, int]) -> Account:
        if not valid_address(address):
            raise ValueError(f"genesis: invalid address {address!r}")
        n = len(self.accounts) + 1  # 0 is the background market in the matcher
        acct = Account(address, n, balances=balances)
        self.accounts[address] = acct
        self.by_number[n] = acct
        return acct

    # --- CheckTx ------------------------------------------------------------------------
    def check_tx(self, tx_bytes: bytes) -> str:
        """Admit a transaction to the mempool or raise ``TxError``; returns its hash."""
        if len(self.mempool) >= self.cfg.max_mempool:
            raise TxError(errors.MEMPOOL_FULL, "mempool is full")
        h = tx_hash(tx_bytes)
        if h in self.results or any(m[0] == h for m in self.mempool):
            raise TxError(19, "tx already exists in cache")
        tx = self._peek(tx_bytes)
        gas = self.cfg.gas_needed(*_counts(tx)) if tx is not None else None
        tx, acct, fee, gas_limit = ante(
            tx_bytes,
            self.accounts,
            self.cfg.chain_id,
            self.cfg.min_gas_price,
            self.cfg.max_tx_bytes,
            gas,
        )
        self._validate_msgs(tx)
        reserved_fee_denom = sum(m.reserved(acct).get(FEE_DENOM, 0) for m in self.markets.values())
        if acct.balances.get(FEE_DENOM, 0) - fee < reserved_fee_denom:
            raise TxError(
                errors.INSUFFICIENT_FUNDS, f"fee would spend {FEE_DENOM} that open sell orders need"
            )
        sends = _sends(tx)
        if sends:
            self._check_send_funds(acct, sends, fee)
        if acct.pubkey is None:
            acct.pubkey = _signer_key(tx)
        acct.balances[FEE_DENOM] = acct.balances.get(FEE_DENOM, 0) - fee
        acct.sequence += 1
        self.mempool.append((h, tx, tx_bytes, acct, gas_limit))
        return h

    @staticmethod
    def _peek(tx_bytes: bytes) -> DecodedTx | None:
        from flashmm.venue.sei.tx import decode_tx

        try:
            return decode_tx(tx_bytes)
        except ValueError:
            return None  # ante reports the decode error

    def _validate_msgs(self, tx: DecodedTx) -> None:
        """Stateless message checks: known contract, grid prices, well-formed order data;
        for bank transfers a valid recipient and positive, sorted coins."""
        kinds = {url == TYPE_URL_SEND for url, _ in tx.messages}
        if len(kinds) > 1:  # keeps delivery all-or-nothing without reverting dex state
            raise TxError(
                errors.INVALID_REQUEST,
                "bank transfers cannot share a transaction with dex messages on the localnet",
            )
        for url, m in tx.messages:
            if url == TYPE_URL_SEND:
                _validate_send(m)
                continue
            market = self.markets.get(m.contractAddr)
            if market is None:
                raise TxError(errors.INVALID_REQUEST, f"unknown contract {m.contractAddr}", "dex")
            if url == protos.TYPE_URL_CANCEL:
                for c in m.cancellations:
                    try:
                        ticks = protos.from_sdk_dec(c.price) / market.inst.tick_size
                    except ValueError as e:
                        raise TxError(errors.INVALID_REQUEST, str(e), "dex") from None
                    if ticks <= 0 or ticks != ticks.to_integral_value():
                        raise TxError(
                            errors.INVALID_REQUEST,
                            "cancellation price is not on the tick grid",
                            "dex",
                        )
            if url == protos.TYPE_URL_PLACE:
                for o in m.orders:
                    if o.orderType != protos.LIMIT:
                        raise TxError(
                            errors.INVALID_REQUEST, "only LIMIT orders are supported", "dex"
                        )
                    if o.priceDenom != market.spec.price_denom or (
                        o.assetDenom != market.spec.asset_denom
                    ):
                        raise TxError(
                            errors.INVALID_REQUEST, "denoms do not match the market", "dex"
                        )
                    try:
                        order_fields(o, market.inst)
                        parse_order_data(o.data)
                    except ValueError as e:
                        raise TxError(errors.INVALID_REQUEST, str(e), "dex") from None

    # --- blocks -------------------------------------------------------------------------
    def produce_block(self, time_s: float) -> Block:
        self.height += 1
        self.time_s = max(self.time_s, time_s)
        begin: list[Event] = []
        for market in self.markets.values():
            market.begin_block(self.height)
            begin.extend(market.advance(self.time_s, self.by_number))
        txs: list[TxResult] = []
        pool, self.mempool = self.mempool, []
        for i, (h, tx, raw, acct, gas_limit) in enumerate(pool):
            code, log = errors.OK, ""
            try:
                events = self._deliver(tx, acct)
            except TxError as failed:  # failed in its block: the fee stays paid, nothing else
                code, log, events = failed.code, failed.log, []
            placed, cancels = _counts(tx)
            r = TxResult(
                h,
                self.height,
                i,
                raw,
                acct.address,
                code,
                log,
                gas_limit,
                self.cfg.gas_needed(placed, cancels),
                events,
            )
            self.results[h] = r
            txs.append(r)
        while len(self.results) > _MAX_RESULTS:  # oldest first (dicts keep insertion order)
            del self.results[next(iter(self.results))]
        end = [e for m in self.markets.values() if (e := m.book_event()) is not None]
        if self.cfg.state_file:
            self._persist(Path(self.cfg.state_file))
        return Block(self.height, self.time_s, begin, end, txs)

    def _deliver(self, tx: DecodedTx, acct: Account) -> list[Event]:
        if tx.messages and tx.messages[0][0] == TYPE_URL_SEND:  # bank only (see _validate_msgs)
            return self._deliver_sends(tx, acct)
        out: list[Event] = [event("message", sender=acct.address, module="dex")]
        for url, m in tx.messages:
            market = self.markets[m.contractAddr]
            if url == protos.TYPE_URL_CANCEL:
                for c in m.cancellations:
                    cside = Side.BUY if c.positionDirection == protos.LONG else Side.SELL
                    cticks = protos.from_sdk_dec(c.price) / market.inst.tick_size
                    out.extend(market.cancel(acct, int(c.id), cside, int(cticks)))
            else:
                for o in m.orders:
                    side, price, lots = order_fields(o, market.inst)
                    cid, post_only = parse_order_data(o.data)
                    out.extend(
                        market.place(acct, Side(side), price, lots, cid, post_only, self.by_number)
                    )
        return out

    # --- bank transfers -----------------------------------------------------------------
    def _check_send_funds(self, acct: Account, spend: dict[str, int], fee: int) -> None:
        """Raise code 5 unless the free balance (less ``fee`` in the fee denom and what open
        orders need) covers ``spend``."""
        for denom in sorted(spend):
            reserved = sum(m.reserved(acct).get(denom, 0) for m in self.markets.values())
            free = acct.balances.get(denom, 0) - reserved - (fee if denom == FEE_DENOM else 0)
            if spend[denom] > free:
                raise TxError(
                    errors.INSUFFICIENT_FUNDS,
                    f"failed to execute message; message index: 0: {max(free, 0)}{denom} is "
                    f"smaller than {spend[denom]}{denom}: insufficient funds",
                    "sdk",
                )

    def _deliver_sends(self, tx: DecodedTx, acct: Account) -> list[Event]:
        """All transfers of the transaction or none (checked again: balances may have moved
        since CheckTx)."""
        self._check_send_funds(acct, _sends(tx), 0)
        out: list[Event] = [event("message", sender=acct.address, module="bank")]
        for _, m in tx.messages:
            to = self.accounts.get(m.to_address) or self._create(m.to_address, {})
            for c in m.amount:
                acct.balances[c.denom] = acct.balances.get(c.denom, 0) - int(c.amount)
                to.balances[c.denom] = to.balances.get(c.denom, 0) + int(c.amount)
            amount = ",".join(f"{c.amount}{c.denom}" for c in m.amount)
            out.append(event("coin_spent", spender=acct.address, amount=amount))
            out.append(event("coin_received", receiver=m.to_address, amount=amount))
            out.append(
                event("transfer", recipient=m.to_address, sender=acct.address, amount=amount)
            )
        return out

    # --- queries ------------------------------------------------------------------------
    def open_orders(self, contract: str, address: str) -> list[dict[str, Any]]:
        market = self.markets[contract]
        return [
            {
                "id": str(o.order_id),
                "account": address,
                "contractAddr": contract,
                "price": market.px(o.price),
                "quantity": market.qty(o.lots),
                "positionDirection": "LONG" if o.side is Side.BUY else "SHORT",
                "orderType": "LIMIT",
                "status": "PLACED",
                "data": json.dumps({"cid": o.client_id}, separators=(",", ":")),
            }
            for o in market.open_orders(address)
        ]

    # --- persistence --------------------------------------------------------------------
    def _persist(self, path: Path) -> None:
        data = {
            "height": self.height,
            "accounts": [
                {
                    "address": a.address,
                    "number": a.number,
                    "sequence": a.sequence,
                    "pubkey": base64.b64encode(a.pubkey).decode() if a.pubkey else None,
                    "balances": a.balances,
                }
                for a in self.accounts.values()
            ],
            "seen_clients": {c: [list(k) for k in m.seen_clients] for c, m in self.markets.items()},
            # order ids must never be handed out twice, even by a restarted node
            "next_order_id": {c: m.exchange.next_order_id for c, m in self.markets.items()},
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    def _restore(self, path: Path) -> None:
        data = json.loads(path.read_text())
        self.height = int(data["height"])
        self.accounts.clear()
        self.by_number.clear()
        for a in data["accounts"]:
            acct = Account(
                a["address"],
                int(a["number"]),
                int(a["sequence"]),
                base64.b64decode(a["pubkey"]) if a["pubkey"] else None,
                {k: int(v) for k, v in a["balances"].items()},
            )
            self.accounts[acct.address] = acct
            self.by_number[acct.number] = acct
        for contract, seen in data.get("seen_clients", {}).items():
            if contract in self.markets:
                self.markets[contract].seen_clients = {(a, c) for a, c in seen}
        for contract, next_id in data.get("next_order_id", {}).items():
            if contract in self.markets:
                self.markets[contract].exchange.reserve_ids(int(next_id))


def _signer_key(tx: DecodedTx) -> bytes:
    from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey

    return bytes(PubKey.FromString(tx.auth_info.signer_infos[0].public_key.value).key)


def _counts(tx: DecodedTx) -> tuple[int, int]:
    places = cancels = 0
    for url, m in tx.messages:
        if url == protos.TYPE_URL_PLACE:
            places += len(m.orders)
        elif url == protos.TYPE_URL_CANCEL:
            cancels += len(m.cancellations)
    return places, cancels


def _sends(tx: DecodedTx) -> dict[str, int]:
    """Micro-units per denom the transaction's bank transfers move out of the signer."""
    out: dict[str, int] = {}
    for url, m in tx.messages:
        if url == TYPE_URL_SEND:
            for c in m.amount:
                out[c.denom] = out.get(c.denom, 0) + int(c.amount)
    return out


def _validate_send(m: Any) -> None:
    """A well-formed ``MsgSend``: a valid recipient, at least one coin, denoms valid, sorted
    and distinct, amounts positive integers (the sender is checked by the ante handler)."""
    if not valid_address(m.to_address):
        raise TxError(errors.INVALID_ADDRESS, f"invalid recipient address {m.to_address!r}")
    if not m.amount:
        raise TxError(INVALID_COINS, "a transfer needs at least one coin: invalid coins")
    denoms = [c.denom for c in m.amount]
    for c in m.amount:
        if not _DENOM.match(c.denom):
            raise TxError(INVALID_COINS, f"invalid denom {c.denom!r}: invalid coins")
        if not c.amount.isascii() or not c.amount.isdigit() or int(c.amount) <= 0:
            raise TxError(INVALID_COINS, f"{c.amount}{c.denom}: amount must be positive")
    if denoms != sorted(set(denoms)):
        raise TxError(INVALID_COINS, f"coins must be sorted and distinct, got {denoms}")
