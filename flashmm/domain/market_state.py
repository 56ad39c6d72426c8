"""A market's state: one state machine for the hot path, the lifecycle workflow and the API.

States (``MarketState``): STOPPED (no quotes), TRADING (quoting), HALTED (kill switch: no
quotes until an explicit resume, and it stays so across restarts). Commands (``Command``):
start, stop, halt, resume, set_params, rollback_model. What each command does in each state
is the data of ``TABLE`` (as nautilus_trader's component state machine does it): a
``Move`` to a state, or a ``Refusal`` whose ``reason`` is data. Two planes read it:

* the **lifecycle** (an operator's request, ``request``) refuses every ``Refusal``;
* the **hot path** (a command to carry out, ``apply``) also applies what the table marks
  ``tolerated``: a request that would change nothing the operator asked for, but whose
  effect the hot path still carries out (a stop of a halted market cancels its orders and
  it stays halted; a start of a trading market is a no-op answering "trading").

A halt is always applied: from HALTED it is a no-op move to HALTED, never refused.

Wire strings (byte-identical, persisted and sent): the hot path's control API and its
control-state JSON use ``"stopped"``/``"trading"``/``"halted"`` (``MarketState.value``); the
lifecycle's workflow state, search attribute and recorded histories use ``"STOPPED"``/
``"TRADING"``/``"HALTED"`` (``MarketState.lifecycle``). Mapping between them lives here only.

A second axis, ``RiskState`` (the risk engine's ACTIVE → REDUCING → HALTED, defined here and
named ``hotpath.risk.TradingState`` there), is not a market state: the engine moves it by
itself (a drawdown reduces, a daily loss halts). The two meet in ``Activity``, what a hot path
actually does: halted > stopped > reducing > trading (``activity``). A market HALTED always
has its risk engine HALTED (the halt command halts both; a restart re-applies it); a risk
engine HALTED under a TRADING market is a halt by the engine, shown as activity "halted".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "TABLE",
    "Activity",
    "Command",
    "MarketState",
    "Move",
    "Refusal",
    "RefusalReason",
    "RiskState",
    "activity",
    "activity_state",
    "apply",
    "request",
]


class MarketState(Enum):
    """A market's desired state; the value is the hot path's wire string."""

    STOPPED = "stopped"
    TRADING = "trading"
    HALTED = "halted"

    @property
    def lifecycle(self) -> str:
        """The lifecycle workflow's string (workflow state, search attribute, histories)."""
        return self.value.upper()

    @classmethod
    def from_lifecycle(cls, name: str) -> MarketState:
        """``"STOPPED"`` → STOPPED; a ValueError for anything else."""
        if name != name.upper():
            raise ValueError(f"not a lifecycle state: {name!r}")
        return cls(name.lower())


class Command(Enum):
    """What an operator or the control plane asks of a market's state."""

    START = "start"
    STOP = "stop"
    HALT = "halt"
    RESUME = "resume"
    SET_PARAMS = "set_params"
    ROLLBACK_MODEL = "rollback_model"


class RefusalReason(Enum):
    """Why a command is refused in a state (machine-readable)."""

    HALTED = "halted"  # halted: resume it first
    NOT_HALTED = "not_halted"  # resume of a market that is not halted
    ALREADY_TRADING = "already_trading"  # start of a trading market


@dataclass(frozen=True, slots=True)
class Move:
    """The command is applied; the market is then in ``target`` (the same state: a no-op)."""

    state: MarketState
    command: Command
    target: MarketState

    @property
    def changes(self) -> bool:
        return self.target is not self.state


@dataclass(frozen=True, slots=True)
class Refusal:
    """The command is refused in ``state`` for ``reason``. ``tolerated``: the hot path
    carries it out all the same and stays in ``state`` (only the operator's request is
    refused)."""

    state: MarketState
    command: Command
    reason: RefusalReason
    tolerated: bool = False


Outcome = Move | Refusal

_S, _T, _H = MarketState.STOPPED, MarketState.TRADING, MarketState.HALTED
_C = Command


def _move(state: MarketState, command: Command, target: MarketState) -> Move:
    return Move(state, command, target)


def _refuse(
    state: MarketState, command: Command, reason: RefusalReason, tolerated: bool = False
) -> Refusal:
    return Refusal(state, command, reason, tolerated)


TABLE: dict[tuple[MarketState, Command], Outcome] = {
    # STOPPED
    (_S, _C.START): _move(_S, _C.START, _T),
    (_S, _C.STOP): _move(_S, _C.STOP, _S),
    (_S, _C.HALT): _move(_S, _C.HALT, _H),
    (_S, _C.RESUME): _refuse(_S, _C.RESUME, RefusalReason.NOT_HALTED),
    (_S, _C.SET_PARAMS): _move(_S, _C.SET_PARAMS, _S),
    (_S, _C.ROLLBACK_MODEL): _move(_S, _C.ROLLBACK_MODEL, _S),
    # TRADING
    (_T, _C.START): _refuse(_T, _C.START, RefusalReason.ALREADY_TRADING, tolerated=True),
    (_T, _C.STOP): _move(_T, _C.STOP, _S),
    (_T, _C.HALT): _move(_T, _C.HALT, _H),
    (_T, _C.RESUME): _refuse(_T, _C.RESUME, RefusalReason.NOT_HALTED),
    (_T, _C.SET_PARAMS): _move(_T, _C.SET_PARAMS, _T),
    (_T, _C.ROLLBACK_MODEL): _move(_T, _C.ROLLBACK_MODEL, _T),
    # HALTED: only a resume leaves it; a halt is applied again (a no-op)
    (_H, _C.START): _refuse(_H, _C.START, RefusalReason.HALTED),
    (_H, _C.STOP): _refuse(_H, _C.STOP, RefusalReason.HALTED, tolerated=True),
    (_H, _C.HALT): _move(_H, _C.HALT, _H),
    (_H, _C.RESUME): _move(_H, _C.RESUME, _T),
    (_H, _C.SET_PARAMS): _refuse(_H, _C.SET_PARAMS, RefusalReason.HALTED, tolerated=True),
    (_H, _C.ROLLBACK_MODEL): _move(_H, _C.ROLLBACK_MODEL, _H),
}


def request(state: MarketState, command: Command) -> Outcome:
    """An operator's request (the lifecycle): every refusal stands."""
    return TABLE[(state, command)]


def apply(state: MarketState, command: Command) -> Outcome:
    """A command the hot path carries out: a tolerated refusal is a move to the same state."""
    out = TABLE[(state, command)]
    if isinstance(out, Refusal) and out.tolerated:
        return Move(state, command, state)
    return out


class RiskState(Enum):
    """The risk engine's own state (another axis than ``MarketState``): ACTIVE (whatever the
    limits allow) → REDUCING (only orders that shrink the position) → HALTED (cancels only)."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class Activity(Enum):
    """What a hot path does, both axes combined (its Redis record's ``state``)."""

    TRADING = "trading"
    REDUCING = "reducing"
    STOPPED = "stopped"
    HALTED = "halted"


def activity(quoting_enabled: bool, risk: RiskState) -> Activity:
    """halted > stopped > reducing > trading: a risk halt shows even on a stopped market."""
    if risk is RiskState.HALTED:
        return Activity.HALTED
    if not quoting_enabled:
        return Activity.STOPPED
    return Activity.REDUCING if risk is RiskState.REDUCING else Activity.TRADING


def activity_state(a: Activity) -> MarketState:
    """The market state an activity fulfils (reduce-only is still trading)."""
    return MarketState.TRADING if a is Activity.REDUCING else MarketState(a.value)
