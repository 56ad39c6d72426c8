"""What the LLM regime advisor may be sent: the summary schema (sections and their keys),
the inventory bucket, and ``encode_summary``, which refuses anything else — unknown keys,
free text, non-finite numbers, or text holding a secret registered with ``flashmm.logs``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from flashmm.logs import known_secrets

MAX_LABEL_CHARS: Final = 32

# summary section -> the model features (by schema name) it carries when features are on
FEATURE_SECTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "volatility": ("vol_fast", "vol_slow", "vol_ratio", "vol_garch", "range_10"),
    "returns_bps": ("ret_1s", "ret_5s", "ret_30s"),
    "trades": (
        "trade_sign_10",
        "trade_sign_50",
        "trade_flow_1s",
        "trade_flow_5s",
        "trade_flow_30s",
        "trade_count_1s",
        "trade_count_5s",
        "volume_1s",
        "volume_5s",
        "large_flow_5s",
        "secs_since_trade",
    ),
    "flow": ("imb_1", "imb_5", "ofi_5_norm", "ofi_ewma", "microprice_dev"),
}

# Section -> allowed keys (None: a scalar at the top level). Anything else is refused.
SUMMARY_SCHEMA: Final[Mapping[str, frozenset[str] | None]] = {
    "market": None,  # the public symbol, e.g. SEI/USDC
    "state": None,  # active / reducing / halted
    "inventory_utilisation": None,  # a bucket label, never a size
    "features_live": None,
    "book": frozenset(
        {
            "mid",
            "spread_ticks",
            "spread_bps",
            "bid_depth_5",
            "ask_depth_5",
            "imbalance_5",
            "bid_levels",
            "ask_levels",
        }
    ),
    "volatility": frozenset({"sigma_bps_sqrt_s", *FEATURE_SECTIONS["volatility"]}),
    "returns_bps": frozenset(FEATURE_SECTIONS["returns_bps"]),
    "trades": frozenset(FEATURE_SECTIONS["trades"]),
    "flow": frozenset(FEATURE_SECTIONS["flow"]),
    "model": frozenset({"direction", "confidence"}),
}
_LABEL = re.compile(r"^[A-Za-z0-9/_.%<>=+ -]*$")


def utilisation_bucket(util: float) -> str:
    """A coarse label for |position notional| / limit: the only inventory the LLM sees."""
    u = abs(util)
    if not math.isfinite(u):
        return "unknown"
    if u == 0.0:
        return "none"
    if u < 0.25:
        return "low"
    if u < 0.5:
        return "medium"
    if u < 0.8:
        return "high"
    return "near_limit"


def _scalar(where: str, v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            return None  # strict JSON has no NaN/Infinity
        return v if isinstance(v, int) else float(f"{f:.6g}")
    if isinstance(v, str):
        if len(v) > MAX_LABEL_CHARS or not _LABEL.match(v):
            raise ValueError(f"summary field {where} is not a short plain label")
        return v
    raise ValueError(f"summary field {where} has unsupported type {type(v).__name__}")


def encode_summary(summary: Mapping[str, Any]) -> str:
    """Compact JSON of ``summary`` after checking it against ``SUMMARY_SCHEMA``. Raises
    ``ValueError`` for an unknown key, a nested value where a scalar belongs (or the
    reverse), free text, or text holding a registered secret."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if key not in SUMMARY_SCHEMA:
            raise ValueError(f"summary field {key!r} is not allowed")
        allowed = SUMMARY_SCHEMA[key]
        if allowed is None:
            out[key] = _scalar(key, value)
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"summary section {key!r} must be a mapping")
        section: dict[str, Any] = {}
        for sub, v in value.items():
            if sub not in allowed:
                raise ValueError(f"summary field {key}.{sub!r} is not allowed")
            section[sub] = _scalar(f"{key}.{sub}", v)
        out[key] = section
    text = json.dumps(out, separators=(",", ":"), sort_keys=True, allow_nan=False)
    if any(secret in text for secret in known_secrets()):
        raise ValueError("summary contains a registered secret")
    return text
