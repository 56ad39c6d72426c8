"""``flashmm demo``: the platform on one machine. Starts the localnet and one hot-path
process per configured market, trades over loopback, and every second shows each hot path's
view next to the chain's (open orders and balances). A hot path that dies is reported and
restarted (the worker's dead-man's switch halts its market and cancels its orders; the
restarted one comes back halted until resumed); the other markets trade on. Ctrl-C or
``--duration`` stops everything in dependency order (API and worker, then the hot paths,
which cancel everything, a check that the chain holds none of our orders, then Temporal and
the localnet), prints one line per process and removes its temporary folder. While it runs,
a connection profile lets ``flashmm market``/``estop``/... reach it with no flags
(``flashmm/profile.py``). On a terminal the status is a dashboard that redraws in place, and
the children's stderr goes to a log file in the run folder; ``--plain`` or a non-terminal
gets one line per market per interval (``cli/demo_screen.py``). A Prometheus with
the project's alerting rules scrapes every process it starts when Debian's ``prometheus`` is
installed (``cli/demo_prometheus.py``).
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
from pathlib import Path
from typing import Any

import aiohttp

from flashmm.config import Settings

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "models" / "market-transformer-v1"


def run_platform_demo(
    settings: Settings,
    duration: float | None,
    config: str | None,
    keep: bool = False,
    plain: bool = False,
) -> int:
    """``plain``: line output even on a terminal (the dashboard needs a terminal anyway)."""
    from cli.terminal import own_foreground

    dashboard = not plain and sys.stdout.isatty()
    with own_foreground():
        return asyncio.run(_demo(settings, duration, config, keep, dashboard))


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
        "cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=None,
        start_new_session=True,  # Ctrl-C reaches the demo only; it stops children in order
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


async def _demo(
    settings: Settings, duration: float | None, config: str | None, keep: bool, dashboard: bool
) -> int:
    import shutil
    import tempfile

    from cli import demo_screen
    from cli.demo_control import ControlPlane
    from cli.demo_prometheus import Prometheus, start_for_demo
    from flashmm import profile

    env = dict(os.environ)
    if config:
        env["FLASHMM_CONFIG"] = config
    env.setdefault("FLASHMM_LOG_LEVEL", "WARNING")
    env[profile.PROFILE_ENV] = "none"  # children get their settings explicitly, never a profile
    children: list[_Proc] = []
    run_dir = Path(tempfile.mkdtemp(prefix="flashmm-demo-"))
    control = ControlPlane(run_dir)
    # workflow payloads encrypted; this process talks to Temporal too, so it needs the key
    env["FLASHMM_CODEC_KEYS"] = env.get("FLASHMM_CODEC_KEYS") or _codec_key()
    os.environ["FLASHMM_CODEC_KEYS"] = env["FLASHMM_CODEC_KEYS"]
    profile_path = profile.default_path()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node: _Proc | None = None
    prom: Prometheus | None = None
    started_stores = False
    log_file = run_dir / "demo.log"
    quiet = contextlib.ExitStack()  # the dashboard: stderr (ours, the children's) to the log
    if dashboard:
        quiet.enter_context(demo_screen.stderr_to(log_file))
    try:
        if settings.stores.enabled:
            settings, store_env, started_stores = await asyncio.to_thread(_ensure_stores, settings)
            env.update(store_env)
            env.update(await _app_role_env(settings))  # the services connect as the app role
        node_metrics = _free_port()
        node = await _spawn(
            "localnet",
            [
                "localnet",
                "--rest-port",
                "0",
                "--rpc-port",
                "0",
                "--metrics-port",
                str(node_metrics),
            ],
            env,
        )
        ready = await asyncio.wait_for(node.first, 30)
        rest, rpc = ready["rest"], ready["rpc"]
        print(
            f"flashmm demo: localnet {ready['chain_id']} at {rest} (RPC {rpc}); "
            f"{len(settings.markets)} market(s); Ctrl-C to stop\n  localnet: metrics "
            f"http://127.0.0.1:{node_metrics}/metrics",
            flush=True,
        )
        if dashboard:
            print(
                f"  log: {log_file}  (the processes' warnings and errors; kept with --keep-files)",
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
        await control.start_codec_endpoint()
        await control.start_server()
        print(
            f"  Temporal UI: {control.ui}  (server {control.address}; payloads decoded by "
            f"{control.codec_endpoint}, loopback only)",
            flush=True,
        )
        hotpaths: dict[str, str] = {}
        scrape: dict[str, list[str]] = {"flashmm-localnet": [f"127.0.0.1:{node_metrics}"]}
        for m in settings.markets:
            port = _free_port()
            cport = _free_port()
            hotpaths[m.symbol] = f"http://127.0.0.1:{cport}"
            args = ["hotpath", "--market", m.symbol, "--json", "--metrics-port", str(port)]
            children.append(await _spawn(m.symbol, args, {**hp_env, **control.hotpath_env(cport)}))
            print(f"  {m.symbol}: metrics http://127.0.0.1:{port}/metrics", flush=True)
            scrape.setdefault("flashmm-hotpath", []).append(f"127.0.0.1:{port}")
        worker_metrics, sdk_metrics = _free_port(), _free_port()
        scrape["flashmm-worker"] = [f"127.0.0.1:{worker_metrics}", f"127.0.0.1:{sdk_metrics}"]
        await control.start_worker(  # venue activities need the localnet
            {**hp_env, "FLASHMM_CONTROL__METRICS_PORT": str(worker_metrics)},
            hotpaths,
            sdk_metrics_port=sdk_metrics,
        )
        pw_file = await control.start_api(hp_env, hotpaths)
        print(
            f"  API: {control.api}  (user admin, password in {pw_file}; "
            f"schema {control.api}/openapi.json)",
            flush=True,
        )
        scrape["flashmm-api"] = [control.api.removeprefix("http://")]
        prom = await start_for_demo(run_dir, scrape)
        await asyncio.gather(*(_wait_control(c) for c in children))
        control.hotpath_state = {c.name: c.control for c in children}
        started = await control.start_markets(settings)
        print(
            "  started through TradingLifecycle: "
            + ", ".join(f"{k} {v}" for k, v in started.items()),
            flush=True,
        )
        if profile_path is not None:
            _write_profile(profile_path, control, hotpaths, pw_file, env)
            print(
                f"  CLI: flashmm commands on this machine use this demo (profile "
                f"{profile_path}), e.g. flashmm market status {settings.markets[0].symbol}",
                flush=True,
            )
        addresses = {m.symbol: _trader_address(settings, m.symbol) for m in settings.markets}
        print(f"  chain: markets {rest}/flashmm/localnet/v1/markets", flush=True)
        for m in settings.markets:  # what the chain queries need: contract and our account
            print(
                f"  {m.symbol}: contract {m.contract_address()}, account {addresses[m.symbol]}",
                flush=True,
            )
        links = {"API": control.api, "Temporal UI": control.ui}
        links |= {"Prometheus": prom.url} if prom else {}
        links |= {"log": str(log_file)} if dashboard else {}
        t0 = time.monotonic()
        dead: dict[str, float] = {}
        restart_s = settings.deadman.timeout_s + 1.0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            with demo_screen.Display(
                dashboard, links, log_file, control.address, prom, hotpaths, control.token
            ) as show:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), settings.hotpath.status_interval_s)
                    await _supervise(children, dead, restart_s)
                    views = await _views(http, rest, addresses, settings, children)
                    show.update(views, time.monotonic() - t0)
                    if duration is not None and time.monotonic() - t0 >= duration:
                        break
            print("flashmm demo: stopping", flush=True)
            lines, clean = await _stop_in_order(
                control, children, node, http, rest, addresses, settings, prom
            )
        for line in lines:
            print(line, flush=True)
        return 0 if clean else 1
    finally:
        for c in children:
            await c.stop()
        await control.stop()
        if prom is not None:
            await prom.stop()
        if node is not None:
            await node.stop()
        quiet.close()  # stderr back to the terminal before anything else is said
        if profile_path is not None:
            profile.remove(profile_path, os.getpid())
        if started_stores:  # started for this run: stopped with it
            from flashmm import devservices

            stopped = await asyncio.to_thread(devservices.stop)
            print(f"stores: stopped ({', '.join(stopped) or 'none running'})", flush=True)
        if keep:
            print(f"flashmm demo: files kept in {run_dir}", flush=True)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


async def _stop_in_order(
    control: Any,
    children: list[_Proc],
    node: _Proc,
    http: aiohttp.ClientSession,
    rest: str,
    addresses: dict[str, str],
    settings: Settings,
    prom: Any = None,
) -> tuple[list[str], bool]:
    """Dependency order: the API and the worker first (no new commands, no dead-man's switch
    firing on a hot path that is stopping), then the hot paths, which cancel their orders
    and confirm it with the localnet still up; then Temporal and the localnet. One summary
    line per process; clean when no order of ours is left on the chain."""
    lines = [
        f"{name}: stopped ({how})" for name, how in (await control.stop("api", "worker")).items()
    ]
    for c in children:
        await c.stop()
    left = await _chain_open_orders(http, rest, addresses, settings)
    for c in children:
        last = c.latest
        lines.append(
            f"{c.name}: stopped (exit {c.proc.returncode}); fills {last.get('fills', 0)}, net "
            f"PnL {last.get('net_pnl', 0.0):+.4f}, open orders left on chain "
            f"{left.get(c.name, '?')}"
        )
    lines += [f"{name}: stopped ({how})" for name, how in (await control.stop()).items()]
    if prom is not None:
        lines.append(f"prometheus: stopped ({await prom.stop()})")
    await node.stop()
    lines.append(f"localnet: stopped (exit {node.proc.returncode})")
    return lines, all(left.get(c.name) == 0 for c in children)


def _write_profile(
    path: Path, control: Any, hotpaths: dict[str, str], pw_file: Path, env: dict[str, str]
) -> None:
    from flashmm import profile

    keys = profile.write_secret(control.run_dir / "codec-keys", env["FLASHMM_CODEC_KEYS"])
    token = profile.write_secret(control.run_dir / "control-token", control.token)
    profile.write(
        profile.Profile(
            pid=os.getpid(),
            temporal_address=control.address,
            namespace="default",
            temporal_ui=control.ui,
            api_url=control.api,
            api_user="admin",
            api_password_file=str(pw_file),
            codec_keys_file=str(keys),
            control_token_file=str(token),
            hotpaths=hotpaths,
        ),
        path,
    )


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


def _ensure_stores(settings: Settings) -> tuple[Settings, dict[str, str], bool]:
    """This project's own local PostgreSQL/Redis/VictoriaMetrics when the settings point at
    the local defaults: a server on those ports that is not provably ours is never used (a
    private one is started on a free port, and the demo says so). Returns the settings and
    child environment that point at the servers used, and whether the demo started them (so
    it stops them again at the end)."""
    from flashmm import devservices

    st, local = settings.stores, devservices.configured()
    if (st.postgres_dsn, st.redis_url, st.timeseries_url) != (
        local.pg_dsn,
        local.redis_url,
        local.vm_url,
    ):
        return settings, {}, False  # the operator's own stores: used as configured
    before = devservices.status()
    try:
        eps = devservices.ensure(announce=False)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print(
            f"flashmm demo: local stores unavailable ({e}); trading without them",
            file=sys.stderr,
        )
        return settings, {}, False
    for note in eps.notes:  # which server was foreign and where ours runs
        print(f"flashmm demo: {note}", file=sys.stderr, flush=True)
    stores = st.model_copy(
        update={
            "postgres_dsn": eps.pg_dsn,
            "redis_url": eps.redis_url,
            "timeseries_url": eps.vm_url,
        }
    )
    started = not any(before.values())
    return settings.model_copy(update={"stores": stores}), eps.stores_env(), started


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


async def _views(
    http: aiohttp.ClientSession,
    rest: str,
    addresses: dict[str, str],
    settings: Settings,
    children: list[_Proc],
) -> list[Any]:
    """Each market's hot-path status beside what the chain holds for it."""
    from cli.demo_screen import MarketView

    chain_orders = await _chain_open_orders(http, rest, addresses, settings)
    limit = settings.risk_limits().max_position_notional
    views = []
    for c, m in zip(children, settings.markets, strict=True):
        price_denom, asset_denom = m.denoms()
        views.append(
            MarketView(
                m.symbol,
                c.latest,
                c.proc.returncode,
                c.restarts,
                chain_orders.get(m.symbol),
                await _balances(http, rest, addresses[m.symbol]),
                price_denom,
                asset_denom,
                m.tick_size,
                m.lot_size,
                limit,
            )
        )
    return views
