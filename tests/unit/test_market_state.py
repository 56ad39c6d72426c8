"""The market state machine: every command from every state, for both planes, and the wire
strings each plane persists or sends."""

from __future__ import annotations

import pytest

from flashmm.domain import market_state as ms
from flashmm.domain.market_state import (
    TABLE,
    Activity,
    Command,
    MarketState,
    Move,
    Refusal,
    RefusalReason,
    RiskState,
)

S, T, H = MarketState.STOPPED, MarketState.TRADING, MarketState.HALTED
R = RefusalReason

# (state, command) -> the operator's answer (target state, or a refusal reason) and the
# hot path's target state (None: refused there too)
EXPECTED: dict[
    tuple[MarketState, Command], tuple[MarketState | RefusalReason, MarketState | None]
] = {
    (S, Command.START): (T, T),
    (S, Command.STOP): (S, S),
    (S, Command.HALT): (H, H),
    (S, Command.RESUME): (R.NOT_HALTED, None),
    (S, Command.SET_PARAMS): (S, S),
    (S, Command.ROLLBACK_MODEL): (S, S),
    (T, Command.START): (R.ALREADY_TRADING, T),
    (T, Command.STOP): (S, S),
    (T, Command.HALT): (H, H),
    (T, Command.RESUME): (R.NOT_HALTED, None),
    (T, Command.SET_PARAMS): (T, T),
    (T, Command.ROLLBACK_MODEL): (T, T),
    (H, Command.START): (R.HALTED, None),
    (H, Command.STOP): (R.HALTED, H),
    (H, Command.HALT): (H, H),
    (H, Command.RESUME): (T, T),
    (H, Command.SET_PARAMS): (R.HALTED, H),
    (H, Command.ROLLBACK_MODEL): (H, H),
}


def test_the_table_covers_every_command_in_every_state() -> None:
    assert set(TABLE) == {(s, c) for s in MarketState for c in Command}
    assert set(EXPECTED) == set(TABLE)


@pytest.mark.parametrize(("state", "command"), sorted(EXPECTED, key=str))
def test_each_transition_for_the_operator_and_the_hot_path(
    state: MarketState, command: Command
) -> None:
    operator, hotpath = EXPECTED[(state, command)]
    asked = ms.request(state, command)
    assert asked.state is state and asked.command is command
    if isinstance(operator, RefusalReason):
        assert isinstance(asked, Refusal) and asked.reason is operator
    else:
        assert isinstance(asked, Move) and asked.target is operator
    done = ms.apply(state, command)
    if hotpath is None:
        assert isinstance(done, Refusal) and not done.tolerated
        assert done == asked  # refused by both, for the same reason
    else:
        assert isinstance(done, Move) and done.target is hotpath


def test_a_halt_is_never_refused_and_only_a_resume_leaves_halted() -> None:
    for state in MarketState:
        out = ms.apply(state, Command.HALT)
        assert isinstance(out, Move) and out.target is H
    halted_halt = ms.apply(H, Command.HALT)
    assert isinstance(halted_halt, Move) and not halted_halt.changes  # a no-op
    leaves = [c for c in Command if (m := ms.apply(H, c)) and isinstance(m, Move) and m.changes]
    assert leaves == [Command.RESUME]


def test_refusals_are_data() -> None:
    out = ms.request(H, Command.START)
    assert out == Refusal(H, Command.START, RefusalReason.HALTED, tolerated=False)
    assert out.reason.value == "halted"
    with pytest.raises(AttributeError):
        out.reason = RefusalReason.NOT_HALTED  # type: ignore[misc]


def test_wire_strings_are_unchanged() -> None:
    # the hot path's control API and control-state JSON
    assert [s.value for s in MarketState] == ["stopped", "trading", "halted"]
    # the lifecycle's workflow state, search attribute and recorded histories
    assert [s.lifecycle for s in MarketState] == ["STOPPED", "TRADING", "HALTED"]
    assert [MarketState.from_lifecycle(n) for n in ("STOPPED", "TRADING", "HALTED")] == [S, T, H]
    with pytest.raises(ValueError):
        MarketState.from_lifecycle("stopped")
    with pytest.raises(ValueError):
        MarketState.from_lifecycle("REDUCING")
    assert [c.value for c in Command] == [
        "start",
        "stop",
        "halt",
        "resume",
        "set_params",
        "rollback_model",
    ]
    # the risk engine's axis and the hot path's activity (Redis record, control API)
    assert [r.value for r in RiskState] == ["active", "reducing", "halted"]
    assert [a.value for a in Activity] == ["trading", "reducing", "stopped", "halted"]


def test_workflow_and_hot_path_constants_come_from_the_domain() -> None:
    from hotpath.control_state import STATES
    from hotpath.risk import TradingState
    from workflows.types import HALTED, STOPPED, TRADING

    assert (STOPPED, TRADING, HALTED) == ("STOPPED", "TRADING", "HALTED")
    assert tuple(s.value for s in MarketState) == STATES
    assert TradingState is RiskState


@pytest.mark.parametrize(
    ("enabled", "risk", "expected"),
    [
        (True, RiskState.ACTIVE, Activity.TRADING),
        (True, RiskState.REDUCING, Activity.REDUCING),
        (True, RiskState.HALTED, Activity.HALTED),
        (False, RiskState.ACTIVE, Activity.STOPPED),
        (False, RiskState.REDUCING, Activity.STOPPED),
        (False, RiskState.HALTED, Activity.HALTED),
    ],
)
def test_activity_combines_the_two_axes(enabled: bool, risk: RiskState, expected: Activity) -> None:
    assert ms.activity(enabled, risk) is expected


def test_an_activity_fulfils_a_market_state() -> None:
    assert ms.activity_state(Activity.REDUCING) is T  # reduce-only is still trading
    assert ms.activity_state(Activity.TRADING) is T
    assert ms.activity_state(Activity.STOPPED) is S
    assert ms.activity_state(Activity.HALTED) is H
