"""One market's hot-path process: the venue, the engine, the quote loop, stores, metrics,
heartbeat, the model signal and the local control API, assembled and run until SIGINT/SIGTERM
(or a duration), printing a status line (or JSON) every interval. ``flashmm hotpath`` parses
its arguments and calls :func:`run_hotpath`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg

from flashmm import tracing
from flashmm.config import Settings
from flashmm.domain.symbols import file_stem, order_prefix
from flashmm.keys.refs import resolve_key
from flashmm.stores.pg import audit
from flashmm.venue.factory import make_venue
from hotpath.advisor import start_advisor
from hotpath.control import ControlServer
from hotpath.control_state import ControlState
from hotpath.engine import MarketMaker
from hotpath.inference import ModelSignal, load_model
from hotpath.loop import LoopConfig, QuoteLoop
from hotpath.sinks import open_sinks
from hotpath.status import last_cycle, status_line

log = logging.getLogger(__name__)


def run_hotpath(
    settings: Settings,
    symbol: str,
    duration: float | None,
    as_json: bool,
    metrics_port: int = 0,
    metrics_host: str | None = None,
) -> int:
    """Run one market's hot path against the configured venue; 0 when it stopped cleanly."""
    settings.setup_logging()
    tracing.setup(settings, "flashmm-hotpath")  # only with an OTLP endpoint configured
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(_run(settings, symbol, duration, as_json, metrics_port, metrics_host))
    else:
        uvloop.run(_run(settings, symbol, duration, as_json, metrics_port, metrics_host))
    return 0


async def _run(
    settings: Settings,
    symbol: str,
    duration: float | None,
    as_json: bool,
    metrics_port: int,
    metrics_host: str | None = None,
) -> None:
    m = settings.market(symbol)
    inst = m.instrument()
    venue = make_venue(settings, symbol)
    prefix = order_prefix(symbol)
    model_signal = _signal(settings)
    mm = MarketMaker(
        inst,
        settings.quote_params(),
        settings.risk_limits(),
        order_prefix=f"{prefix}-{int(time.time())}",
        signal=model_signal,
    )
    sinks, halted = await open_sinks(settings, symbol)
    if halted is not None:
        mm.halt(halted)  # a halted market stays halted across restarts (nothing to cancel yet)
    sinks.start()
    dm = settings.deadman
    deadman = dm.enabled and settings.stores.enabled  # the switch needs Redis and PostgreSQL
    ql = QuoteLoop(
        mm,
        venue,
        LoopConfig(
            quote_hz=settings.hotpath.quote_hz,
            snapshot_every_s=settings.stores.snapshot_interval_s,
            stall_halt_s=dm.timeout_s if deadman else 0.0,
            idle_turn_s=dm.heartbeat_interval_s,
        ),
        sinks=sinks,
    )
    started = time.monotonic()
    if metrics_port:
        from prometheus_client import REGISTRY

        from flashmm.telemetry import mark_uptime
        from hotpath.heartbeat import health
        from hotpath.metrics import HotPathCollector
        from hotpath.status import serve_metrics

        REGISTRY.register(HotPathCollector(lambda: [mm]))
        mark_uptime("hotpath")
        serve_metrics(
            metrics_port,
            metrics_host or settings.hotpath.metrics_host,
            lambda: health(ql, dm.timeout_s, started),
        )
    heartbeat = None
    if deadman:
        from hotpath.heartbeat import Heartbeat

        heartbeat = Heartbeat(
            ql, symbol, settings.stores.redis_url, dm.heartbeat_interval_s, dm.timeout_s
        )
        heartbeat.start()
    control = await _control(settings, symbol, ql, venue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(ql.run(stop))
    advisor = start_advisor(settings.llm, mm)  # None (nothing changes) unless enabled + key
    t0 = time.monotonic()
    try:
        while not stop.is_set() and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.hotpath.status_interval_s)
            st = mm.status()
            st["open_orders"] = mm.open_order_count
            st["elapsed_s"] = time.monotonic() - t0
            st["venue_batches"] = ql.batches_sent
            st.update(last_cycle(ql.last_cycle_at, ql.last_cycle_mono))
            st["orphans_at_start"] = ql.orphans_at_start
            st["stores"] = {
                "postgres": bool(sinks.pg and sinks.pg.up),
                "backlog": sinks.pg.backlog if sinks.pg else 0,
                "redis": bool(sinks.redis and sinks.redis.up),
                "timeseries": bool(sinks.ts and sinks.ts.up),
            }
            print(json.dumps(st) if as_json else status_line(st, inst, st["elapsed_s"]), flush=True)
            if duration is not None and time.monotonic() - t0 >= duration:
                stop.set()
    finally:
        stop.set()
        if advisor is not None:
            await advisor.stop()
        await task
        if heartbeat is not None:  # orders left at the venue: the watcher takes over
            await heartbeat.stop(retire=mm.open_order_count == 0)
        if control is not None:
            await control.stop()
        await venue.close()
        await sinks.close()
        close_signal = getattr(mm.signal, "close", None)
        if close_signal is not None:  # the model's thread, before the interpreter goes
            close_signal()
    pos = mm.position
    final = {
        "event": "stopped",
        "symbol": symbol,
        "fills": pos.fill_count,
        "position_lots": pos.lots,
        "net_pnl": pos.net_pnl(mm.book.mid) if mm.book.mid else pos.realized - pos.fees,
        "open_orders": mm.open_order_count,
    }
    print(
        json.dumps(final)
        if as_json
        else f"{symbol}: stopped; fills {pos.fill_count}, net PnL {final['net_pnl']:+.4f} "
        f"{inst.quote}, open orders left {mm.open_order_count}",
        flush=True,
    )


def _signal(settings: Settings) -> Any:
    """The model signal when a model is configured (its fallback covers any outage)."""
    ml = settings.ml
    if not ml.enabled or not ml.model_path:
        return None  # no model configured: quote without a directional signal
    if ml.background:  # off the quote cycle, on its own thread
        from hotpath.background_signal import BackgroundModelSignal

        return BackgroundModelSignal(
            load_model(ml.model_path),
            horizon_s=ml.horizon_s,
            max_age_ms=ml.max_signal_age_ms,
            lead_ms=ml.signal_lead_ms,
            slow_trip=ml.slow_trip,
            cooldown_s=ml.cooldown_s,
            threads=ml.threads,
        )
    return ModelSignal(
        load_model(ml.model_path),
        horizon_s=ml.horizon_s,
        budget_us=ml.budget_us,
        slow_trip=ml.slow_trip,
        cooldown_s=ml.cooldown_s,
        threads=ml.threads,
    )


async def _control(settings: Settings, symbol: str, ql: Any, venue: Any) -> Any:
    """The local control API, when a token is configured; applies the persisted state."""
    hp = settings.hotpath
    state_file = Path(hp.state_dir) / f"{file_stem(symbol)}.control.json"
    token = os.environ.get(hp.control_token_env, "")
    if not token:
        if hp.start_state == "trading":
            ql.mm.start()
        else:
            ql.mm.stop()
        return None

    async def switch_key(ref: str) -> str:
        wallet = resolve_key(settings, ref)
        was = ql.mm.status()["enabled"]
        ql.mm.stop()  # no re-quoting with the old key while it drains
        try:
            left = await ql.cancel_all_and_confirm()
            if left:
                raise RuntimeError(f"{left} order(s) of the old key still open")
            await venue.switch_wallet(wallet)
        finally:
            if was:
                ql.mm.start()
        return str(wallet.address)

    control = ControlServer(
        ql,
        state_file,
        token,
        hp.control_port,
        key_switcher=switch_key if hasattr(venue, "switch_wallet") else None,
        bounds=settings.runtime_bounds(),
    )
    if not state_file.exists():
        control.state = ControlState(state=hp.start_state)
    if ql.mm.halted and control.state.state != "halted":
        # PostgreSQL says this market was halted: the control state follows, durably
        control.state = ControlState(state="halted", reason=ql.mm.status()["halt_reason"])
    control.apply_persisted()
    if control.ceiling_changes:
        await _audit_ceilings(settings, symbol, control.ceiling_changes)
    await control.start()
    print(
        json.dumps(
            {
                "event": "control",
                "symbol": symbol,
                "port": control.port,
                "state": control.state.state,
            }
        ),
        flush=True,
    )
    return control


async def _audit_ceilings(settings: Settings, symbol: str, changes: dict[str, Any]) -> None:
    """The configured risk ceilings differ from the last start: into the audit log (best
    effort: the warning log line is already written; trading never waits on PostgreSQL)."""
    if not settings.stores.enabled:
        return
    try:
        conn = await asyncio.wait_for(asyncpg.connect(settings.stores.postgres_dsn), 3.0)
        try:
            await audit.append(
                conn,
                "settings",
                "risk_ceilings_changed",
                symbol,
                changes,
                "applied at start-up",
                f"startup/{symbol}/{time.time_ns()}",
            )
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        log.warning("risk ceiling change not audited: %s", type(e).__name__)
