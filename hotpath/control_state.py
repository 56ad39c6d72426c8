"""The hot path's persisted control state (``<market>.control.json``): the desired state,
run-time parameter changes, model, key reference, the configured risk ceilings it last
started with, and the command ids it has applied, each bound to its command and arguments."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from flashmm.domain.market_state import MarketState

# the desired state as persisted: the market state machine's wire strings (byte-identical)
STATES = tuple(s.value for s in MarketState)


class IdempotencyConflictError(ValueError):
    """A command id already used for another command or other arguments."""


def fingerprint(command: str, args: dict[str, Any]) -> str:
    """What an id is bound to: the command and its arguments, canonically encoded."""
    canon = json.dumps(
        {"command": command, "args": args}, sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canon.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Applied:
    """A command id's record: what it was bound to and the answer it got."""

    command: str
    fingerprint: str | None  # None: recorded before ids were bound to their payload
    answer: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "fingerprint": self.fingerprint, "answer": self.answer}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Applied:
        if "answer" in d and "fingerprint" in d:
            return cls(str(d["command"]), d["fingerprint"], d["answer"])
        return cls(str(d.get("command", "")), None, d)  # an older state file: the answer only

    def conflicts(self, command: str, fp: str) -> bool:
        if self.fingerprint is None:
            return self.command != command
        return not hmac.compare_digest(self.fingerprint, fp)


@dataclass
class ControlState:
    state: str = "stopped"
    reason: str = ""
    quoting: dict[str, Any] = field(default_factory=dict)
    risk: dict[str, Any] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    key_ref: str = ""
    ceilings: dict[str, Any] = field(default_factory=dict)  # the risk limits configured
    applied: OrderedDict[str, Applied] = field(default_factory=OrderedDict)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "quoting": self.quoting,
            "risk": self.risk,
            "model": self.model,
            "key_ref": self.key_ref,
            "ceilings": self.ceilings,
            "applied": [[k, v.to_json()] for k, v in self.applied.items()],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ControlState:
        s = cls(
            d.get("state", "stopped"),
            d.get("reason", ""),
            d.get("quoting", {}),
            d.get("risk", {}),
            d.get("model", {}),
            d.get("key_ref", ""),
        )
        if s.state not in STATES:
            raise ValueError(f"control state file has unknown state {s.state!r}")
        s.ceilings = d.get("ceilings", {})
        s.applied = OrderedDict((k, Applied.from_json(v)) for k, v in d.get("applied", []))
        return s
