"""``flashmm localnet``: serve the Sei dex protocol subset on loopback until stopped."""

from __future__ import annotations

import asyncio
import json
import signal

from flashmm.config import Settings


def run_localnet(
    settings: Settings,
    rest_port: int | None,
    rpc_port: int | None,
    state_file: str | None,
    metrics_port: int = 0,
) -> int:
    settings.setup_logging()
    asyncio.run(_run(settings, rest_port, rpc_port, state_file, metrics_port))
    return 0


async def _run(
    settings: Settings,
    rest_port: int | None,
    rpc_port: int | None,
    state_file: str | None,
    metrics_port: int,
) -> None:
    from flashmm.localnet.build import localnet_config
    from flashmm.localnet.server import Localnet

    ln = settings.localnet
    node = Localnet(
        localnet_config(settings, state_file),
        host=ln.host,
        rest_port=ln.rest_port if rest_port is None else rest_port,
        rpc_port=ln.rpc_port if rpc_port is None else rpc_port,
    )
    await node.start()
    if metrics_port:
        from prometheus_client import REGISTRY, start_http_server

        from flashmm.localnet.metrics import LocalnetCollector
        from flashmm.telemetry import mark_uptime

        REGISTRY.register(LocalnetCollector(node))
        mark_uptime("localnet")
        start_http_server(metrics_port, addr=ln.host)
    # one machine-readable line so a parent process learns the real ports
    print(
        json.dumps(
            {
                "event": "ready",
                "chain_id": node.cfg.chain_id,
                "rest": f"http://{node.host}:{node.rest_port}",
                "rpc": f"ws://{node.host}:{node.rpc_port}/websocket",
                "markets": [
                    {"symbol": m.instrument.symbol, "contract": m.contract}
                    for m in node.cfg.markets
                ],
            }
        ),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await node.stop()
