"""Settings for the control plane: Temporal, workers, hot-path control endpoints, schedules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ControlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    # market -> base URL of its hot path's control API on this host (per-host worker)
    hotpaths: dict[str, str] = Field(default_factory=dict)
    risk_reset_cron: str = "0 0 * * *"  # UTC midnight
    # key rotation per market: created paused until a warm (funding) key is configured
    key_rotation_cron: str = "0 3 * * 1"  # Mondays 03:00 UTC
    warm_key_ref: str = ""  # keystore:<id> of the operational key
    rotation_fee_usei: int = Field(5_000_000, ge=0)
    rotation_assets: dict[str, int] = Field(default_factory=dict)  # denom -> micro-units
    # retraining per market through DeployModel: created paused (turn on deliberately)
    retrain_cron: str = "0 4 * * 0"  # Sundays 04:00 UTC
    retrain_paused: bool = True
    ui_port: int = Field(8233, ge=1, le=65535)
    # the worker's Prometheus /metrics (0: off); 0.0.0.0 in a pod
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # Worker Deployment Versioning (docs/deployment.md, "Upgrading workflows"): the control
    # worker polls as <worker_deployment>.<build_id>; short workflows stay pinned to the
    # version that started them, TradingLifecycle moves to the current version. Off: unversioned.
    worker_versioning: bool = False
    worker_deployment: str = Field("flashmm-control", min_length=1, max_length=100)
    build_id: str = Field("", max_length=100)  # empty: the package version
