"""Venue side of the control plane: cancel every resting order of a key on the Sei dex and
verify none remain, and read the account's balances (for reconciliation)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.chain import VENUE_ANSWER, open_chain, venue_error
from flashmm.config import Settings
from flashmm.domain.orders import Side
from flashmm.keys.refs import resolve_key
from flashmm.venue.base import PlaceOrder
from flashmm.venue.sei.chain import ChainAnswerError, parse_account, parse_broadcast
from flashmm.venue.sei.gas import GasConfig, GasEstimator, Urgency
from flashmm.venue.sei.market import market_ref
from flashmm.venue.sei.tx import ChainCancel, build_tx, cancel_msg, place_msg
from flashmm.venue.sei.wallet import Wallet
from workflows.policies import KEY_UNAVAILABLE
from workflows.types import CancelResult, FlattenResult, VenueBalances, VenueRequest

__all__ = ["VENUE_ANSWER", "VenueActivities", "account_numbers", "broadcast_code"]


def broadcast_code(status: int, body: Any) -> tuple[int, str]:
    """(code, raw_log) of a broadcast answer, read explicitly: an error page, a body without
    ``tx_response`` or a non-integer code is a VenueAnswerError, never a KeyError."""
    try:
        answer = parse_broadcast(status, body)
    except ChainAnswerError as e:
        raise venue_error(e) from None
    return answer.code, answer.raw_log


def account_numbers(status: int, body: Any) -> tuple[int, int]:
    """(account_number, sequence) of an account lookup, read explicitly."""
    try:
        acct = parse_account(status, body)
    except ChainAnswerError as e:
        raise venue_error(e) from None
    return acct.number, acct.sequence


class VenueActivities:
    def __init__(self, settings: Settings, block_wait_s: float = 0.5) -> None:
        self.s = settings
        self.block_wait_s = block_wait_s

    def _wallet(self, req: VenueRequest) -> Wallet:
        ref = req.key_ref or f"dev:{self.s.venue.account_name(req.market)}"
        try:
            return resolve_key(self.s, ref)
        except Exception as e:
            raise ApplicationError(
                f"cannot use key {ref.split(':')[0]}: {e}",
                type=KEY_UNAVAILABLE,
                non_retryable=True,
            ) from None

    def _gas(self) -> GasEstimator:
        v = self.s.venue
        return GasEstimator(GasConfig(gas_price=v.gas_price, max_fee_usei=v.max_fee_usei))

    @activity.defn(name="venue_cancel_all")
    async def cancel_all(self, req: VenueRequest) -> CancelResult:
        """Cancel until the venue shows no resting order of this key (heartbeats while it
        works; a timeout is retried by the workflow until verified)."""
        wallet = self._wallet(req)
        mref = market_ref(self.s, req.market)
        gas = self._gas()
        cancelled = 0
        async with open_chain(self.s) as chain:
            while True:
                activity.heartbeat({"cancelled": cancelled})
                orders = await chain.open_orders(mref.contract, wallet.address)
                if not orders:
                    return CancelResult(cancelled, 0)
                acct = await chain.account(wallet.address)
                try:
                    cancels = [
                        ChainCancel(o.order_id, o.side, mref.instrument.price_to_ticks(o.price))
                        for o in orders
                    ]
                except ValueError:  # a negative price
                    raise ChainAnswerError("open orders", 200, orders) from None
                limit = gas.gas_limit(0, len(cancels))
                tx = build_tx(
                    wallet,
                    [cancel_msg(wallet.address, mref, cancels)],
                    chain_id=self.s.venue.chain_id,
                    account_number=acct.number,
                    sequence=acct.sequence,
                    gas_limit=limit,
                    fee_amount=gas.fee(limit, Urgency.EMERGENCY),
                )
                if (await chain.broadcast(tx)).code == 0:
                    cancelled += len(cancels)
                await asyncio.sleep(self.block_wait_s)  # let a block include it, then verify

    @activity.defn(name="venue_flatten")
    async def flatten(self, req: VenueRequest) -> FlattenResult:
        """Reduce a position toward flat with one crossing limit order priced so that the
        worst fill stays within the loss budget against the mid; whatever does not fill at
        once is cancelled (and verified gone). Never flips the position."""
        wallet = self._wallet(req)
        mref = market_ref(self.s, req.market)
        inst = mref.instrument
        async with open_chain(self.s) as chain:
            book = await chain.book(mref.contract)
            if not book.bids or not book.asks:
                raise ApplicationError("no two-sided book to flatten against")
            bid = inst.price_to_ticks(book.bids[0][0])
            ask = inst.price_to_ticks(book.asks[0][0])
            mid = (bid + ask) / 2
            lots = abs(req.position_lots)
            side = Side.SELL if req.position_lots > 0 else Side.BUY
            # worst price allowed: the loss against the mid is at most the budget
            slack = req.loss_budget_usdc / (lots * inst.notional_per_tick_lot) if lots else 0
            limit = int(mid - slack) if side is Side.SELL else int(mid + slack + 0.999)
            if (side is Side.SELL and limit > bid) or (side is Side.BUY and limit < ask):
                return FlattenResult(
                    filled=0, reason="budget too small to cross the spread", limit=limit
                )
            # one client id per stop: a retried attempt is refused as a duplicate by the
            # venue, so the position is never worked off twice
            wid = f"{activity.info().workflow_id}/{req.market}"
            cid = "flatten-" + hashlib.sha256(wid.encode()).hexdigest()[:16]
            acct = await chain.account(wallet.address)
            gas = self._gas()
            limit_gas = gas.gas_limit(1, 0)
            tx = build_tx(
                wallet,
                [
                    place_msg(
                        wallet.address,
                        mref,
                        [PlaceOrder(cid, side, max(1, limit), lots, post_only=False)],
                    )
                ],
                chain_id=self.s.venue.chain_id,
                account_number=acct.number,
                sequence=acct.sequence,
                gas_limit=limit_gas,
                fee_amount=gas.fee(limit_gas, Urgency.EMERGENCY),
            )
            answer = await chain.broadcast(tx)
            if answer.code != 0:
                raise ApplicationError(f"flatten order refused: {answer.raw_log}")
            await asyncio.sleep(self.block_wait_s * 2)
        left = await self.cancel_all(req)  # the unfilled rest, verified gone
        return FlattenResult(side.name.lower(), lots, limit, mid, left.cancelled)

    @activity.defn(name="venue_open_orders")
    async def open_orders(self, req: VenueRequest) -> int:
        wallet = self._wallet(req)
        contract = market_ref(self.s, req.market).contract
        async with open_chain(self.s) as chain:
            return len(await chain.open_orders(contract, wallet.address))

    @activity.defn(name="venue_balances")
    async def balances(self, req: VenueRequest) -> VenueBalances:
        wallet = self._wallet(req)
        async with open_chain(self.s) as chain:
            return VenueBalances(wallet.address, await chain.balances(wallet.address))
