"""Process-wide Prometheus metrics shared by every FlashMM process (``flashmm_*`` names).

Background components (store writers, venue adapters, workers) record here directly; the hot
path's per-cycle figures are exposed by ``hotpath.metrics.HotPathCollector`` at scrape time.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

_START = time.time()

ERRORS = Counter("flashmm_errors", "Errors by component and type", ["component", "type"])
OPERATION_LATENCY = Histogram(
    "flashmm_operation_latency_seconds",
    "Latency of operations outside the quote cycle (venue broadcast, store writes)",
    ["operation"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
WRITER_BACKLOG = Gauge(
    "flashmm_db_writer_backlog", "Records waiting to be written (memory + journal)", ["store"]
)
STORE_UP = Gauge("flashmm_store_up", "1 if the store answered its last write", ["store"])
UPTIME = Gauge("flashmm_uptime_seconds", "Seconds since this process started", ["process"])
DROPPED = Counter("flashmm_store_dropped", "Records dropped by a lossy store queue", ["store"])
AUDIT_QUARANTINED = Counter(
    "flashmm_api_audit_quarantined",
    "Audit entries PostgreSQL refused for good (bad data), moved to the quarantine file",
)
AUDIT_SPOOL_ENTRIES = Gauge("flashmm_api_audit_spool_entries", "Audit entries in the spool")
AUDIT_SPOOL_AGE = Gauge(
    "flashmm_api_audit_spool_oldest_age_seconds", "Age of the oldest audit entry in the spool"
)
# the audit chain's head anchored outside PostgreSQL (flashmm.stores.pg.anchor)
AUDIT_ANCHOR_ID = Gauge("flashmm_audit_anchor_id", "Id of the last audit entry anchored outside PG")
AUDIT_ANCHOR_TS = Gauge(
    "flashmm_audit_anchor_timestamp_seconds", "When the audit chain's head was last anchored"
)
AUDIT_ANCHOR_MISMATCH = Gauge(
    "flashmm_audit_anchor_mismatch",
    "1 when the audit log no longer holds an entry as it was anchored (truncated or rewritten)",
)


def mark_uptime(process: str) -> None:
    """Make ``flashmm_uptime_seconds{process}`` report live uptime on every scrape."""
    UPTIME.labels(process).set_function(lambda: time.time() - _START)
