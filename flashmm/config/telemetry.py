"""Settings of OpenTelemetry tracing (``flashmm/tracing.py``).

Tracing is on when an OTLP/HTTP endpoint is configured: ``otlp_endpoint`` here, or the
standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` when this is empty. Off, nothing of the SDK is
loaded and every span is the API's no-op.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TelemetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # base URL of an OTLP/HTTP (protobuf) trace receiver, e.g. http://jaeger:4318: spans go
    # to <url>/v1/traces. Empty: OTEL_EXPORTER_OTLP_ENDPOINT when set, else tracing is off
    otlp_endpoint: str = Field("", max_length=500, pattern=r"^(https?://[^\s]+)?$")
