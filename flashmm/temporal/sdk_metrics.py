"""The Temporal SDK's own runtime metrics (workflow task failures, schedule-to-start latency
per task queue, activity failures, pollers, sticky cache), served by the SDK's Prometheus
exporter on a port of their own next to the process's ``flashmm_*`` /metrics.

The names are the SDK's, unchanged (prefix ``temporal_``, counters without ``_total``,
durations in seconds); ``SDK_METRICS`` lists those the alert rules and dashboards read, and
``tests/workflows/test_sdk_metrics.py`` scrapes a real worker to prove they are served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

# family name -> type, as the SDK's exporter declares them (# TYPE lines)
SDK_METRICS: Mapping[str, str] = {
    "temporal_workflow_task_execution_failed": "counter",
    "temporal_workflow_task_schedule_to_start_latency": "histogram",
    "temporal_activity_execution_failed": "counter",
    "temporal_activity_schedule_to_start_latency": "histogram",
    "temporal_num_pollers": "gauge",
    "temporal_sticky_cache_hit": "counter",
    "temporal_sticky_cache_size": "gauge",
    "temporal_worker_task_slots_available": "gauge",
    "temporal_worker_task_slots_used": "gauge",
}

# the sample names each type is exposed under by the SDK's exporter (no _total, no _created)
_SAMPLE_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}
SDK_SAMPLE_NAMES: frozenset[str] = frozenset(
    name + suffix for name, kind in SDK_METRICS.items() for suffix in _SAMPLE_SUFFIXES[kind]
)

# The SDK's default latency buckets (0.1, 0.5, 1, 5, 10, 100, 1000 s) are too coarse to see a
# queue backing up before it hurts: finer ones around the 1 s schedule-to-start budget.
SCHEDULE_TO_START_BUCKETS: Sequence[float] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BUCKETS: Mapping[str, Sequence[float]] = {
    "temporal_workflow_task_schedule_to_start_latency": SCHEDULE_TO_START_BUCKETS,
    "temporal_activity_schedule_to_start_latency": SCHEDULE_TO_START_BUCKETS,
}


def prometheus_runtime(bind_address: str) -> Runtime:
    """A runtime whose SDK metrics are served at ``http://bind_address/metrics``."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind_address,
                durations_as_seconds=True,
                histogram_bucket_overrides={k: list(v) for k, v in BUCKETS.items()},
            )
        )
    )


def serve(host: str, port: int) -> None:
    """Make every Temporal client this process creates from now on report the SDK's metrics
    on ``host:port`` (the default runtime; call before the first ``Client.connect``)."""
    Runtime.set_default(prometheus_runtime(f"{host}:{port}"))
