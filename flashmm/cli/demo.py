"""``flashmm demo``: the platform on one machine. Starts the localnet and one hot-path
process per configured market, trades over loopback, and every second shows each hot path's
view next to the chain's (open orders and balances). A hot path that dies is reported and
restarted (the worker's dead-man's switch halts its market and cancels its orders; the
restarted one comes back halted until resumed); the other markets trade on. Ctrl-C or
``--duration`` stops the hot paths (they cancel everything), checks the chain holds none of
our orders, then stops the localnet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from flashmm.config import Settings

BUNDLED_MODEL = Path(__file__).resolve().parents[2] / "models" / "market-transformer-v1"


def run_platform_demo(settings: Settings, duration: float | None, config: str | None) -> int:
    return asyncio.run(_demo(settings, duration, config))


class _Proc:
    """A child process whose stdout is JSON lines; keeps the latest object."""

    def __init__(
        self,
        name: str,
        proc: asyncio.subprocess.Process,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.proc = proc
        self.args = args or []  # how it was started, to start it again
        self.env = env or {}
        self.restarts = 0
        self.reporter: asyncio.Task[None] | None = None
        self.latest: dict[str, Any] = {}
        self.control: dict[str, Any] = {}
        self.first = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if obj.get("event") == "control":
                self.control = obj
                continue
            self.latest = obj
            if not self.first.done():
                self.first.set_result(obj)
        if not self.first.done():
            self.first.set_exception(RuntimeError(f"{self.name} exited before it was ready"))

    async def stop(self, timeout: float = 15.0) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reader, 2.0)


async def _spawn(name: str, args: list[str], env: dict[str, str]) -> _Proc:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flashmm.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=None,
    )
    return _Proc(name, proc, args, env)


async def _supervise(children: list[_Proc], dead: dict[str, float], delay_s: float) -> None:
    """Report a hot path that died and start it again ``delay_s`` later (time for the
    dead-man's switch to record the halt it will come back with); never stops the others."""
    now = asyncio.get_running_loop().time()
    for i, c in enumerate(children):
        if c.proc.returncode is None:
            continue
        if c.name not in dead:
            dead[c.name] = now
            print(
                f"flashmm demo: {c.name} hot path died (exit {c.proc.returncode}); the "
                f"dead-man's switch halts it and cancels its orders; restarting in {delay_s:g}s",
                file=sys.stderr,
                flush=True,
            )
        elif now - dead[c.name] >= delay_s:
            del dead[c.name]
            fresh = await _spawn(c.name, c.args, c.env)
            fresh.restarts = c.restarts + 1
            children[i] = fresh
            fresh.reporter = asyncio.create_task(_report_restart(fresh))


async def _report_restart(p: _Proc) -> None:
    with contextlib.suppress(RuntimeError):
        await _wait_control(p)
        state = str(p.control.get("state", "?"))
        hint = f" (resume: flashmm market resume {p.name})" if state == "halted" else ""
        print(
            f"flashmm demo: {p.name} hot path restarted ({p.restarts}), {state}{hint}",
            file=sys.stderr,
            flush=True,
        )


async def _demo(settings: Settings, duration: float | None, config: str | None) -> int:
    env = dict(os.environ)
    if config:
        env["FLASHMM_CONFIG"] = config
    env.setdefault("FLASHMM_LOG_LEVEL", "WARNING")
    children: list[_Proc] = []
    import tempfile

    from flashmm.cli.demo_control import ControlPlane

    control = ControlPlane(Path(tempfile.mkdtemp(prefix="flashmm-demo-")))
    # workflow payloads encrypted; this process talks to Temporal too, so it needs the key
    env["FLASHMM_CODEC_KEYS"] = env.get("FLASHMM_CODEC_KEYS") or _codec_key()
    os.environ["FLASHMM_CODEC_KEYS"] = env["FLASHMM_CODEC_KEYS"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.stores.enabled:
        await asyncio.to_thread(_ensure_stores, settings)
        env.update(await _app_role_env(settings))  # the services connect as the app role
    node_metrics = _free_port()
    node = await _spawn(
        "localnet",
        ["localnet", "--rest-port", "0", "--rpc-port", "0", "--metrics-port", str(node_metrics)],
        env,
    )
    try:
        ready = await asyncio.wait_for(node.first, 30)
        rest, rpc = ready["rest"], ready["rpc"]
        print(
            f"flashmm demo: localnet {ready['chain_id']} at {rest} (RPC {rpc}); "
            f"{len(settings.markets)} market(s); Ctrl-C to stop\n  localnet: metrics "
            f"http://127.0.0.1:{node_metrics}/metrics",
            flush=True,
        )
        hp_env = {
            **env,
            "FLASHMM_VENUE__REST_URLS": json.dumps([rest]),
            "FLASHMM_VENUE__WS_URLS": json.dumps([rpc]),
            "FLASHMM_VENUE__CHAIN_ID": ready["chain_id"],
            "FLASHMM_VENUE__KIND": "sei",
        }
        if not settings.ml.model_path and (BUNDLED_MODEL / "card.json").exists():
            hp_env["FLASHMM_ML__MODEL_PATH"] = str(BUNDLED_MODEL)  # the shipped signal
        await control.start_server()
        print(f"  Temporal UI: {control.ui}  (server {control.address})", flush=True)
        hotpaths: dict[str, str] = {}
        for m in settings.markets:
            port = _free_port()
            cport = _free_port()
            hotpaths[m.symbol] = f"http://127.0.0.1:{cport}"
            args = ["hotpath", "--market", m.symbol, "--json", "--metrics-port", str(port)]
            children.append(await _spawn(m.symbol, args, {**hp_env, **control.hotpath_env(cport)}))
            print(f"  {m.symbol}: metrics http://127.0.0.1:{port}/metrics", flush=True)
        await control.start_worker(hp_env, hotpaths)  # venue activities need the localnet
        pw_file = await control.start_api(hp_env, hotpaths)
        print(
            f"  API: {control.api}  (user admin, password in {pw_file}; "
            f"schema {control.api}/openapi.json)",
            flush=True,
        )
        await asyncio.gather(*(_wait_control(c) for c in children))
        control.hotpath_state = {c.name: c.control for c in children}
        started = await control.start_markets(settings)
        print(
            "  started through TradingLifecycle: "
            + ", ".join(f"{k} {v}" for k, v in started.items()),
            flush=True,
        )
        addresses = {m.symbol: _trader_address(settings, m.symbol) for m in settings.markets}
        t0 = time.monotonic()
        dead: dict[str, float] = {}
        restart_s = settings.deadman.timeout_s + 1.0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.hotpath.status_interval_s)
                await _supervise(children, dead, restart_s)
                await _show(http, rest, addresses, settings, children, time.monotonic() - t0)
                if duration is not None and time.monotonic() - t0 >= duration:
                    break
            for c in children:  # hot paths first: they cancel their orders on the way out
                await c.stop()
            left = await _chain_open_orders(http, rest, addresses, settings)
        for c in children:
            last = c.latest
            print(
                f"{c.name}: stopped; fills {last.get('fills', 0)}, net PnL "
                f"{last.get('net_pnl', 0.0):+.4f}, open orders left on chain "
                f"{left.get(c.name, 0)}",
                flush=True,
            )
        return 0 if all(n == 0 for n in left.values()) else 1
    finally:
        for c in children:
            await c.stop()
        await control.stop()
        await node.stop()


def _codec_key() -> str:
    from flashmm.temporal.codec import new_key_spec

    return new_key_spec("demo1")


async def _wait_control(p: _Proc, timeout: float = 60.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not p.control:
        if p.proc.returncode is not None or asyncio.get_running_loop().time() > end:
            raise RuntimeError(f"{p.name}: hot path did not open its control API")
        await asyncio.sleep(0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_stores(settings: Settings) -> None:
    """Start the local PostgreSQL/Redis/VictoriaMetrics unless something already listens
    at the configured addresses (then those are used as they are)."""
    from flashmm import devservices

    st = settings.stores
    local = (
        st.postgres_dsn == devservices.PG_DSN
        and st.redis_url == devservices.REDIS_URL
        and st.timeseries_url == devservices.VM_URL
    )
    if local:
        try:
            devservices.ensure()
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            print(
                f"flashmm demo: local stores unavailable ({e}); trading without them",
                file=sys.stderr,
            )


async def _app_role_env(settings: Settings) -> dict[str, str]:
    """Migrate as the owner; the services get the application role's DSN (not the owner's)."""
    from flashmm.stores.pg.migrate import migrate_for_services

    try:
        dsn = await asyncio.wait_for(migrate_for_services(settings.stores), 30)
    except Exception as e:  # stores unavailable: the services run without them
        print(f"flashmm demo: database roles not set up ({type(e).__name__})", file=sys.stderr)
        return {}
    return {"FLASHMM_STORES__POSTGRES_DSN": dsn}


def _trader_address(settings: Settings, symbol: str) -> str:
    from flashmm.venue.sei.wallet import Wallet

    return Wallet.from_mnemonic(settings.venue.mnemonic(settings.environment, symbol)).address


async def _chain_open_orders(
    http: aiohttp.ClientSession, rest: str, addresses: dict[str, str], settings: Settings
) -> dict[str, int]:
    out = {}
    for m in settings.markets:
        address = addresses[m.symbol]
        url = f"{rest}/sei-protocol/seichain/dex/get_orders/{m.contract_address()}/{address}"
        try:
            async with http.get(url) as r:
                out[m.symbol] = len((await r.json())["orders"])
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
            out[m.symbol] = -1
    return out


async def _balances(http: aiohttp.ClientSession, rest: str, address: str) -> dict[str, int]:
    try:
        async with http.get(f"{rest}/cosmos/bank/v1beta1/balances/{address}") as r:
            return {b["denom"]: int(b["amount"]) for b in (await r.json())["balances"]}
    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
        return {}


async def _show(
    http: aiohttp.ClientSession,
    rest: str,
    addresses: dict[str, str],
    settings: Settings,
    children: list[_Proc],
    elapsed: float,
) -> None:
    chain_orders = await _chain_open_orders(http, rest, addresses, settings)
    for c, m in zip(children, settings.markets, strict=True):
        bal = await _balances(http, rest, addresses[m.symbol])
        st = c.latest
        if c.proc.returncode is not None:
            print(
                f"[{elapsed:6.1f}s] {m.symbol:<9} DEAD (exit {c.proc.returncode}), restarting | "
                f"chain: open {chain_orders.get(m.symbol, '?')}",
                flush=True,
            )
            continue
        if not st:
            print(f"[{elapsed:6.1f}s] {m.symbol:<9} starting...", flush=True)
            continue
        tick = m.tick_size

        def px(t: int, tick: Decimal = tick) -> str:
            return f"{t * tick:.4f}" if t else "-"

        price_denom, asset_denom = m.denoms()
        print(
            f"[{elapsed:6.1f}s] {m.symbol:<9} {st['state']:<8} mkt {px(st['best_bid'])}/"
            f"{px(st['best_ask'])} ours {px(st['our_bid'])}/{px(st['our_ask'])} "
            f"pos {st['position_lots']:+d} rPnL {st['realized']:+.3f} uPnL "
            f"{st['unrealized']:+.3f} fills {st['fills']} cycle p50/p99 "
            f"{st['cycle_p50_us']:.0f}/{st['cycle_p99_us']:.0f}µs{_stores(st)} | chain: open "
            f"{chain_orders.get(m.symbol, '?')} {asset_denom} "
            f"{bal.get(asset_denom, 0) / 1e6:,.2f} {price_denom} "
            f"{bal.get(price_denom, 0) / 1e6:,.2f}",
            flush=True,
        )


def _stores(st: dict[str, Any]) -> str:
    s = st.get("stores")
    if not s:
        return ""
    flags = "".join(
        ("P" if s["postgres"] else "p", "R" if s["redis"] else "r", "T" if s["timeseries"] else "t")
    )
    return f" stores {flags}" + (f" backlog {s['backlog']}" if s["backlog"] else "")
