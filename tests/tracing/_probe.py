"""Run in a fresh interpreter by the tests here (a process gets one global tracer provider).

``off``: with no endpoint configured, ``setup`` installs nothing, and neither the tracing
SDK, the exporter nor the Temporal tracing interceptor is even imported.
``export``: with an endpoint, one span is exported over OTLP/HTTP at exit."""

from __future__ import annotations

import sys


def off() -> None:
    from opentelemetry import trace

    from api.app import create_app
    from api.middleware import Tracing
    from flashmm import tracing
    from flashmm.config import Settings
    from flashmm.temporal import client  # noqa: F401  (their imports, too)
    from hotpath import control_tracing
    from workers import run  # noqa: F401

    settings = Settings()
    assert tracing.endpoint(settings) == ""
    assert tracing.setup(settings, "flashmm-test") is False
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert not tracing.enabled()
    app = create_app(settings)
    assert Tracing not in [getattr(m, "cls", None) for m in app.user_middleware]
    assert tracing.temporal_interceptors() == []
    assert control_tracing.middlewares() == []
    headers: dict[str, str] = {}
    with trace.get_tracer("probe").start_as_current_span("noop"):
        tracing.inject(headers)
    assert headers == {}, headers
    # (redis-py imports the metrics SDK when it is installed, and sets up nothing with it)
    loaded = sorted(
        m
        for m in sys.modules
        if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter"))
        or m == "temporalio.contrib.opentelemetry"
    )
    assert not loaded, loaded
    print("off ok")


def export() -> None:
    from opentelemetry import trace

    from flashmm import tracing
    from flashmm.config import Settings

    assert tracing.setup(Settings(), "flashmm-probe") is True
    assert tracing.enabled() and tracing.temporal_interceptors()
    with tracing.tracer("probe").start_as_current_span("probe-span", attributes={"k": "v"}):
        headers: dict[str, str] = {}
        tracing.inject(headers)
        assert headers["traceparent"].startswith("00-"), headers
    trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]  # flushes
    print("export ok")


if __name__ == "__main__":
    {"off": off, "export": export}[sys.argv[1]]()
