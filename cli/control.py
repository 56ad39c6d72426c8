"""Control-plane commands: workers, market lifecycle changes, emergency stop."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import asdict
from typing import NoReturn

from flashmm.config import Settings


def exit_now(code: int = 0) -> NoReturn:
    """End the process without interpreter teardown, after flushing logs and output: the
    Temporal client's Rust threads can crash CPython's finalizer with SIGABRT
    (temporalio/sdk-python#300), which would turn a clean exit into a failure."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser(
        "worker",
        help="run a Temporal worker",
        description="control: workflows and general activities; host: the "
        "hot-path activities of the markets on this machine (control.hotpaths).",
    )
    w.add_argument("role", choices=["control", "host", "all"])
    w.add_argument("--schedules", action="store_true", help="create/update schedules first")
    w.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus /metrics on PORT (default: control.metrics_port; 0 = off)",
    )
    w.add_argument(
        "--metrics-host", default=None, metavar="ADDR", help="default: control.metrics_host"
    )
    w.add_argument(
        "--sdk-metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve the Temporal SDK's own metrics (temporal_*) on PORT, at the metrics "
        "address (default 0: off)",
    )

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


def add_ops_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("runbook", help="start, approve or abort an on-call runbook")
    r.add_argument("action", choices=["start", "approve", "abort", "status"])
    r.add_argument(
        "target",
        help="start: RUNBOOK:MARKET (e.g. flatten:SEI/USDC); otherwise the runbook's workflow id",
    )
    r.add_argument("--step", default="approve", help="the step to approve")
    r.add_argument("--reason", default="")
    r.add_argument("--actor", default=os.environ.get("USER", "operator"))

    d = sub.add_parser("deploy-model", help="run DeployModel for a market")
    d.add_argument("--market", required=True)
    d.add_argument("--artifact", default="", help="an exported model (else train one)")
    d.add_argument("--shadow-s", type=float, default=60.0)
    d.add_argument("--monitor-s", type=float, default=300.0)
    d.add_argument("--actor", default=os.environ.get("USER", "operator"))


def add_codec_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser(
        "codec-server",
        help="decrypting codec endpoint for the Temporal UI",
        description="Serves POST /decode and /encode for the Temporal UI's "
        "codec endpoint. Keys from FLASHMM_CODEC_KEYS; operators authenticate "
        "with the bearer token in FLASHMM_CODEC_SERVER_TOKEN.",
    )
    c.add_argument("--port", type=int, default=8081)
    c.add_argument("--ui-origin", default="http://127.0.0.1:8233")


def run_codec_server(args: argparse.Namespace) -> int:
    from aiohttp import web

    from flashmm.temporal.codec import EncryptionCodec
    from flashmm.temporal.codec_server import make_app

    token = os.environ.get("FLASHMM_CODEC_SERVER_TOKEN", "")
    app = make_app(EncryptionCodec.from_env(), token, args.ui_origin)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)
    return 0


def run_runbook(settings: Settings, args: argparse.Namespace) -> int:
    from flashmm.temporal.client import connect
    from workflows.types import CONTROL_QUEUE, RUNBOOKS, Decision, RunbookInput

    async def go() -> object:
        client = await connect(settings.control.temporal_address, settings.control.namespace)
        if args.action == "start":
            name, _, market = args.target.partition(":")
            if name not in RUNBOOKS:
                raise ValueError(f"unknown runbook {name!r} (known: {', '.join(RUNBOOKS)})")
            settings.market(market)
            import uuid

            wid = f"runbook/{name}/{market}/{uuid.uuid4().hex[:8]}"
            await client.start_workflow(
                "Runbook",
                RunbookInput(name, market, args.actor, args.reason),
                id=wid,
                task_queue=CONTROL_QUEUE,
            )
            return {"workflow_id": wid}
        h = client.get_workflow_handle(args.target)
        if args.action == "status":
            return {
                "steps": [
                    asdict(s) if not isinstance(s, dict) else s for s in await h.query("progress")
                ]
            }
        return {
            "result": await h.execute_update(
                args.action, Decision(args.step, args.actor, args.reason)
            )
        }

    print(json.dumps(asyncio.run(go()), default=str))
    exit_now(0)


def run_deploy_model(settings: Settings, args: argparse.Namespace) -> int:
    from flashmm.temporal.client import connect
    from workflows.types import CONTROL_QUEUE, DeployModelInput, deploy_model_id

    settings.market(args.market)

    async def go() -> object:
        client = await connect(settings.control.temporal_address, settings.control.namespace)
        return await client.execute_workflow(
            "DeployModel",
            DeployModelInput(
                args.market,
                args.artifact,
                shadow_s=args.shadow_s,
                monitor_s=args.monitor_s,
                actor=args.actor,
            ),
            id=deploy_model_id(args.market),
            task_queue=CONTROL_QUEUE,
        )

    out = asyncio.run(go())
    print(json.dumps(out if isinstance(out, dict) else asdict(out), default=str))  # type: ignore[call-overload]
    exit_now(0)


def run_worker(
    settings: Settings,
    role: str,
    schedules: bool,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
    sdk_metrics_port: int = 0,
) -> int:
    """Run the role's workers until SIGTERM/SIGINT. Roles that run workflows (control, all)
    first check the namespace has the search attributes the workflows upsert and exit 2,
    naming them and the command that registers them, when it does not."""
    from flashmm.temporal.client import connect
    from flashmm.temporal.search_attributes import SearchAttributesMissingError, check
    from workers.run import control_worker, host_workers, run_workers
    from workers.schedules import ensure_schedules

    host = metrics_host or settings.control.metrics_host
    port = settings.control.metrics_port if metrics_port is None else metrics_port
    if port:
        from prometheus_client import start_http_server

        from flashmm.telemetry import mark_uptime

        mark_uptime(f"worker-{role}")
        start_http_server(port, addr=host)
    if sdk_metrics_port:
        from flashmm.temporal.sdk_metrics import serve

        serve(host, sdk_metrics_port)  # before the first client: they share this runtime

    from flashmm import tracing

    tracing.setup(settings, "flashmm-worker")  # before connect: the client gets the interceptor

    async def go() -> None:
        # strict: input a client sent without the codec key is refused (a workflow task or
        # activity failure naming the cause), never acted on
        client = await connect(
            settings.control.temporal_address, settings.control.namespace, strict=True
        )
        if role in ("control", "all"):
            try:
                await check(client)
            except SearchAttributesMissingError as e:
                print(f"flashmm worker {role}: {e}", file=sys.stderr, flush=True)
                exit_now(2)
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
    exit_now(0)


def run_market(settings: Settings, args: argparse.Namespace) -> int:
    from flashmm.temporal.client import connect
    from workflows.starters import ensure_lifecycle
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
    exit_now(0)


def run_estop(settings: Settings, args: argparse.Namespace) -> int:
    from flashmm.inputs import InputError, check_text
    from flashmm.temporal.client import connect
    from workflows.starters import start_emergency_stop
    from workflows.types import EmergencyStopInput

    markets = [m.symbol for m in settings.markets] if args.all else args.market
    for m in markets:
        settings.market(m)
    try:
        check_text(args.reason, "--reason", 500)
        check_text(args.actor, "--actor", 200)
    except InputError as e:
        raise SystemExit(f"flashmm estop: {e}") from None
    if not os.environ.get("FLASHMM_CODEC_KEYS"):
        # workers with a codec refuse plain input: this stop would never run there
        print(
            "flashmm estop: warning: no FLASHMM_CODEC_KEYS; workers that encrypt payloads will "
            "refuse this stop (use the API's POST /v1/emergency-stop, which also halts the hot "
            "paths directly, or set the key)",
            file=sys.stderr,
            flush=True,
        )

    async def go() -> object:
        client = await connect(settings.control.temporal_address, settings.control.namespace)
        h = await start_emergency_stop(client, EmergencyStopInput(markets, args.reason, args.actor))
        return await h.result()

    print(json.dumps(asdict(asyncio.run(go())), default=str))  # type: ignore[call-overload]
    exit_now(0)
