"""Build the localnet's configuration from the platform settings."""

from __future__ import annotations

from flashmm.config.settings import Settings
from flashmm.localnet.config import GenesisAccount, LocalnetConfig, MarketSpec
from flashmm.venue.sei.wallet import Wallet, dev_mnemonic, valid_address


def genesis_address(name: str) -> str:
    """A genesis entry is a ``sei1...`` address or the name of a derived development key."""
    if name.startswith("sei1"):
        if not valid_address(name):
            raise ValueError(f"localnet.accounts: invalid address {name!r}")
        return name
    return Wallet.from_mnemonic(dev_mnemonic(name)).address


def localnet_config(s: Settings, state_file: str | None = None) -> LocalnetConfig:
    ln = s.localnet
    base_seed = int(s.sim.market.get("seed", 7))
    markets = []
    for i, m in enumerate(s.markets):
        inst = m.instrument()
        price_denom, asset_denom = m.denoms()
        params = s.sim.market_params(
            seed=base_seed + i, start_price=inst.price_to_ticks(m.start_price)
        )
        markets.append(MarketSpec(inst, m.contract_address(), price_denom, asset_denom, params))
    funded: dict[str, dict[str, int]] = {}
    for m in s.markets:
        _, asset_denom = m.denoms()
        bal = dict(ln.trader_balances)
        bal[asset_denom] = bal.get(asset_denom, 0) + ln.trader_base_units * 1_000_000
        funded[genesis_address(s.venue.account_name(m.symbol))] = bal
    for name, bal in ln.accounts.items():
        funded.setdefault(genesis_address(name), {}).update(bal)
    genesis = tuple(GenesisAccount(a, tuple(sorted(b.items()))) for a, b in funded.items())
    return LocalnetConfig(
        chain_id=ln.chain_id,
        block_interval_s=ln.block_interval_s,
        min_gas_price=ln.min_gas_price,
        markets=tuple(markets),
        genesis=genesis,
        state_file=state_file or ln.state_file,
    )
