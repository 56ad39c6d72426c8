"""Signing keys and the bank transfers between them, for key rotation.

Keystore side (the secret comes from ``FLASHMM_KEYSTORE_SECRET``; key material never leaves
this module): create a hot key once per label, describe a key by reference, retire a key.

Venue side: read an address's balances; prepare a transfer (read balances, sign a
``MsgSend``: a top-up of the recipient to a target, or a sweep of everything less the fee);
broadcast prepared bytes and wait, heartbeating, until the chain shows them in a block. A
broadcast retried after a crash looks the transaction up first and re-sends the same bytes,
so a transfer lands at most once; when the chain proves the bytes never can (their sequence
went to another transaction) it fails with ``TransferStale`` and the workflow prepares again.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.chain import open_chain
from flashmm.config import Settings
from flashmm.keys.keystore import KeyMeta, Keystore, KeystoreError
from flashmm.keys.refs import resolve_key
from flashmm.venue.sei.chain import SeiChain, TxResult
from flashmm.venue.sei.gas import GasConfig, GasEstimator, Urgency
from flashmm.venue.sei.tx import FEE_DENOM, build_tx, send_msg, tx_hash
from flashmm.venue.sei.wallet import Wallet, valid_address
from workflows.policies import KEY_UNAVAILABLE
from workflows.rotate_key_types import (
    CreateKeyRequest,
    KeyInfo,
    PreparedTransfer,
    TransferOutcome,
    TransferRequest,
)

WRONG_SEQUENCE, ALREADY_IN_CACHE, INSUFFICIENT_FUNDS = 32, 19, 5


def _info(m: KeyMeta) -> KeyInfo:
    return KeyInfo(m.ref, m.address, m.tier, m.status)


def _keystore_id(ref: str) -> str:
    kind, _, key_id = ref.partition(":")
    if kind != "keystore" or not key_id:
        raise ApplicationError(
            f"{ref.split(':')[0]!r} is not a keystore reference",
            type=KEY_UNAVAILABLE,
            non_retryable=True,
        )
    return key_id


class KeyActivities:
    """``confirm_timeout_s`` bounds the wait for a broadcast transfer to show up in a block;
    it must exceed the chain's time from mempool to block."""

    def __init__(
        self, settings: Settings, confirm_timeout_s: float = 20.0, poll_s: float = 0.2
    ) -> None:
        self.s = settings
        self.confirm_timeout_s = confirm_timeout_s
        self.poll_s = poll_s

    def all(self) -> Sequence[Callable[..., Any]]:
        """Every activity here, for a worker's ``activities=``."""
        return [
            self.create,
            self.describe,
            self.retire,
            self.balances,
            self.prepare_transfer,
            self.broadcast_transfer,
        ]

    # --- keystore -----------------------------------------------------------------------------
    def _keystore(self) -> Keystore:
        try:
            return Keystore.from_env(Path(self.s.hotpath.keystore_dir))
        except KeystoreError as e:
            raise ApplicationError(str(e), type="KeystoreError", non_retryable=True) from None

    async def _wallet(self, ref: str) -> Wallet:
        try:
            wallet = await asyncio.to_thread(resolve_key, self.s, ref)
        except Exception as e:  # wrong secret, unknown or retired key, unsupported reference
            raise ApplicationError(
                f"cannot use key {ref.split(':')[0]}: {e}",
                type=KEY_UNAVAILABLE,
                non_retryable=True,
            ) from None
        return wallet

    @activity.defn(name="keys_create")
    async def create(self, req: CreateKeyRequest) -> KeyInfo:
        """The key labelled ``req.label``, created on the first call only. Should two calls
        race, both answer the earliest key with the label."""
        ks = self._keystore()

        def find_or_create() -> KeyMeta:
            def mine() -> list[KeyMeta]:
                return [m for m in ks.list() if m.label == req.label]

            if not mine():
                ks.create(req.tier, req.label)
            return mine()[0]  # list() is ordered by creation time

        try:
            meta = await asyncio.to_thread(find_or_create)
        except KeystoreError as e:
            raise ApplicationError(str(e), type="KeystoreError", non_retryable=True) from None
        if meta.tier != req.tier or meta.status != "active":
            raise ApplicationError(
                f"key {meta.ref} labelled {req.label!r} is a {meta.status} {meta.tier} key",
                type="KeyRetired",
                non_retryable=True,
            )
        return _info(meta)

    @activity.defn(name="keys_describe")
    async def describe(self, ref: str) -> KeyInfo:
        """Address, tier and status of a key (keystore metadata: nothing is decrypted);
        ``dev:<name>`` development keys where the environment allows them."""
        if ref.startswith("keystore:"):
            try:
                return _info(await asyncio.to_thread(self._keystore().meta, _keystore_id(ref)))
            except KeystoreError as e:
                raise ApplicationError(str(e), type=KEY_UNAVAILABLE, non_retryable=True) from None
        wallet = await self._wallet(ref)
        return KeyInfo(ref, wallet.address, "dev", "active")

    @activity.defn(name="keys_retire")
    async def retire(self, ref: str) -> KeyInfo:
        """Retire a keystore key (idempotent: a retired key stays retired)."""
        try:
            return _info(await asyncio.to_thread(self._keystore().retire, _keystore_id(ref)))
        except KeystoreError as e:
            raise ApplicationError(str(e), type=KEY_UNAVAILABLE, non_retryable=True) from None

    # --- venue --------------------------------------------------------------------------------
    @staticmethod
    async def _balances(chain: SeiChain, address: str) -> dict[str, int]:
        return {d: v for d, v in (await chain.balances(address)).items() if v}

    @activity.defn(name="bank_balances")
    async def balances(self, address: str) -> dict[str, int]:
        """Non-zero balances of an address (no key needed: works for retired keys too)."""
        async with open_chain(self.s) as chain:
            return await self._balances(chain, address)

    @activity.defn(name="bank_prepare_transfer")
    async def prepare_transfer(self, req: TransferRequest) -> PreparedTransfer:
        """Read balances and sign the transfer (no side effect: safe to run again).

        ``top_up``: what ``to_address`` lacks of ``coins``; the sender must hold it plus the
        fee. ``sweep``: every balance of the sender, the fee taken from its usei.
        """
        if req.mode not in ("top_up", "sweep"):
            raise ApplicationError(f"unknown transfer mode {req.mode!r}", non_retryable=True)
        if not valid_address(req.to_address):
            raise ApplicationError(
                f"invalid recipient {req.to_address!r}",
                type=KEY_UNAVAILABLE,
                non_retryable=True,
            )
        wallet = await self._wallet(req.from_ref)
        gas = GasEstimator(
            GasConfig(gas_price=self.s.venue.gas_price, max_fee_usei=self.s.venue.max_fee_usei)
        )
        limit = gas.gas_limit(0, 0)
        fee = gas.fee(limit, Urgency.NORMAL)
        async with open_chain(self.s) as chain:
            have = await self._balances(chain, wallet.address)
            if req.mode == "top_up":
                there = await self._balances(chain, req.to_address)
                amounts = {
                    d: v - there.get(d, 0)
                    for d, v in sorted(req.coins.items())
                    if v > there.get(d, 0)
                }
                if not amounts:
                    return PreparedTransfer(wallet.address, req.to_address, {}, note="funded")
                need = dict(amounts)
                need[FEE_DENOM] = need.get(FEE_DENOM, 0) + fee
                short = {d: v - have.get(d, 0) for d, v in need.items() if have.get(d, 0) < v}
                if short:
                    raise ApplicationError(
                        f"{wallet.address} lacks {short} for the transfer and its fee",
                        type="InsufficientFunds",
                        non_retryable=True,
                    )
            else:
                if have.get(FEE_DENOM, 0) < fee:
                    return PreparedTransfer(
                        wallet.address,
                        req.to_address,
                        {},
                        note=f"{have} left: not enough {FEE_DENOM} for a {fee} fee",
                    )
                amounts = dict(have)
                amounts[FEE_DENOM] = amounts.get(FEE_DENOM, 0) - fee
                amounts = {d: v for d, v in sorted(amounts.items()) if v > 0}
                if not amounts:
                    return PreparedTransfer(wallet.address, req.to_address, {}, note="empty")
            acct = await chain.account(wallet.address)
        tx = build_tx(
            wallet,
            [send_msg(wallet.address, req.to_address, amounts)],
            chain_id=self.s.venue.chain_id,
            account_number=acct.number,
            sequence=acct.sequence,
            gas_limit=limit,
            fee_amount=fee,
            memo=req.memo,
        )
        return PreparedTransfer(
            wallet.address,
            req.to_address,
            amounts,
            fee,
            acct.sequence,
            tx_hash(tx),
            base64.b64encode(tx).decode(),
        )

    @activity.defn(name="bank_broadcast_transfer")
    async def broadcast_transfer(self, p: PreparedTransfer) -> TransferOutcome:
        """Land the prepared bytes once: found in a block already (a retry) → done; otherwise
        broadcast and wait for the block. Non-retryable: ``TransferStale`` (the bytes can
        never land), ``TransferFailed`` (landed with an error), ``TransferRefused`` and
        ``InsufficientFunds`` (refused at admission)."""
        if not p.amounts:
            return TransferOutcome("", 0, {}, 0, f"nothing to move: {p.note}")
        async with open_chain(self.s) as chain:
            found = await chain.tx(p.tx_hash)
            how = "found landed"
            if found is None:
                how = "landed"
                answer = await chain.broadcast(base64.b64decode(p.tx_b64))
                code, log = answer.code, answer.raw_log
                if code == INSUFFICIENT_FUNDS:
                    raise ApplicationError(log, type="InsufficientFunds", non_retryable=True)
                if code not in (0, ALREADY_IN_CACHE, WRONG_SEQUENCE):
                    raise ApplicationError(
                        f"transfer refused: code {code}: {log}",
                        type="TransferRefused",
                        non_retryable=True,
                    )
                found = await self._await_block(chain, p.tx_hash)
                if found is None and code == WRONG_SEQUENCE:
                    raise ApplicationError(
                        f"sequence {p.sequence} of {p.from_address} went to another "
                        f"transaction: {p.tx_hash} can never land",
                        type="TransferStale",
                        non_retryable=True,
                    )
                if found is None:  # retried: the same bytes again
                    raise ApplicationError(f"{p.tx_hash} not in a block yet", type="Unconfirmed")
        if found.code != 0:
            raise ApplicationError(
                f"transfer {p.tx_hash} failed in block {found.height}: code {found.code}: "
                f"{found.raw_log}",
                type="TransferFailed",
                non_retryable=True,
            )
        return TransferOutcome(p.tx_hash, found.height, p.amounts, p.fee, how)

    async def _await_block(self, chain: SeiChain, h: str) -> TxResult | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout_s
        while loop.time() < deadline:
            activity.heartbeat({"tx_hash": h})
            await asyncio.sleep(self.poll_s)
            found = await chain.tx(h)
            if found is not None:
                return found
        return None
