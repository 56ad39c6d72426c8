"""Venue side of the control plane: cancel every resting order of a key on the Sei dex and
verify none remain, and read the account's balances (for reconciliation)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from flashmm.config import Settings
from flashmm.domain.orders import Side
from flashmm.venue.sei.gas import GasConfig, GasEstimator, Urgency
from flashmm.venue.sei.rest import RestClient
from flashmm.venue.sei.tx import ChainCancel, MarketRef, build_tx, cancel_msg
from flashmm.venue.sei.wallet import Wallet
from workflows.policies import KEY_UNAVAILABLE
from workflows.types import CancelResult, FlattenResult, VenueBalances, VenueRequest

VENUE_ANSWER = "VenueAnswerError"  # the venue answered something we cannot use (retryable)


def _fail(what: str, status: int, body: Any) -> ApplicationError:
    text = str(body)[:200] if body is not None else ""
    return ApplicationError(f"{what}: venue answered {status}: {text}", type=VENUE_ANSWER)


def broadcast_code(status: int, body: Any) -> tuple[int, str]:
    """(code, raw_log) of a broadcast answer, read explicitly: an error page, a body without
    ``tx_response`` or a non-integer code is a VenueAnswerError, never a KeyError."""
    tx = body.get("tx_response") if isinstance(body, dict) else None
    if status != 200 or not isinstance(tx, dict):
        raise _fail("broadcast", status, body)
    try:
        return int(tx.get("code", -1)), str(tx.get("raw_log", ""))
    except (TypeError, ValueError):
        raise _fail("broadcast", status, body) from None


def account_numbers(status: int, body: Any) -> tuple[int, int]:
    """(account_number, sequence) of an account lookup, read explicitly."""
    acct = body.get("account") if isinstance(body, dict) else None
    if status != 200 or not isinstance(acct, dict):
        raise _fail("account lookup", status, body)
    try:
        return int(acct["account_number"]), int(acct["sequence"])
    except (KeyError, TypeError, ValueError):
        raise _fail("account lookup", status, body) from None


class VenueActivities:
    def __init__(self, settings: Settings, block_wait_s: float = 0.5) -> None:
        self.s = settings
        self.block_wait_s = block_wait_s

    def _wallet(self, req: VenueRequest) -> Wallet:
        from flashmm.cli.hotpath import resolve_key

        ref = req.key_ref or f"dev:{self.s.venue.account_name(req.market)}"
        try:
            wallet: Wallet = resolve_key(self.s, ref, req.market)
        except Exception as e:
            raise ApplicationError(
                f"cannot use key {ref.split(':')[0]}: {e}",
                type=KEY_UNAVAILABLE,
                non_retryable=True,
            ) from None
        return wallet

    def _market(self, market: str) -> MarketRef:
        m = self.s.market(market)
        price_denom, asset_denom = m.denoms()
        return MarketRef(m.contract_address(), price_denom, asset_denom, m.instrument())

    @activity.defn(name="venue_cancel_all")
    async def cancel_all(self, req: VenueRequest) -> CancelResult:
        """Cancel until the venue shows no resting order of this key (heartbeats while it
        works; a timeout is retried by the workflow until verified)."""
        wallet = self._wallet(req)
        mref = self._market(req.market)
        rest = RestClient(tuple(self.s.venue.rest_urls))
        gas = GasEstimator(
            GasConfig(gas_price=self.s.venue.gas_price, max_fee_usei=self.s.venue.max_fee_usei)
        )
        cancelled = 0
        try:
            while True:
                activity.heartbeat({"cancelled": cancelled})
                orders = await self._open(rest, mref.contract, wallet.address)
                if not orders:
                    return CancelResult(cancelled, 0)
                status, acct = await rest.get(f"/cosmos/auth/v1beta1/accounts/{wallet.address}")
                number, sequence = account_numbers(status, acct)
                try:
                    cancels = [
                        ChainCancel(
                            int(o["id"]),
                            Side.BUY if o["positionDirection"] == "LONG" else Side.SELL,
                            mref.instrument.price_to_ticks(o["price"]),
                        )
                        for o in orders
                    ]
                except (KeyError, TypeError, ValueError):
                    raise _fail("open orders", 200, orders) from None
                limit = gas.gas_limit(0, len(cancels))
                tx = build_tx(
                    wallet,
                    [cancel_msg(wallet.address, mref, cancels)],
                    chain_id=self.s.venue.chain_id,
                    account_number=number,
                    sequence=sequence,
                    gas_limit=limit,
                    fee_amount=gas.fee(limit, Urgency.EMERGENCY),
                )
                import base64

                status, res = await rest.post(
                    "/cosmos/tx/v1beta1/txs",
                    {"tx_bytes": base64.b64encode(tx).decode(), "mode": "BROADCAST_MODE_SYNC"},
                )
                code, _ = broadcast_code(status, res)
                if code == 0:
                    cancelled += len(cancels)
                await asyncio.sleep(self.block_wait_s)  # let a block include it, then verify
        finally:
            await rest.close()

    @activity.defn(name="venue_flatten")
    async def flatten(self, req: VenueRequest) -> FlattenResult:
        """Reduce a position toward flat with one crossing limit order priced so that the
        worst fill stays within the loss budget against the mid; whatever does not fill at
        once is cancelled (and verified gone). Never flips the position."""
        import base64

        from flashmm.venue.base import PlaceOrder
        from flashmm.venue.sei.tx import place_msg

        wallet = self._wallet(req)
        mref = self._market(req.market)
        inst = mref.instrument
        rest = RestClient(tuple(self.s.venue.rest_urls))
        try:
            status, book = await rest.get(f"/flashmm/localnet/v1/book/{mref.contract}")
            if status != 200 or not isinstance(book, dict):
                raise _fail("book", status, book)
            if not book.get("bids") or not book.get("asks"):
                raise ApplicationError("no two-sided book to flatten against")
            bid = inst.price_to_ticks(book["bids"][0][0])
            ask = inst.price_to_ticks(book["asks"][0][0])
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
            import hashlib

            # one client id per stop: a retried attempt is refused as a duplicate by the
            # venue, so the position is never worked off twice
            wid = f"{activity.info().workflow_id}/{req.market}"
            cid = "flatten-" + hashlib.sha256(wid.encode()).hexdigest()[:16]
            status, acct = await rest.get(f"/cosmos/auth/v1beta1/accounts/{wallet.address}")
            number, sequence = account_numbers(status, acct)
            gas = GasEstimator(
                GasConfig(gas_price=self.s.venue.gas_price, max_fee_usei=self.s.venue.max_fee_usei)
            )
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
                account_number=number,
                sequence=sequence,
                gas_limit=limit_gas,
                fee_amount=gas.fee(limit_gas, Urgency.EMERGENCY),
            )
            status, res = await rest.post(
                "/cosmos/tx/v1beta1/txs",
                {"tx_bytes": base64.b64encode(tx).decode(), "mode": "BROADCAST_MODE_SYNC"},
            )
            code, raw_log = broadcast_code(status, res)
            if code != 0:
                raise ApplicationError(f"flatten order refused: {raw_log}")
            await asyncio.sleep(self.block_wait_s * 2)
        finally:
            await rest.close()
        left = await self.cancel_all(req)  # the unfilled rest, verified gone
        return FlattenResult(side.name.lower(), lots, limit, mid, left.cancelled)

    @activity.defn(name="venue_open_orders")
    async def open_orders(self, req: VenueRequest) -> int:
        wallet = self._wallet(req)
        rest = RestClient(tuple(self.s.venue.rest_urls))
        try:
            return len(await self._open(rest, self._market(req.market).contract, wallet.address))
        finally:
            await rest.close()

    @activity.defn(name="venue_balances")
    async def balances(self, req: VenueRequest) -> VenueBalances:
        wallet = self._wallet(req)
        rest = RestClient(tuple(self.s.venue.rest_urls))
        try:
            status, data = await rest.get(f"/cosmos/bank/v1beta1/balances/{wallet.address}")
            rows = data.get("balances") if isinstance(data, dict) else None
            if status != 200 or not isinstance(rows, list):
                raise _fail("balances", status, data)
            try:
                balances = {str(b["denom"]): int(b["amount"]) for b in rows}
            except (KeyError, TypeError, ValueError):
                raise _fail("balances", status, data) from None
            return VenueBalances(wallet.address, balances)
        finally:
            await rest.close()

    @staticmethod
    async def _open(rest: RestClient, contract: str, address: str) -> list[dict[str, Any]]:
        status, data = await rest.get(f"/sei-protocol/seichain/dex/get_orders/{contract}/{address}")
        orders = data.get("orders") if isinstance(data, dict) else None
        if status != 200 or not isinstance(orders, list):
            raise _fail("open orders", status, data)
        return orders
