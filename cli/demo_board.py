"""The data one frame of ``flashmm demo``'s status shows: each market's view (its hot path's
latest status beside what the chain holds for it), the workflow executions listed, and the
whole frame (:class:`Board`). Plain dataclasses, so the screen is tested without processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass
class MarketView:
    """One market: its hot path's latest status line and what the chain holds for it."""

    symbol: str
    status: dict[str, Any]  # the hot path's latest JSON status ({} before the first)
    exit_code: int | None = None  # the process died (the demo restarts it)
    restarts: int = 0
    chain_open: int | None = None  # our orders on the chain (-1: the chain did not answer)
    balances: dict[str, int] = field(default_factory=dict)  # denom -> micro-units
    price_denom: str = "uusdc"
    asset_denom: str = "usei"
    tick: Decimal = Decimal("0.0001")
    lot: Decimal = Decimal("1")
    position_limit: float = 0.0  # risk.max_position_notional, in the quote currency
    model: dict[str, Any] | None = None  # the control API's "signal" (version, breaker...)

    @property
    def quote(self) -> str:
        return self.symbol.partition("/")[2]

    def px(self, ticks: int | None) -> str:
        return f"{ticks * self.tick:.4f}" if ticks else "-"


@dataclass
class WorkflowView:
    """One workflow execution as the control-plane panel lists it."""

    workflow_type: str
    workflow_id: str
    status: str  # RUNNING, COMPLETED, ...
    started: datetime | None = None


@dataclass
class Board:
    """Everything one frame of the dashboard shows."""

    elapsed: float
    markets: list[MarketView]
    links: dict[str, str] = field(default_factory=dict)  # header: name -> URL or path
    workflows: list[WorkflowView] | None = None  # None: not listed yet
    workflows_note: str = ""  # why the list is missing or old
    alerts: list[dict[str, Any]] | None = None  # Prometheus /api/v1/alerts; None: no answer
    alerts_note: str = ""  # e.g. "prometheus is not installed"
    log_tail: list[str] = field(default_factory=list)
    now: datetime | None = None  # for "started 12 s ago" (tests fix it)
