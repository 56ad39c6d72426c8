"""Workflow inputs, outputs and names: small dataclasses only (shared with the API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flashmm.domain.market_state import MarketState
from flashmm.domain.symbols import slug

CONTROL_QUEUE = "flashmm-control"


def host_queue(market: str) -> str:
    """The per-host task queue that pins a market's hot-path activities to its machine."""
    return "flashmm-host-" + slug(market)


def lifecycle_id(market: str) -> str:
    return f"market/{market}"


# the lifecycle's names of the market states (flashmm.domain.market_state): "STOPPED",
# "TRADING", "HALTED", as recorded in workflow state, search attributes and histories
STOPPED = MarketState.STOPPED.lifecycle
TRADING = MarketState.TRADING.lifecycle
HALTED = MarketState.HALTED.lifecycle


@dataclass
class LifecycleInput:
    market: str
    state: str = STOPPED
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    changes: int = 0  # state changes so far (carried across continue-as-new)
    hotpath: dict[str, Any] = field(default_factory=dict)  # the hot path's last answer
    # continue-as-new after this many changes in one run (or when the server suggests it)
    max_changes_per_run: int = 1000


@dataclass
class ChangeRequest:
    """An operator's request; ``actor`` and ``reason`` go to the audit log."""

    actor: str = "operator"
    reason: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class LifecycleStatus:
    market: str
    state: str
    reason: str
    params: dict[str, Any]
    changes: int
    hotpath: dict[str, Any] = field(default_factory=dict)


@dataclass
class HotpathCommand:
    market: str
    command_id: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmergencyStopInput:
    markets: list[str]  # one market, or every configured market
    reason: str
    actor: str = "operator"
    flatten: bool = False
    loss_budget_usdc: float = 0.0
    # unique per request (the API's or the CLI's own id): a stop that joins a running one for
    # the same markets is told apart from the one that started it, and carried out too
    request_id: str = ""


@dataclass
class MarketStopResult:
    market: str
    hotpath_halted: bool
    hotpath_detail: str
    cancelled: int
    verified_open: int
    position: dict[str, Any] = field(default_factory=dict)
    flattened: dict[str, Any] = field(default_factory=dict)
    # the steps that failed ("cancel: ...", "balances: ..."); empty when every step succeeded.
    # verified_open is -1 when the venue could not be checked.
    errors: list[str] = field(default_factory=list)
    halt_persisted: bool = True


@dataclass
class JoinedStop:
    """A stop that arrived while this one ran (same markets): carried out after it."""

    request_id: str
    actor: str
    reason: str
    flatten: bool
    markets: list[MarketStopResult]
    notified: bool
    audit_hash: str


@dataclass
class EmergencyStopResult:
    reason: str
    markets: list[MarketStopResult]
    notified: bool
    audit_hash: str
    joined: list[JoinedStop] = field(default_factory=list)


@dataclass
class CancelResult:
    """``venue_cancel_all``: orders cancelled, and how many the venue still shows (0 once
    verified)."""

    cancelled: int
    open: int


@dataclass
class VenueBalances:
    """``venue_balances``: an account's balances, denom -> micro-units."""

    address: str = ""
    balances: dict[str, int] = field(default_factory=dict)


@dataclass
class FlattenResult:
    """``venue_flatten``: the crossing order sent to work a position off (``side``, ``lots``,
    its limit and the mid it was priced against, the unfilled rest cancelled), or, with
    ``filled`` 0 and a ``reason``, why none was sent (``limit``: the price the budget
    allowed)."""

    side: str = ""
    lots: int = 0
    limit_ticks: int = 0
    mid_ticks: float = 0.0
    rest_cancelled: int = 0
    filled: int | None = None
    reason: str = ""
    limit: int | None = None


@dataclass
class AuditEntry:
    actor: str
    action: str
    target: str
    params: dict[str, Any]
    outcome: str
    request_id: str


@dataclass
class Notice:
    title: str
    text: str
    severity: str = "info"
    dedup_key: str = ""


@dataclass
class RiskResetInput:
    markets: list[str]


@dataclass
class RiskResetResult:
    markets: dict[str, dict[str, Any]]


@dataclass
class VenueRequest:
    market: str
    key_ref: str = ""  # which key's orders; empty: the market's configured trading key
    loss_budget_usdc: float = 0.0
    position_lots: int = 0  # for flattening: the position to work off (signed)


def deploy_model_id(market: str) -> str:
    """One model deployment per market at a time (API, CLI and schedule share this id)."""
    return f"deploy-model/{market}"


@dataclass
class ModelGates:
    """What a candidate must show before and after it goes live."""

    min_accuracy: float = 0.55  # directional, non-flat moves, at the quoting horizon
    max_accuracy_drop: float = 0.01  # against the live model on the same held-out data
    max_calibration_error: float = 0.05
    max_latency_p99_us: float = 1000.0
    min_live_accuracy: float = 0.52  # after promotion, else roll back
    min_shadow_agreement: float = 0.0


@dataclass
class ModelScore:
    """One model on the held-out data, at the quoting horizon."""

    version: str
    accuracy: float
    calibration_error: float
    latency_p99_us: float
    path: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """``ml_validate``: the candidate and (if there is one) the live model, scored on the
    same held-out data."""

    candidate: ModelScore
    live: ModelScore | None = None
    holdout_seeds: list[int] = field(default_factory=list)
    rows: int = 0


@dataclass
class DeployModelInput:
    market: str
    artifact_path: str = ""  # take this artifact, or train one:
    train_seeds: str = "1-4"
    train_minutes: float = 20.0
    train_epochs: int = 3
    kind: str = "transformer"
    holdout_seeds: str = "101-102"
    holdout_minutes: float = 10.0
    shadow_s: float = 60.0
    monitor_s: float = 300.0
    gates: ModelGates = field(default_factory=ModelGates)
    actor: str = "operator"


@dataclass
class DeployModelResult:
    market: str
    candidate: str
    version: str
    outcome: str  # promoted | rejected | rolled_back
    reasons: list[str]
    validation: dict[str, Any] = field(default_factory=dict)
    live: dict[str, Any] = field(default_factory=dict)


RUNBOOKS = ("reconcile", "flatten", "feed_failover", "restart_hotpath")
# runbook -> steps, as the Runbook workflow runs them; "approve" waits for a human. Data the
# API lists too, so it lives with the types (docs/runbook.md's table is checked against it)
PLANS: dict[str, list[str]] = {
    "reconcile": ["hot_path_view", "venue_view", "compare"],
    "flatten": ["hot_path_view", "approve", "reduce_only", "wait_flat"],
    "feed_failover": ["hot_path_view", "approve", "fail_over", "hot_path_after"],
    "restart_hotpath": ["approve", "stop", "start", "hot_path_after"],
}


@dataclass
class RunbookInput:
    runbook: str
    market: str
    actor: str = "operator"
    reason: str = ""
    flatten_timeout_s: float = 300.0
    flat_lots: int = 0  # |position| at or below this counts as flat
    poll_s: float = 5.0


@dataclass
class RunbookStep:
    name: str
    status: str = "pending"  # pending | waiting_approval | running | done | failed | aborted
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunbookResult:
    runbook: str
    market: str
    outcome: str  # done | aborted | failed
    steps: list[RunbookStep]


@dataclass
class Decision:
    step: str
    actor: str = "operator"
    reason: str = ""
