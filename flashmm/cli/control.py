"""Control-plane commands: workers, market lifecycle changes, emergency stop."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import asdict

from flashmm.config import Settings


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser(
        "worker",
        help="run a Temporal worker",
        description="control: workflows and general activities; host: the "
        "hot-path activities of the markets on this machine (control.hotpaths).",
    )
    w.add_argument("role", choices=["control", "host", "all"])
    w.add_argument("--schedules", action="store_true", help="create/update schedules first")

    m = sub.add_parser("market", help="change or show a market through TradingLifecycle")
    m.add_argument("action", choices=["ensure", "start", "stop", "halt", "resume", "status"])
    m.add_argument("symbol")
    m.add_argument("--reason", default="", help="recorded with the change")
    m.add_argument("--actor", default=os.environ.get("USER", "operator"))

    e = sub.add_parser("estop", help="emergency stop: halt and cancel everything, verified")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--market", action="append", help="a market (repeatable)")
    g.add_argument("--all", action="store_true", help="every configured market")
    e.add_argument("--reason", required=True)
    e.add_argument("--actor", default=os.environ.get("USER", "operator"))


def run_worker(settings: Settings, role: str, schedules: bool) -> int:
    from workers.client import connect
    from workers.run import control_worker, host_workers, run_workers
    from workers.schedules import ensure_schedules

    async def go() -> None:
        client = await connect(settings.control.temporal_address, settings.control.namespace)
        if schedules:
            print(json.dumps({"schedules": await ensure_schedules(client, settings)}))
        ws = []
        if role in ("control", "all"):
            ws.append(control_worker(client, settings))
        if role in ("host", "all"):
            ws.extend(host_workers(client, settings))
        print(json.dumps({"event": "worker", "role": role, "workers": len(ws)}), flush=True)
        await run_workers(ws)

    asyncio.run(go())
    return 0


def run_market(settings: Settings, args: argparse.Namespace) -> int:
    from workers.client import connect, ensure_lifecycle
    from workflows.types import ChangeRequest

    settings.market(args.symbol)  # refuse unknown markets before touching Temporal

    async def go() -> object:
        client = await connect(settings.control.temporal_address, settings.control.namespace)
        handle = await ensure_lifecycle(client, args.symbol)
        if args.action == "ensure":
            return {"workflow_id": handle.id}
        if args.action == "status":
            return await handle.query("status")
        return await handle.execute_update(args.action, ChangeRequest(args.actor, args.reason))

    out = asyncio.run(go())
    print(json.dumps(out if isinstance(out, dict) else asdict(out), default=str))  # type: ignore[call-overload]
    return 0


def run_estop(settings: Settings, args: argparse.Namespace) -> int:
    from workers.client import connect, start_emergency_stop
    from workflows.types import EmergencyStopInput

    markets = [m.symbol for m in settings.markets] if args.all else args.market
    for m in markets:
        settings.market(m)

    async def go() -> object:
        client = await connect(settings.control.temporal_address, settings.control.namespace)
        h = await start_emergency_stop(client, EmergencyStopInput(markets, args.reason, args.actor))
        return await h.result()

    print(json.dumps(asdict(asyncio.run(go())), default=str))  # type: ignore[call-overload]
    return 0
