"""The versioned feature schema: names and order of the 64 features, and the normalisation
that travels with every model. A model whose schema hash differs is refused at load."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

FEATURE_NAMES: tuple[str, ...] = (
    # price and momentum (bps unless noted)
    "ret_1",
    "ret_5",
    "ret_10",
    "ret_30",
    "ret_1s",
    "ret_5s",
    "ret_30s",
    "microprice_dev",
    "spread_bps",
    "spread_ticks",
    "wmid_dev_3",
    "wmid_dev_5",
    # depth imbalance
    "imb_1",
    "imb_2",
    "imb_3",
    "imb_5",
    "imb_10",
    "imb_1_ewma",
    "imb_1_change",
    "imb_10bps",
    # order-flow imbalance (Cont, Kukanov & Stoikov), in lots normalised by depth
    "ofi_1",
    "ofi_5",
    "ofi_10",
    "ofi_ewma",
    "ofi_5_norm",
    "ofi_1s",
    # trades
    "trade_sign_10",
    "trade_sign_50",
    "trade_flow_1s",
    "trade_flow_5s",
    "trade_flow_30s",
    "trade_count_1s",
    "trade_count_5s",
    "volume_1s",
    "volume_5s",
    "vwap_dev_5s",
    # volatility
    "vol_fast",
    "vol_slow",
    "vol_ratio",
    "vol_garch",
    "range_10",
    "abs_ret_1",
    # queue and depth shape (log1p lots)
    "bid_q1",
    "bid_q2",
    "bid_q3",
    "bid_q4",
    "bid_q5",
    "ask_q1",
    "ask_q2",
    "ask_q3",
    "ask_q4",
    "ask_q5",
    "bid_slope",
    "ask_slope",
    # time and queue dynamics
    "secs_since_trade",
    "secs_since_mid_move",
    "mid_moves_10",
    "bid_q1_change",
    "ask_q1_change",
    # context
    "inventory_util",
    "mid_vs_ewma_slow",
    "mid_vs_ewma_fast",
    "large_flow_5s",
    "depth_total",
)
N_FEATURES = len(FEATURE_NAMES)
assert N_FEATURES == 64, N_FEATURES


@dataclass(frozen=True)
class FeatureSchema:
    """Names, order and z-score normalisation (per-feature mean/std, clipped)."""

    names: tuple[str, ...] = FEATURE_NAMES
    version: int = SCHEMA_VERSION
    mean: tuple[float, ...] = field(default_factory=lambda: (0.0,) * N_FEATURES)
    std: tuple[float, ...] = field(default_factory=lambda: (1.0,) * N_FEATURES)
    clip: float = 10.0

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.names) or len(self.std) != len(self.names):
            raise ValueError("schema mean/std must have one value per feature")
        if any(s <= 0 for s in self.std):
            raise ValueError("schema std values must be positive")

    @property
    def layout_hash(self) -> str:
        """Identity of names + order + version (what a model was trained on)."""
        body = json.dumps({"v": self.version, "names": list(self.names)})
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "names": list(self.names),
            "mean": list(self.mean),
            "std": list(self.std),
            "clip": self.clip,
            "hash": self.layout_hash,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureSchema:
        s = cls(
            tuple(str(n) for n in d["names"]),
            int(d["version"]),
            tuple(float(x) for x in d["mean"]),
            tuple(float(x) for x in d["std"]),
            float(d["clip"]),
        )
        if "hash" in d and d["hash"] != s.layout_hash:
            raise ValueError("feature schema hash does not match its names/version")
        return s


class SchemaMismatchError(ValueError):
    """A model was trained on a different feature layout than this code computes."""


def check_compatible(model_schema: FeatureSchema) -> None:
    live = FeatureSchema()
    if model_schema.layout_hash != live.layout_hash:
        missing = set(live.names) ^ set(model_schema.names)
        raise SchemaMismatchError(
            f"model feature schema {model_schema.layout_hash} (v{model_schema.version}) does "
            f"not match this code's {live.layout_hash} (v{live.version})"
            + (f"; differing features: {sorted(missing)[:8]}" if missing else "; order differs")
        )
