"""Inputs, outputs, ids and pure helpers of the RotateSigningKey workflow (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FEE_DENOM = "usei"


def rotation_id(market: str) -> str:
    """The workflow id: one rotation per market at a time (a second start is refused while
    one runs); each run's own identity is its run id."""
    return f"rotate-key/{market}"


def rotation_label(market: str, first_run_id: str) -> str:
    """The new key's keystore label: one key per rotation. ``first_run_id`` is the run id the
    rotation started with (``workflow.info().first_execution_run_id``), which a reset (or a
    retry) keeps: a reset run finds the key the first run created instead of making a second
    one, and a new rotation of the market, under the same workflow id, gets its own."""
    return f"rotation {market} {first_run_id}"


# --- contract ---------------------------------------------------------------------------------
@dataclass
class RotateKeyInput:
    market: str
    warm_key_ref: str  # operational key that funds the new key and gets the sweep back
    fee_usei: int  # usei for the new key's fees (added to ``assets`` in usei)
    assets: dict[str, int] = field(default_factory=dict)  # quote/base denom -> micro-units
    reason: str = ""
    actor: str = "operator"
    old_key_ref: str = ""  # optional guard: the key the hot path must be signing with now
    drain_s: float = 2.0  # after the switch, for the old key's last transactions to land
    # stop quoting around switch_key when trading (the hot path's switch cancels while its
    # loop may re-quote, and then refuses: "order(s) of the old key still open")
    pause_quoting: bool = True


@dataclass
class KeyInfo:
    ref: str
    address: str
    tier: str
    status: str


@dataclass
class CreateKeyRequest:
    tier: str
    label: str  # unique per rotation run: a retried create finds its key by it


@dataclass
class TransferRequest:
    market: str
    from_ref: str
    to_address: str
    mode: str  # "top_up": bring to_address up to ``coins``; "sweep": all, less the fee
    coins: dict[str, int] = field(default_factory=dict)
    memo: str = ""


@dataclass
class PreparedTransfer:
    """A signed transfer, or nothing to move (``amounts`` empty, ``note`` says why)."""

    from_address: str
    to_address: str
    amounts: dict[str, int]
    fee: int = 0
    sequence: int = 0
    tx_hash: str = ""
    tx_b64: str = ""
    note: str = ""


@dataclass
class TransferOutcome:
    tx_hash: str
    height: int
    amounts: dict[str, int]
    fee: int
    how: str  # landed | found landed (a retry) | nothing to move: ...


@dataclass
class RotateKeyResult:
    market: str
    outcome: str = "in progress"  # rotated | rolled back | rollback incomplete | incomplete
    detail: str = ""
    old_key_ref: str = ""
    old_address: str = ""
    new_key_ref: str = ""
    new_address: str = ""
    warm_key_ref: str = ""
    warm_address: str = ""
    funded: dict[str, int] = field(default_factory=dict)  # warm -> new
    funding_fee: int = 0
    funding_tx: str = ""
    drained: int = 0  # orders of the old key the drain cancelled
    swept: dict[str, int] = field(default_factory=dict)  # old -> warm (or new -> warm)
    sweep_fee: int = 0
    sweep_tx: str = ""
    verification: dict[str, Any] = field(default_factory=dict)
    audit_hash: str = ""
    notified: bool = False


def input_problems(inp: RotateKeyInput) -> list[str]:
    out = []
    if not inp.market:
        out.append("market is required")
    if not inp.warm_key_ref:
        out.append("warm_key_ref is required")
    if inp.fee_usei <= 0:
        out.append("fee_usei must be positive")
    if any(v < 0 for v in inp.assets.values()) or any(not d for d in inp.assets):
        out.append("assets must map denoms to non-negative micro-units")
    if inp.old_key_ref and inp.old_key_ref == inp.warm_key_ref:
        out.append("the warm key cannot be the key rotated out")
    if inp.drain_s < 0:
        out.append("drain_s must not be negative")
    return out


def funding_target(inp: RotateKeyInput) -> dict[str, int]:
    """The balances the new key is topped up to: the assets plus the fee allowance."""
    target = {d: v for d, v in inp.assets.items() if v > 0}
    target[FEE_DENOM] = target.get(FEE_DENOM, 0) + inp.fee_usei
    return target


# --- policies ---------------------------------------------------------------------------------
