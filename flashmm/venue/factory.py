"""Build the configured venue for one market (Sei dex over the network, or the simulator)."""

from __future__ import annotations

from flashmm.config.settings import Settings
from flashmm.venue.base import Venue


def make_venue(s: Settings, symbol: str, seed: int | None = None) -> Venue:
    m = s.market(symbol)
    inst = m.instrument()
    if s.venue.kind == "sim":
        from flashmm.sim.inprocess import InProcessVenue

        index = [x.symbol for x in s.markets].index(symbol)
        base = int(s.sim.market.get("seed", 7)) if seed is None else seed
        params = s.sim.market_params(
            seed=base + index, start_price=inst.price_to_ticks(m.start_price)
        )
        return InProcessVenue(inst, params, s.sim.venue_params())
    from flashmm.venue.sei.adapter import SeiVenue, SeiVenueConfig
    from flashmm.venue.sei.gas import GasConfig
    from flashmm.venue.sei.market import market_ref
    from flashmm.venue.sei.wallet import Wallet

    v = s.venue
    cfg = SeiVenueConfig(
        rest_urls=tuple(v.rest_urls),
        ws_urls=tuple(v.ws_urls),
        chain_id=v.chain_id,
        market=market_ref(s, symbol),
        gas=GasConfig(gas_price=v.gas_price, max_fee_usei=v.max_fee_usei),
        broadcast_timeout_s=v.broadcast_timeout_s,
        feed_stale_after_s=v.feed_stale_after_s,
    )
    return SeiVenue(cfg, Wallet.from_mnemonic(v.mnemonic(s.environment, symbol)))
