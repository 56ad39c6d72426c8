"""A configured market as the chain addresses it (contract, denoms, instrument)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flashmm.venue.sei.tx import MarketRef

if TYPE_CHECKING:
    from flashmm.config.settings import Settings


def market_ref(settings: Settings, symbol: str) -> MarketRef:
    """The one way a market's settings become a ``MarketRef`` (hot path and control plane)."""
    m = settings.market(symbol)
    price_denom, asset_denom = m.denoms()
    return MarketRef(m.contract_address(), price_denom, asset_denom, m.instrument())
