"""Trading and ML time series over the InfluxDB v2 write API (influxdb-client), batched and
written in the background.

Measurements: ``trading_metrics`` (tag market; fields spread_bps, our_spread_bps,
improvement_pct, fills, pnl, inventory, latency_us) and ``ml_predictions`` (tags market,
horizon; fields predicted, realised, confidence). Locally the server is VictoriaMetrics,
which accepts the same writes; production runs InfluxDB 2.7. Points wait in a bounded queue
(oldest dropped and counted) while the server is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from flashmm import telemetry

log = logging.getLogger(__name__)


class TimeSeriesWriter:
    def __init__(
        self,
        url: str,
        org: str,
        bucket: str,
        token: str = "",
        interval_s: float = 1.0,
        limit: int = 50_000,
        name: str = "timeseries",
    ) -> None:
        self.url = url
        self.org = org
        self.bucket = bucket
        self._token = token
        self.interval_s = interval_s
        self.name = name
        self._points: deque[Point] = deque(maxlen=limit)
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failures = 0
        self.up = False

    # --- the hot path's side ------------------------------------------------------------
    def trading(
        self,
        market: str,
        *,
        spread_bps: float,
        our_spread_bps: float,
        improvement_pct: float,
        fills: int,
        pnl: float,
        inventory: float,
        latency_us: float,
        ts_ns: int | None = None,
    ) -> None:
        p = (
            Point("trading_metrics")
            .tag("market", market)
            .field("spread_bps", float(spread_bps))
            .field("our_spread_bps", float(our_spread_bps))
            .field("improvement_pct", float(improvement_pct))
            .field("fills", int(fills))
            .field("pnl", float(pnl))
            .field("inventory", float(inventory))
            .field("latency_us", float(latency_us))
            .time(ts_ns or time.time_ns(), WritePrecision.NS)
        )
        self._put(p)

    def prediction(
        self,
        market: str,
        horizon: str,
        *,
        predicted: int,
        realised: int,
        confidence: float,
        ts_ns: int | None = None,
    ) -> None:
        p = (
            Point("ml_predictions")
            .tag("market", market)
            .tag("horizon", horizon)
            .field("predicted", int(predicted))
            .field("realised", int(realised))
            .field("confidence", float(confidence))
            .time(ts_ns or time.time_ns(), WritePrecision.NS)
        )
        self._put(p)

    def _put(self, p: Point) -> None:
        if len(self._points) == self._points.maxlen:
            telemetry.DROPPED.labels(self.name).inc()
        self._points.append(p)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="timeseries-writer")

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(), 2.0)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def flush(self) -> None:
        await self._flush()

    async def _run(self) -> None:
        delay = self.interval_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self._flush()
                delay = self.interval_s
                self._set_up(True)
            except Exception as e:  # the client raises many kinds; none may stop the loop
                self.failures += 1
                telemetry.ERRORS.labels(self.name, type(e).__name__).inc()
                if self.up or self.failures == 1:
                    log.warning(
                        "time-series server unavailable (%s); %d points waiting",
                        e,
                        len(self._points),
                    )
                self._set_up(False)
                delay = min(10.0, delay * 2)

    def _set_up(self, up: bool) -> None:
        self.up = up
        telemetry.STORE_UP.labels(self.name).set(1 if up else 0)

    async def _flush(self) -> None:
        if not self._points:
            return
        batch = list(self._points)
        t0 = time.perf_counter()
        async with InfluxDBClientAsync(
            url=self.url, token=self._token or "unused", org=self.org, timeout=5_000
        ) as client:
            ok = await client.write_api().write(bucket=self.bucket, org=self.org, record=batch)
        if ok is False:
            raise RuntimeError("time-series write was not accepted")
        for _ in batch:
            self._points.popleft()
        self.written += len(batch)
        telemetry.OPERATION_LATENCY.labels("timeseries_write").observe(time.perf_counter() - t0)
