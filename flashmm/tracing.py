"""OpenTelemetry tracing: one trace from an operator's HTTP request through the Temporal
workflow and its activities to the hot path's control API.

* ``setup(settings, service)`` installs an SDK tracer provider that exports OTLP/HTTP
  (protobuf, batched) when an endpoint is configured (``telemetry.otlp_endpoint``, else the
  standard ``OTEL_EXPORTER_OTLP_ENDPOINT``). Without one nothing is installed and the SDK and
  exporter are never imported: every span is the API's no-op, and the callers below add no
  middleware and no interceptor at all (off costs nothing).
* ``temporal_interceptors()`` / ``worker_interceptors(client)``: the Temporal SDK's
  ``TracingInterceptor`` for clients (workers built from such a client inherit it) and for
  workers whose client has none, while tracing is on.
* ``inject(headers)`` / ``extract(headers)``: W3C ``traceparent`` across the HTTP call from
  an activity (or the API) to a hot path's control API.
* ``aiohttp_middlewares()``: a server span per request of an aiohttp app (the control API).

Spans carry names, ids, routes and states: never tokens, keys, passwords or command
arguments (``docs/deployment.md``, "Tracing").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context

if TYPE_CHECKING:
    from aiohttp import web
    from temporalio.client import Client
    from temporalio.client import Interceptor as ClientInterceptor
    from temporalio.worker import Interceptor as WorkerInterceptor

    from flashmm.config import Settings

    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
    Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

TRACES_PATH = "/v1/traces"

_lock = threading.Lock()
_installed: Any = None  # the SDK TracerProvider setup() installed, if any


def endpoint(settings: Settings | None = None) -> str:
    """The configured OTLP/HTTP base URL: the setting, else the standard variable; "" off."""
    configured = settings.telemetry.otlp_endpoint if settings is not None else ""
    return configured or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")


def setup(settings: Settings | None, service: str) -> bool:
    """Install the exporting tracer provider once per process when an endpoint is configured;
    answers whether spans are recorded (also true when a provider was installed otherwise,
    e.g. by a test). ``OTEL_SERVICE_NAME`` overrides ``service``."""
    global _installed
    with _lock:
        if _installed is not None:
            return True
        url = endpoint(settings)
        if not url:
            return enabled()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: service}))
        setting = settings.telemetry.otlp_endpoint if settings is not None else ""
        # the setting is a base URL like the variable; with only the variable, the exporter
        # reads the OTEL_EXPORTER_OTLP_* variables itself (traces endpoint, headers, timeout)
        exporter = (
            OTLPSpanExporter(endpoint=setting.rstrip("/") + TRACES_PATH)
            if setting
            else OTLPSpanExporter()
        )
        provider = TracerProvider(resource=resource)  # flushed and shut down at exit
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _installed = provider
        return True


def enabled() -> bool:
    """Whether spans are recorded: a real (SDK) tracer provider is installed."""
    return not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )


_tracers: dict[str, tuple[trace.TracerProvider, trace.Tracer]] = {}


def tracer(name: str) -> trace.Tracer:
    """The installed provider's tracer ``name``, kept while that provider is installed."""
    provider = trace.get_tracer_provider()
    hit = _tracers.get(name)
    if hit is not None and hit[0] is provider:
        return hit[1]
    t = provider.get_tracer(name)
    _tracers[name] = (provider, t)
    return t


# --- Temporal -------------------------------------------------------------------------------
def temporal_interceptors() -> list[ClientInterceptor]:
    """For ``Client.connect``: the SDK's tracing interceptor while tracing is on, else none.
    Workers created from the client inherit it (it is a worker interceptor too)."""
    if not enabled():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def worker_interceptors(client: Client) -> list[WorkerInterceptor]:
    """For ``Worker``: the tracing interceptor when tracing is on and ``client`` does not
    already carry one (it would run twice: every span doubled)."""
    if not enabled():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    if any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"]):
        return []
    return [TracingInterceptor()]


# --- HTTP -----------------------------------------------------------------------------------
def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current span's W3C ``traceparent`` (and ``tracestate``) to outgoing headers."""
    if enabled():
        propagate.inject(headers)


def extract(headers: Mapping[str, str]) -> Context:
    """The caller's trace context from incoming headers (an empty context without one)."""
    return propagate.extract(headers)


def aiohttp_middlewares() -> list[Middleware]:
    """A server span per request (the caller's trace continued), outermost, for an aiohttp
    app; none while tracing is off. Records method, route and status only."""
    if not enabled():
        return []
    from aiohttp import web

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info.route.resource
        route = info.canonical if info is not None else request.path
        with tracer("flashmm.hotpath.control").start_as_current_span(
            f"{request.method} {route}",
            context=extract(request.headers),
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
            record_exception=False,  # messages may hold what the caller sent
            set_status_on_exception=False,
        ) as span:
            try:
                response = await handler(request)
            except Exception as e:
                span.set_status(trace.StatusCode.ERROR, type(e).__name__)
                raise
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return response

    return [traced]
