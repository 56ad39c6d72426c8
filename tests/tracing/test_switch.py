"""Tracing off costs nothing (no provider installed, nothing of the SDK loaded); on, spans
leave as OTLP/HTTP protobuf: an in-process receiver parses what the exporter sends, for the
``telemetry.otlp_endpoint`` setting and for the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "FLASHMM_TELEMETRY", "FASTAPI_OTEL"))
        and k != "FLASHMM_CONFIG"
    }
    return {**env, **extra}


def _probe(mode: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tests.tracing._probe", mode],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_off_installs_and_loads_nothing() -> None:
    assert "off ok" in _probe("off", _env())


def _receiver(got: list[tuple[str, str, bytes]]) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the OTLP/HTTP traces endpoint
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.append((self.path, self.headers.get("Content-Type", ""), body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Receiver


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    got: list[tuple[str, str, bytes]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver(got))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("how", ["setting", "standard variable"])
def test_spans_are_exported_over_otlp_http(
    how: str, receiver: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    url, got = receiver
    if how == "setting":
        env = _env(FLASHMM_TELEMETRY__OTLP_ENDPOINT=url)
        service = "flashmm-probe"
    else:
        env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_SERVICE_NAME="named-by-env")
        service = "named-by-env"
    assert "export ok" in _probe("export", env)
    assert len(got) == 1
    path, ctype, body = got[0]
    assert path == "/v1/traces" and ctype == "application/x-protobuf"
    req = ExportTraceServiceRequest.FromString(body)
    (rs,) = req.resource_spans
    attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
    assert attrs["service.name"] == service
    spans = [s for ss in rs.scope_spans for s in ss.spans]
    assert [s.name for s in spans] == ["probe-span"]
    assert {a.key: a.value.string_value for a in spans[0].attributes} == {"k": "v"}


class _Client:
    """Stands in for a Temporal client: only its configured interceptors are read."""

    def __init__(self, interceptors: list[object]) -> None:
        self.interceptors = interceptors

    def config(self) -> dict[str, object]:
        return {"interceptors": self.interceptors}


def test_workers_get_the_interceptor_once(memory_spans: object) -> None:
    from temporalio.contrib.opentelemetry import TracingInterceptor

    from flashmm import tracing

    # a client from flashmm.temporal.client.connect carries it: its workers inherit it, none added
    (on_client,) = tracing.temporal_interceptors()
    assert isinstance(on_client, TracingInterceptor)
    assert tracing.worker_interceptors(_Client([on_client])) == []  # type: ignore[arg-type]
    # a client made elsewhere: the worker gets its own
    (own,) = tracing.worker_interceptors(_Client([]))  # type: ignore[arg-type]
    assert isinstance(own, TracingInterceptor)
