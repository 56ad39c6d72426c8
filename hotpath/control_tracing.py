"""Spans of the hot path's control API (``hotpath/control.py``), kept out of that file.

``middlewares()`` gives the server span per request, continuing the caller's trace from its
W3C ``traceparent`` (the halt activity's or the API's); ``run_command`` wraps one command's
handler in a ``hotpath.<command>`` span with the command id, the market, the open orders
before and after (a halt cancels them on the venue) and the risk state after. While tracing
is off both are plain pass-throughs. Arguments are never recorded (they can hold key
references and free text)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flashmm import tracing

if TYPE_CHECKING:
    from hotpath.control import ControlServer

Handler = Callable[["ControlServer", dict[str, Any]], Awaitable[Any]]


def middlewares() -> list[Any]:
    """For the control API's ``web.Application``: the span middleware, or nothing."""
    return list(tracing.aiohttp_middlewares())


async def run_command(
    server: ControlServer, command: str, command_id: str, handler: Handler, args: dict[str, Any]
) -> Any:
    """``handler(server, args)``, in a span when tracing is on."""
    if not tracing.enabled():
        return await handler(server, args)
    from opentelemetry.trace import StatusCode

    mm = server.mm
    with tracing.tracer("flashmm.hotpath.control").start_as_current_span(
        f"hotpath.{command}",
        attributes={
            "flashmm.command": command,
            "flashmm.command_id": command_id,
            "flashmm.market": str(mm.instrument.symbol),
            "flashmm.open_orders.before": mm.open_order_count,
        },
        record_exception=False,  # a refusal's message may quote the arguments
        set_status_on_exception=False,
    ) as span:
        try:
            detail = await handler(server, args)
        except Exception as e:
            span.set_status(StatusCode.ERROR, type(e).__name__)
            raise
        span.set_attribute("flashmm.open_orders.after", mm.open_order_count)
        span.set_attribute("flashmm.risk_state", mm.trading_state.value)
        return detail
