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

This module is the start-up in order and the loop; the parts: ``demo_processes.py`` (the
children, their restart), ``demo_setup.py`` (stores, codec key, profile, accounts),
``demo_chain.py`` (what the chain holds, each market's view), ``demo_shutdown.py`` (the
stop in order and its summary), ``demo_control.py`` (Temporal, worker, API).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp

from cli.demo_chain import market_views
from cli.demo_processes import Proc, free_port, spawn, supervise, wait_control
from cli.demo_setup import app_role_env, codec_key, ensure_stores, trader_address, write_profile
from cli.demo_shutdown import stop_in_order
from flashmm.config import Settings

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "models" / "market-transformer-v2-small"


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
    children: list[Proc] = []
    run_dir = Path(tempfile.mkdtemp(prefix="flashmm-demo-"))
    control = ControlPlane(run_dir)
    # workflow payloads encrypted; this process talks to Temporal too, so it needs the key
    env["FLASHMM_CODEC_KEYS"] = env.get("FLASHMM_CODEC_KEYS") or codec_key()
    os.environ["FLASHMM_CODEC_KEYS"] = env["FLASHMM_CODEC_KEYS"]
    profile_path = profile.default_path()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node: Proc | None = None
    prom: Prometheus | None = None
    started_stores = False
    log_file = run_dir / "demo.log"
    quiet = contextlib.ExitStack()  # the dashboard: stderr (ours, the children's) to the log
    if dashboard:
        quiet.enter_context(demo_screen.stderr_to(log_file))
    try:
        if settings.stores.enabled:
            settings, store_env, started_stores = await asyncio.to_thread(ensure_stores, settings)
            env.update(store_env)
            env.update(await app_role_env(settings))  # the services connect as the app role
        node_metrics = free_port()
        node = await spawn(
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
            port = free_port()
            cport = free_port()
            hotpaths[m.symbol] = f"http://127.0.0.1:{cport}"
            args = ["hotpath", "--market", m.symbol, "--json", "--metrics-port", str(port)]
            children.append(await spawn(m.symbol, args, {**hp_env, **control.hotpath_env(cport)}))
            print(f"  {m.symbol}: metrics http://127.0.0.1:{port}/metrics", flush=True)
            scrape.setdefault("flashmm-hotpath", []).append(f"127.0.0.1:{port}")
        worker_metrics, sdk_metrics = free_port(), free_port()
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
        await asyncio.gather(*(wait_control(c) for c in children))
        control.hotpath_state = {c.name: c.control for c in children}
        started = await control.start_markets(settings)
        print(
            "  started through TradingLifecycle: "
            + ", ".join(f"{k} {v}" for k, v in started.items()),
            flush=True,
        )
        if profile_path is not None:
            write_profile(profile_path, control, hotpaths, pw_file, env)
            print(
                f"  CLI: flashmm commands on this machine use this demo (profile "
                f"{profile_path}), e.g. flashmm market status {settings.markets[0].symbol}",
                flush=True,
            )
        addresses = {m.symbol: trader_address(settings, m.symbol) for m in settings.markets}
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
                    await supervise(children, dead, restart_s)
                    views = await market_views(http, rest, addresses, settings, children)
                    show.update(views, time.monotonic() - t0)
                    if duration is not None and time.monotonic() - t0 >= duration:
                        break
            print("flashmm demo: stopping", flush=True)
            lines, clean = await stop_in_order(
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
