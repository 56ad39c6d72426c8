"""Localnet configuration: chain id, block time, fees, markets and the genesis accounts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flashmm.domain.instrument import Instrument
from flashmm.sim.params import MarketParams

MICRO = 1_000_000  # u-denoms: 1 SEI = 1,000,000 usei


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """A market on the localnet: its contract address, denoms and background flow."""

    instrument: Instrument
    contract: str
    price_denom: str
    asset_denom: str
    market: MarketParams

    def __post_init__(self) -> None:
        unit = self.instrument.tick_size * self.instrument.lot_size * MICRO
        if unit != unit.to_integral_value():
            raise ValueError(
                f"{self.instrument.symbol}: tick × lot must be a whole number of micro-units"
            )

    @property
    def quote_micro_per_tick_lot(self) -> int:
        """Micro quote units per (one tick of price × one lot)."""
        return int(self.instrument.tick_size * self.instrument.lot_size * MICRO)

    @property
    def base_micro_per_lot(self) -> int:
        return int(self.instrument.lot_size * MICRO)


@dataclass(frozen=True, slots=True)
class GenesisAccount:
    address: str
    balances: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class LocalnetConfig:
    chain_id: str = "flashmm-local-1"
    block_interval_s: float = 0.4
    min_gas_price: Decimal = Decimal("0.02")  # usei per unit of gas
    max_tx_bytes: int = 256 * 1024
    max_mempool: int = 5000
    markets: tuple[MarketSpec, ...] = ()
    genesis: tuple[GenesisAccount, ...] = ()
    gas_per_tx: int = 60_000
    gas_per_order: int = 25_000
    gas_per_cancel: int = 15_000
    state_file: str | None = None

    def __post_init__(self) -> None:
        if self.block_interval_s <= 0:
            raise ValueError("localnet.block_interval_s must be positive")
        if self.min_gas_price < 0:
            raise ValueError("localnet.min_gas_price must be >= 0")
        contracts = [m.contract for m in self.markets]
        if len(set(contracts)) != len(contracts):
            raise ValueError("localnet markets need distinct contract addresses")

    def gas_needed(self, orders: int, cancels: int) -> int:
        """Gas a transaction uses (deterministic, so clients can learn it)."""
        return self.gas_per_tx + orders * self.gas_per_order + cancels * self.gas_per_cancel
