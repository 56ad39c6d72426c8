"""Run-time bounds: how far a parameter may be moved while a market runs.

The settings file's risk limits are ceilings. A run-time change (operator API, control API,
TradingLifecycle update) may only move a parameter inside its bound: a risk limit between a
floor and its configured value (the safe direction: tighter), the volatility breaker's
cool-down between its configured value and a day (longer is safer), each quoting parameter
inside a range. Every bound can be narrowed in the settings file (``hotpath.bounds``); a risk
bound can never reach above its configured limit, so raising a ceiling takes a settings
change and a restart. Values must be numbers of the field's kind: a boolean is not a number,
an integer field takes integers, nothing non-finite or out of range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from flashmm.config.quoting import Mode, QuoteModel, QuoteParams
from flashmm.config.risk import RiskLimits
from flashmm.inputs import InputError

# quoting parameter → default (lo, hi): wide enough for any sane strategy, narrow enough that
# no typo (0 ticks of spread, 1e12 of size) gets through
QUOTING_DEFAULTS: dict[str, tuple[float, float]] = {
    "gamma": (0.001, 10.0),
    "horizon_s": (0.05, 60.0),
    "prior_sigma": (0.01, 100.0),
    "prior_A": (0.01, 100.0),
    "prior_k": (0.01, 100.0),
    "levels": (1, 10),
    "level_spacing_ticks": (1, 100),
    "order_notional": (1.0, 10_000.0),
    "size_decay": (0.1, 10.0),
    "min_half_spread_ticks": (0.5, 50.0),
    "max_half_spread_ticks": (1.0, 500.0),
    "vol_ref": (0.01, 100.0),
    "vol_widen": (0.0, 10.0),
    "signal_skew_ticks": (0.0, 20.0),
    "signal_min_confidence": (0.0, 1.0),
    "inventory_skew_mult": (0.0, 10.0),
    "requote_min_interval_s": (0.005, 10.0),
    "keep_size_tolerance": (0.0, 1.0),
}
# risk limit → default floor; the ceiling is the configured limit
RISK_FLOORS: dict[str, float] = {
    "max_position_notional": 1.0,
    "max_order_notional": 1.0,
    "max_open_notional": 1.0,
    "max_actions_per_s": 1,
    "daily_loss_limit": 1.0,
    "max_drawdown": 1.0,
    "stale_after_s": 0.05,
    "vol_breaker_sigma": 0.1,
}
# risk settings where larger is safer: (configured value, this) is the range
LONGER_IS_SAFER: dict[str, float] = {"vol_breaker_cooldown_s": 86_400.0}
ENUMS: dict[str, type[Enum]] = {"model": QuoteModel, "mode": Mode}


@dataclass(frozen=True, slots=True)
class Bound:
    lo: float
    hi: float
    integer: bool = False

    def check(self, value: Any, loc: tuple[str, str]) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(loc, "must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(loc, "must be a finite number")
        if self.integer and not (isinstance(value, int) or value.is_integer()):
            raise InputError(loc, "must be an integer")
        if not self.lo <= value <= self.hi:  # int/float comparison: no overflow for huge ints
            raise InputError(loc, f"must be between {_num(self.lo)} and {_num(self.hi)}")
        return int(value) if self.integer else float(value)

    def as_list(self) -> list[float]:
        return [self.lo, self.hi]


@dataclass(frozen=True, slots=True)
class RuntimeBounds:
    quoting: Mapping[str, Bound]
    risk: Mapping[str, Bound]

    @classmethod
    def build(
        cls,
        params: QuoteParams,
        limits: RiskLimits,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> RuntimeBounds:
        """Defaults narrowed by ``overrides`` ({"quoting"|"risk": {name: [lo, hi]}}); the
        configured values must lie inside their bounds. Raises ValueError naming the
        setting."""
        overrides = overrides or {}
        unknown = set(overrides) - {"quoting", "risk"}
        if unknown:
            raise ValueError(f"bounds: unknown section(s) {sorted(unknown)}")
        quoting = {
            name: Bound(float(lo), float(hi), isinstance(getattr(params, name), int))
            for name, (lo, hi) in QUOTING_DEFAULTS.items()
        }
        risk: dict[str, Bound] = {}
        for f in fields(limits):
            v = getattr(limits, f.name)
            integer = isinstance(v, int)
            if f.name in LONGER_IS_SAFER:
                risk[f.name] = Bound(v, max(v, LONGER_IS_SAFER[f.name]), integer)
            else:
                risk[f.name] = Bound(min(RISK_FLOORS[f.name], v), v, integer)
        for section, table in (("quoting", quoting), ("risk", risk)):
            for name, pair in (overrides.get(section) or {}).items():
                table[name] = _override(section, name, pair, table)
        for name, b in quoting.items():
            _inside(b, getattr(params, name), f"quoting.{name}")
        for name, b in risk.items():
            _inside(b, getattr(limits, name), f"risk.{name}")
        return cls(quoting, risk)

    def check(self, section: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values, typed, when every one is a known parameter inside its bound; else
        InputError naming the first bad one (nothing is applied)."""
        table = {"quoting": self.quoting, "risk": self.risk}.get(section)
        if table is None:
            raise InputError((section,), "unknown section (quoting or risk)")
        out: dict[str, Any] = {}
        for name, value in values.items():
            loc = (section, str(name))
            if section == "quoting" and name in ENUMS:
                allowed = [m.value for m in ENUMS[name]]
                if value not in allowed or not isinstance(value, str):
                    raise InputError(loc, f"must be one of {allowed}")
                out[name] = ENUMS[name](value)
                continue
            bound = table.get(name)
            if bound is None:
                raise InputError(loc, "is not a parameter that may change at run time")
            out[name] = bound.check(value, loc)
        return out

    def describe(self) -> dict[str, dict[str, list[float]]]:
        return {
            "quoting": {k: b.as_list() for k, b in self.quoting.items()},
            "risk": {k: b.as_list() for k, b in self.risk.items()},
        }


def _override(section: str, name: str, pair: Any, table: dict[str, Bound]) -> Bound:
    where = f"bounds.{section}.{name}"
    if name not in table:
        raise ValueError(f"{where}: not a run-time parameter")
    if (
        not isinstance(pair, list | tuple)
        or len(pair) != 2
        or any(isinstance(x, bool) or not isinstance(x, int | float) for x in pair)
        or not all(math.isfinite(x) for x in pair)
        or pair[0] > pair[1]
    ):
        raise ValueError(f"{where}: must be [lo, hi] with finite lo <= hi")
    default = table[name]
    lo, hi = float(pair[0]), float(pair[1])
    if section == "risk" and name not in LONGER_IS_SAFER and hi > default.hi:
        raise ValueError(
            f"{where}: {_num(hi)} is above the configured limit {_num(default.hi)} "
            "(the configured risk limit is the ceiling)"
        )
    if section == "risk" and name in LONGER_IS_SAFER and lo < default.lo:
        raise ValueError(f"{where}: {_num(lo)} is below the configured {_num(default.lo)}")
    return Bound(lo, hi, default.integer)


def _inside(b: Bound, value: Any, where: str) -> None:
    if not b.lo <= value <= b.hi:
        raise ValueError(
            f"{where}: the configured {_num(value)} is outside its run-time bounds "
            f"[{_num(b.lo)}, {_num(b.hi)}]"
        )


def _num(x: float) -> str:
    return f"{x:g}"
