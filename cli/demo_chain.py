"""What the localnet holds for ``flashmm demo``'s trading accounts (our open orders, our
balances), and each market's view for the status screen: its hot path's latest status
beside the chain's."""

from __future__ import annotations

from typing import Any

import aiohttp

from cli.demo_processes import Proc
from flashmm.config import Settings


async def chain_open_orders(
    http: aiohttp.ClientSession, rest: str, addresses: dict[str, str], settings: Settings
) -> dict[str, int]:
    out = {}
    for m in settings.markets:
        address = addresses[m.symbol]
        url = f"{rest}/sei-protocol/seichain/dex/get_orders/{m.contract_address()}/{address}"
        try:
            async with http.get(url) as r:
                out[m.symbol] = len((await r.json())["orders"])
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
            out[m.symbol] = -1
    return out


async def balances(http: aiohttp.ClientSession, rest: str, address: str) -> dict[str, int]:
    try:
        async with http.get(f"{rest}/cosmos/bank/v1beta1/balances/{address}") as r:
            return {b["denom"]: int(b["amount"]) for b in (await r.json())["balances"]}
    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
        return {}


async def market_views(
    http: aiohttp.ClientSession,
    rest: str,
    addresses: dict[str, str],
    settings: Settings,
    children: list[Proc],
) -> list[Any]:
    """Each market's hot-path status beside what the chain holds for it."""
    from cli.demo_board import MarketView

    chain_orders = await chain_open_orders(http, rest, addresses, settings)
    limit = settings.risk_limits().max_position_notional
    views = []
    for c, m in zip(children, settings.markets, strict=True):
        price_denom, asset_denom = m.denoms()
        views.append(
            MarketView(
                m.symbol,
                c.latest,
                c.proc.returncode,
                c.restarts,
                chain_orders.get(m.symbol),
                await balances(http, rest, addresses[m.symbol]),
                price_denom,
                asset_denom,
                m.tick_size,
                m.lot_size,
                limit,
            )
        )
    return views
