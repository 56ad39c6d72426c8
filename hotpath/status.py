"""How a hot path shows itself: the one-line terminal status, the last-cycle fields of its
status, and its HTTP endpoint for Prometheus and the liveness probe.

``serve_metrics`` answers ``/metrics`` (Prometheus) and ``/healthz`` (200 while the quote loop
turns, 503 with the age of its last cycle when it does not) from a thread, so a stuck event
loop still gets a clear "dead" answer instead of a probe timeout.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flashmm.domain.instrument import Instrument

Health = Callable[[], tuple[bool, dict[str, Any]]]
StartResponse = Callable[..., Any]


def status_line(st: dict[str, Any], instrument: Instrument, elapsed_s: float) -> str:
    """Format ``MarketMaker.status()`` for a person watching the demo."""
    tick = instrument.tick

    def px(ticks: int) -> str:
        return f"{ticks * tick:.4f}" if ticks else "  -   "

    age = st.get("last_cycle_age_s")
    return (
        f"[{elapsed_s:6.1f}s] {st['symbol']:<9} {st['state']:<8} "
        f"mkt {px(st['best_bid'])}/{px(st['best_ask'])}  "
        f"ours {px(st['our_bid'])}/{px(st['our_ask'])}  "
        f"pos {st['position_lots']:>+6d}  "
        f"rPnL {st['realized']:+8.3f} uPnL {st['unrealized']:+8.3f} fees {st['fees']:+7.3f}  "
        f"fills {st['fills']:>4d}  cycle p50 {st['cycle_p50_us']:6.1f}µs "
        f"p99 {st['cycle_p99_us']:6.1f}µs"
        + (f"  last cycle {age * 1000:4.0f}ms ago" if age is not None else "")
    )


def last_cycle(last_cycle_at: float, last_cycle_mono: float) -> dict[str, Any]:
    """The status fields that say when the quote loop last turned (None: not yet)."""
    if not last_cycle_mono:
        return {"last_cycle_at": None, "last_cycle_age_s": None}
    return {
        "last_cycle_at": last_cycle_at,
        "last_cycle_age_s": round(time.monotonic() - last_cycle_mono, 3),
    }


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


def health_app(health: Health, metrics: Any) -> Callable[[dict[str, Any], StartResponse], Any]:
    """WSGI: ``/healthz`` from ``health``; everything else from the metrics app."""

    def app(wsgi_env: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if wsgi_env.get("PATH_INFO") != "/healthz":
            out: Iterable[bytes] = metrics(wsgi_env, start_response)
            return out
        try:
            ok, body = health()
        except Exception as e:  # a broken check is a failed check
            ok, body = False, {"ok": False, "error": type(e).__name__}
        data = json.dumps(body).encode()
        start_response(
            "200 OK" if ok else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]

    return app


def serve_metrics(port: int, host: str, health: Health) -> WSGIServer:
    """Prometheus ``/metrics`` and ``/healthz`` on ``host:port``, from a daemon thread."""
    from prometheus_client import make_wsgi_app

    httpd = make_server(
        host, port, health_app(health, make_wsgi_app()), _Server, handler_class=_Quiet
    )
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
    return httpd


def signal_status(signal: Any) -> dict[str, Any]:
    """The model signal's state for the control API's status (NaN accuracy as null)."""
    status = getattr(signal, "status", None)
    if status is None:
        return {}
    st: dict[str, Any] = status()
    st["accuracy"] = {h: (None if a != a else a) for h, a in st["accuracy"].items()}  # NaN
    # share of shadowed cycles where both models predicted the same at every horizon; None
    # before any comparison (DeployModel's gate treats that as a failure)
    shadow_log = getattr(signal, "shadow_log", ())
    st["shadow_agreement"] = (
        sum(live == sh for _, live, sh in shadow_log) / len(shadow_log) if shadow_log else None
    )
    st["shadow_samples"] = len(shadow_log)
    return st
