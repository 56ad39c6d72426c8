"""Shared helpers for the store tests: private PostgreSQL / Redis servers that a test may
stop and start (the shared ones in ``tests/conftest.py`` are never touched), record
factories for the durable writer, small database / VictoriaMetrics readers and bounded
polling.

Everything binds an OS-chosen free port and every wait is bounded, so tests can run in
parallel under pytest-xdist.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from flashmm.stores.pg.records import Record

# --- ports and waiting ----------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_listening(port: int, up: bool, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while listening(port) is not up:
        if time.monotonic() > end:
            raise RuntimeError(f"{what} on port {port} not {'up' if up else 'down'} in {timeout}s")
        time.sleep(0.05)


async def wait_for(pred: Callable[[], bool], timeout: float, what: str = "condition") -> float:
    """Poll ``pred`` every 20 ms; returns the seconds it took, fails after ``timeout``."""
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# --- a private PostgreSQL cluster ----------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"PostgreSQL binary {name} not installed")
    return path


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free loopback port, in its own temporary
    directory (owned by ``postgres`` when running as root), that a test may stop and start.
    Superuser ``flashmm``, trust authentication, fsync off."""

    def __init__(self) -> None:
        # not under pytest's tmp_path: its parents are 0700 and the postgres user must
        # traverse them
        self.root = Path(tempfile.mkdtemp(prefix="fmm-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.sock.mkdir()
        if os.geteuid() == 0:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self.port = free_port()
        self.running = False
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "flashmm",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    @property
    def dsn(self) -> str:
        return f"postgresql://flashmm@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} -c fsync=off "
            "-c max_connections=50"
        )
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    opts,
                    "-l",
                    str(self.root / "server.log"),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=40,
        )
        self.running = True
        wait_listening(self.port, True, 10, "private PostgreSQL")

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                [_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=40,
        )
        self.running = False
        wait_listening(self.port, False, 10, "private PostgreSQL")

    def destroy(self) -> None:
        if self.running or (self.data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres(
                    [
                        _pg_bin("pg_ctl"),
                        "-D",
                        str(self.data),
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "30",
                        "stop",
                    ]
                ),
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=40,
            )
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


# --- a private redis-server -----------------------------------------------------------------


class PrivateRedis:
    """``redis-server`` on a given (or free) loopback port, no persistence; stoppable."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fmm-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server not installed")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_listening(self.port, True, 10, "private redis-server")

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        wait_listening(self.port, False, 10, "private redis-server")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- records as the hot path submits them ----------------------------------------------------


def fill_rec(fill_id: str, ts: float = 1_700_000_000.5, **kw: Any) -> Record:
    rec: Record = {
        "kind": "fill",
        "fill_id": fill_id,
        "client_id": f"c-{fill_id}",
        "market": "SEI/USDC",
        "side": 1,
        "price": "0.4321",
        "quantity": "12.5",
        "fee": "-0.00027",
        "liquidity": "maker",
        "ts": ts,
    }
    rec.update(kw)
    return rec


def order_rec(client_id: str, state: str, ts: float, **kw: Any) -> Record:
    rec: Record = {
        "kind": "order",
        "client_id": client_id,
        "market": "SEI/USDC",
        "side": -1,
        "price": "0.4400",
        "quantity": "25",
        "state": state,
        "venue_id": None,
        "reason": None,
        "ts": ts,
    }
    rec.update(kw)
    return rec


def position_rec(market: str, ts: float, **kw: Any) -> Record:
    rec: Record = {
        "kind": "position",
        "market": market,
        "ts": ts,
        "position": "150",
        "avg_price": "0.43",
        "realized": "1.25",
        "unrealized": "-0.5",
        "fees": "-0.01",
        "net_pnl": "0.76",
    }
    rec.update(kw)
    return rec


def risk_rec(market: str, state: str, ts: float, reason: str = "") -> Record:
    return {
        "kind": "risk",
        "market": market,
        "state": state,
        "halted": state == "halted",
        "reason": reason,
        "ts": ts,
    }


def write_journal(path: Path, lines: list[Record | str]) -> None:
    """A journal as a previous process left it: one JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_text(text)


# --- database readers ------------------------------------------------------------------------


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def fill_counts(dsn: str) -> dict[str, int]:
    rows = await fetch(dsn, "SELECT fill_id, count(*) AS n FROM fills GROUP BY fill_id")
    return {r["fill_id"]: int(r["n"]) for r in rows}


def error_count(component: str, kind: str) -> float:
    """``flashmm_errors_total{component, type}`` from the process's Prometheus registry."""
    from prometheus_client import REGISTRY

    v = REGISTRY.get_sample_value("flashmm_errors_total", {"component": component, "type": kind})
    return float(v or 0.0)


# --- VictoriaMetrics ------------------------------------------------------------------------


async def vm_export(url: str, match: str, start_s: float, end_s: float) -> list[dict[str, Any]]:
    """Raw series from VictoriaMetrics (after forcing its in-memory buffers to disk)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.get(f"{url}/internal/force_flush") as r:
            r.raise_for_status()
        params = {"match[]": match, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}"}
        async with http.get(f"{url}/api/v1/export", params=params) as r:
            r.raise_for_status()
            text = await r.text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def vm_wait_series(
    url: str,
    match: str,
    start_s: float,
    end_s: float,
    n_series: int,
    n_samples: int,
    timeout: float,
) -> list[dict[str, Any]]:
    """Poll the export API until ``n_series`` series with ``n_samples`` samples in all are
    searchable (VictoriaMetrics makes new data searchable after a short delay)."""
    t0 = time.monotonic()
    while True:
        series = await vm_export(url, match, start_s, end_s)
        if len(series) >= n_series and sum(len(s["values"]) for s in series) >= n_samples:
            return series
        if time.monotonic() - t0 > timeout:
            pytest.fail(
                f"VictoriaMetrics: {match} has {len(series)} series / "
                f"{sum(len(s['values']) for s in series)} samples after {timeout}s"
            )
        await asyncio.sleep(0.2)


async def stop_redis_state(rs: Any) -> None:
    """Stop a ``RedisState`` without relying on ``RedisState.close()`` to end its task.

    ``close()`` cancels the writer task once and then awaits it without a bound; a
    cancellation lost inside redis-py (``asyncio.wait_for`` on Python 3.11 can swallow one)
    leaves it waiting forever, and its final flush races the task's own flush. Tests that
    are not about ``close()`` stop the task here (re-cancelling until it is done, bounded)
    and then let ``close()`` close the client. See ``test_stores_redis_ts.py`` for the tests
    that expose both problems.
    """
    task = rs._task
    if task is not None:
        end = time.monotonic() + 10
        while not task.done() and time.monotonic() < end:
            task.cancel()
            await asyncio.wait({task}, timeout=0.2)
        assert task.done(), "RedisState task did not stop"
        if not task.cancelled():
            task.exception()  # retrieved: no "exception never retrieved" warning
        rs._task = None
    await asyncio.wait_for(rs.close(), 10)
