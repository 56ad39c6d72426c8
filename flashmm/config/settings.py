"""The settings object. Sources, highest first: init kwargs, environment, YAML file, defaults.

Environment variables use the ``FLASHMM_`` prefix and ``__`` for nesting, e.g.
``FLASHMM_HOTPATH__QUOTE_HZ=10`` or ``FLASHMM_HOTPATH__RISK__MAX_POSITION_NOTIONAL=1500``.
The YAML file comes from ``--config`` or ``FLASHMM_CONFIG``. Any invalid value stops start-up
with a ``ConfigError`` naming the setting's dotted path.
"""

from __future__ import annotations

import contextlib
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from flashmm.backup.config import BackupSettings
from flashmm.config.api import ApiSettings
from flashmm.config.bounds import RuntimeBounds
from flashmm.config.control import ControlSettings
from flashmm.config.deadman import DeadmanSettings
from flashmm.config.llm import LLMSettings
from flashmm.config.ml import MLSettings
from flashmm.config.quoting import QuoteParams
from flashmm.config.risk import RiskLimits
from flashmm.config.stores import StoreSettings
from flashmm.config.telemetry import TelemetrySettings
from flashmm.config.venue import LocalnetSettings, VenueSettings
from flashmm.domain.instrument import Instrument
from flashmm.sim.params import MarketParams, VenueParams

# "MarketParams.informed_rate must be ..." or "quoting.gamma must ..." -> (field, rest)
_FIELD_MSG = re.compile(r"^(?:\w+\.)?(\w+) (must .*)$", re.DOTALL)
# "gamma: must be ..." raised by _build -> extends the dotted path
_NESTED_MSG = re.compile(r"^(\w+): (.*)$", re.DOTALL)


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it."""


class MarketSettings(BaseModel):
    """One market we make: the instrument and its own seed for the simulated venue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = "SEI/USDC"
    tick_size: Decimal = Decimal("0.0001")
    lot_size: Decimal = Decimal("1")
    maker_fee_bps: Decimal = Decimal("-0.5")
    taker_fee_bps: Decimal = Decimal("2.5")
    start_price: Decimal = Decimal("0.5")
    price_denom: str | None = None  # default: "u" + quote, lower case
    asset_denom: str | None = None  # default: "u" + base, lower case
    contract: str | None = None  # default: derived from the symbol

    def denoms(self) -> tuple[str, str]:
        """(price denom, asset denom)."""
        base, _, quote = self.symbol.partition("/")
        return self.price_denom or f"u{quote.lower()}", self.asset_denom or f"u{base.lower()}"

    def contract_address(self) -> str:
        from flashmm.venue.sei.wallet import contract_address

        return self.contract or contract_address(self.symbol)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        base, sep, quote = v.partition("/")
        if not sep or not base or not quote:
            raise ValueError(f"symbol must look like BASE/QUOTE, got {v!r}")
        return v

    @field_validator("tick_size", "lot_size", "start_price")
    @classmethod
    def _positive(cls, v: Decimal) -> Decimal:
        if v <= 0:
            raise ValueError("must be positive")
        return v

    def instrument(self) -> Instrument:
        base, _, quote = self.symbol.partition("/")
        return Instrument(
            self.symbol,
            base,
            quote,
            self.tick_size,
            self.lot_size,
            self.maker_fee_bps,
            self.taker_fee_bps,
        )


class HotPathSettings(BaseModel):
    """Quote loop cadence, quoting parameters and risk limits (shared by all markets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quote_hz: float = Field(5.0, gt=0, le=100)
    status_interval_s: float = Field(1.0, gt=0)
    # the local control API (loopback only; 0 = a free port, printed at start-up)
    control_port: int = Field(0, ge=0, le=65535)
    control_token_env: str = "FLASHMM_CONTROL_TOKEN"
    # /metrics (with --metrics-port): loopback by default; 0.0.0.0 in a pod, where a
    # NetworkPolicy admits only Prometheus (the control API stays on loopback regardless)
    metrics_host: str = "127.0.0.1"
    state_dir: str = ".run/hotpath"  # desired state per market, survives restarts
    start_state: str = Field("trading", pattern="^(trading|stopped)$")  # with no saved state
    keystore_dir: str = ".run/keystore"
    quoting: dict[str, Any] = Field(default_factory=dict)
    risk: dict[str, Any] = Field(default_factory=dict)
    # how far a run-time change may move a parameter: {"quoting"|"risk": {name: [lo, hi]}}
    # narrowing the defaults of flashmm/config/bounds.py; the risk limits above are ceilings
    bounds: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounds(self) -> HotPathSettings:
        RuntimeBounds.build(
            _build(QuoteParams, self.quoting, "quoting"),
            _build(RiskLimits, self.risk, "risk"),
            self.bounds,
        )
        return self

    @field_validator("quoting")
    @classmethod
    def _quoting(cls, v: dict[str, Any]) -> dict[str, Any]:
        _build(QuoteParams, v, "quoting")
        return v

    @field_validator("risk")
    @classmethod
    def _risk(cls, v: dict[str, Any]) -> dict[str, Any]:
        _build(RiskLimits, v, "risk")
        return v


class SimSettings(BaseModel):
    """The simulated market and venue (named assumptions, see ``flashmm.sim.params``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    market: dict[str, Any] = Field(default_factory=dict)
    venue: dict[str, Any] = Field(default_factory=dict)

    @field_validator("market")
    @classmethod
    def _market(cls, v: dict[str, Any]) -> dict[str, Any]:
        _build(MarketParams, v, "market")
        return v

    @field_validator("venue")
    @classmethod
    def _venue(cls, v: dict[str, Any]) -> dict[str, Any]:
        _build(VenueParams, v, "venue")
        return v

    def market_params(self, seed: int | None = None, **extra: Any) -> MarketParams:
        kw = {**self.market, **extra}
        if seed is not None:
            kw["seed"] = seed
        return MarketParams(**kw)

    def venue_params(self) -> VenueParams:
        return VenueParams(**self.venue)


def _build(cls: Any, values: dict[str, Any], where: str) -> Any:
    """Construct a frozen params dataclass, turning enum names and errors into clear ones."""
    import dataclasses
    import enum

    known = {f.name: f for f in dataclasses.fields(cls)}
    kw: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in known:
            raise ValueError(f"{key}: unknown setting (known: {', '.join(sorted(known))})")
        default = getattr(cls(), key)
        try:
            if isinstance(default, enum.Enum):
                kw[key] = type(default)(raw)
            elif isinstance(default, bool):
                kw[key] = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
            else:
                kw[key] = type(default)(raw)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{key}: cannot use {raw!r} ({e})") from None
    try:
        return cls(**kw)
    except ValueError as e:
        m = _FIELD_MSG.match(str(e))
        if m and m.group(1) in known:
            raise ValueError(f"{m.group(1)}: {m.group(2)}") from None
        raise ValueError(f"{where}: {e}") from None


class Settings(BaseSettings):
    """Everything FlashMM reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="FLASHMM_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    environment: str = Field("dev", pattern=r"^(dev|test|staging|prod)$")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_json: bool = True  # one JSON object per line (set false for plain text)
    log_components: dict[str, str] = Field(default_factory=dict)  # logger prefix -> level
    markets: list[MarketSettings] = Field(
        default_factory=lambda: [
            MarketSettings(),
            MarketSettings(
                symbol="ATOM/USDC",
                tick_size=Decimal("0.001"),
                lot_size=Decimal("0.1"),
                start_price=Decimal("8.0"),
            ),
        ]
    )
    hotpath: HotPathSettings = Field(default_factory=HotPathSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    venue: VenueSettings = Field(default_factory=VenueSettings)
    localnet: LocalnetSettings = Field(default_factory=LocalnetSettings)
    stores: StoreSettings = Field(default_factory=StoreSettings)
    ml: MLSettings = Field(default_factory=MLSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    control: ControlSettings = Field(default_factory=ControlSettings)
    deadman: DeadmanSettings = Field(default_factory=DeadmanSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    def setup_logging(self) -> None:
        """Structured logs on stderr with per-component levels, and the signing key
        registered for redaction."""
        import sys

        from flashmm.logs import register_secret, setup_logging

        setup_logging(
            self.log_level, self.log_components, json_output=self.log_json, stream=sys.stderr
        )
        for m in self.markets:
            with contextlib.suppress(ValueError):  # no key configured: nothing to hide
                register_secret(self.venue.mnemonic(self.environment, m.symbol))

    def market(self, symbol: str) -> MarketSettings:
        for m in self.markets:
            if m.symbol == symbol:
                return m
        known = ", ".join(m.symbol for m in self.markets)
        raise ConfigError(f"unknown market {symbol!r} (configured: {known})")

    @field_validator("markets")
    @classmethod
    def _unique(cls, v: list[MarketSettings]) -> list[MarketSettings]:
        if not v:
            raise ValueError("at least one market is required")
        symbols = [m.symbol for m in v]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"duplicate market symbols: {symbols}")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)

    def quote_params(self) -> QuoteParams:
        params: QuoteParams = _build(QuoteParams, self.hotpath.quoting, "quoting")
        return params

    def risk_limits(self) -> RiskLimits:
        limits: RiskLimits = _build(RiskLimits, self.hotpath.risk, "risk")
        return limits

    def runtime_bounds(self) -> RuntimeBounds:
        """How far run-time changes may move each parameter (the risk limits are ceilings)."""
        return RuntimeBounds.build(self.quote_params(), self.risk_limits(), self.hotpath.bounds)


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the file named by FLASHMM_CONFIG (set by ``--config``)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("FLASHMM_CONFIG")
        if not path:
            return {}
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {path} does not exist")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        return data


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate; raises ``ConfigError`` naming each bad setting."""
    if config is not None:
        os.environ["FLASHMM_CONFIG"] = str(config)
    try:
        return Settings(**overrides)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            msg = err["msg"].removeprefix("Value error, ")
            nested = _NESTED_MSG.match(msg)
            if nested:
                where, msg = f"{where}.{nested.group(1)}", nested.group(2)
            lines.append(f"invalid setting {where}: {msg}")
        raise ConfigError("\n".join(lines)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file is not valid YAML: {e}") from None
