"""Settings for the venue the hot path trades on and for the embedded localnet."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# one SEI / one USDC in micro-units
_SEI = 1_000_000
_USDC = 1_000_000


class LocalnetSettings(BaseModel):
    """The local exchange (``flashmm localnet``); it serves every configured market."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain_id: str = Field("flashmm-local-1", min_length=1, max_length=50)
    host: str = "127.0.0.1"
    rest_port: int = Field(1317, ge=0, le=65535)
    rpc_port: int = Field(26657, ge=0, le=65535)
    block_interval_s: float = Field(0.4, gt=0, le=10)
    min_gas_price: Decimal = Field(Decimal("0.02"), ge=0)
    state_file: str | None = None
    # genesis: every configured market's development trading account gets
    # ``trader_balances`` (plus its base asset); ``accounts`` adds any others
    # (dev account name or a sei1... address -> balances in micro-units)
    trader_balances: dict[str, int] = Field(
        default_factory=lambda: {"usei": 50_000 * _SEI, "uusdc": 50_000 * _USDC}
    )
    trader_base_units: int = Field(5_000, ge=0)
    accounts: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {"treasury": {"usei": 1_000_000 * _SEI, "uusdc": 1_000_000 * _USDC}}
    )

    @field_validator("host")
    @classmethod
    def _loopback(cls, v: str) -> str:
        if v not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the localnet only binds to loopback (127.0.0.1, localhost, ::1)")
        return v


class VenueSettings(BaseModel):
    """Where the hot path trades: the Sei dex protocol (localnet by default) or the
    in-process simulator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sei", "sim"] = "sei"
    chain_id: str = "flashmm-local-1"
    rest_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:1317"])
    ws_urls: list[str] = Field(default_factory=lambda: ["ws://127.0.0.1:26657/websocket"])
    account: str = "trader"  # dev/test only: name of the derived development key
    mnemonic_env: str = "FLASHMM_SEI_MNEMONIC"  # where the signing key comes from otherwise
    gas_price: Decimal = Field(Decimal("0.02"), ge=0)
    max_fee_usei: int = Field(200_000, gt=0)
    broadcast_timeout_s: float = Field(2.0, gt=0)
    feed_stale_after_s: float = Field(1.5, gt=0)

    @field_validator("rest_urls")
    @classmethod
    def _http(cls, v: list[str]) -> list[str]:
        if not v or not all(u.startswith(("http://", "https://")) for u in v):
            raise ValueError("rest_urls must be a non-empty list of http(s):// URLs")
        return [u.rstrip("/") for u in v]

    @field_validator("ws_urls")
    @classmethod
    def _ws(cls, v: list[str]) -> list[str]:
        if not v or not all(u.startswith(("ws://", "wss://")) for u in v):
            raise ValueError("ws_urls must be a non-empty list of ws(s):// URLs")
        return v

    def account_name(self, symbol: str) -> str:
        """Development account of one market's hot path: one signing key per hot path, so
        two processes never race for one account sequence."""
        return f"{self.account}-{symbol.partition('/')[0].lower()}"

    def mnemonic(self, environment: str, symbol: str) -> str:
        """The signing mnemonic: from the environment variable (the deployment gives each hot
        path its own), or in dev/test a derived development key. Never logged."""
        from flashmm.venue.sei.wallet import dev_mnemonic

        m = os.environ.get(self.mnemonic_env)
        if m:
            return m
        if environment in ("dev", "test"):
            return dev_mnemonic(self.account_name(symbol))
        raise ValueError(f"no signing key: set {self.mnemonic_env} (environment {environment})")
