"""Argument parsing and dispatch. Subcommands import their (heavier) code only when run.
The command line sits above the kernel (``flashmm``) and both planes: it may import any of
them, and nothing imports it (``tests/unit/test_layers.py``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence

from flashmm import __version__
from flashmm.config import ConfigError, load_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flashmm",
        description="FlashMM: an AI-driven market maker for the Sei dex protocol.",
        epilog="Settings come from --config (YAML) and FLASHMM_* environment variables; "
        "see config.example.yaml.",
    )
    p.add_argument("--version", action="version", version=f"flashmm {__version__}")
    p.add_argument("--config", metavar="FILE", help="YAML settings file (or FLASHMM_CONFIG)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = sub.add_parser(
        "demo",
        help="run the platform on this machine: localnet + one hot path per market",
        description="Start the local Sei dex exchange and one hot-path process per "
        "configured market, trading over loopback, with a live status every second until "
        "Ctrl-C or --duration. With --sim, run in one process on the simulator instead.",
    )
    d.add_argument(
        "--sim",
        action="store_true",
        help="in-process simulated venue (no localnet, no extra processes)",
    )
    d.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    d.add_argument("--seed", type=int, default=None, help="seed of the simulated market (--sim)")
    d.add_argument(
        "--keep-files",
        action="store_true",
        help="keep the run's temporary folder (logs, state, Temporal's database) on exit",
    )
    d.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve Prometheus /metrics on 127.0.0.1:PORT (default: off)",
    )
    d.add_argument(
        "--plain",
        action="store_true",
        help="one status line per market per second instead of the terminal dashboard",
    )

    h = sub.add_parser(
        "hotpath",
        help="run one market's quote loop against the configured venue",
        description="Run the hot path for one market until SIGINT/SIGTERM or --duration; "
        "on stop it cancels every order and confirms none remain.",
    )
    h.add_argument("--market", required=True, metavar="SYMBOL", help="e.g. SEI/USDC")
    h.add_argument("--duration", type=float, default=None, metavar="SECONDS")
    h.add_argument("--json", action="store_true", help="status as JSON lines")
    h.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve Prometheus /metrics on PORT (default: off)",
    )
    h.add_argument(
        "--metrics-host",
        default=None,
        metavar="ADDR",
        help="address for /metrics (default: hotpath.metrics_host, 127.0.0.1)",
    )

    ln = sub.add_parser(
        "localnet",
        help="run the local Sei dex exchange on loopback",
        description="Serve the Sei dex protocol subset (REST + Tendermint RPC WebSocket) "
        "for every configured market, with a seeded background market, until stopped.",
    )
    ln.add_argument("--rest-port", type=int, default=None, help="0 picks a free port")
    ln.add_argument("--rpc-port", type=int, default=None, help="0 picks a free port")
    ln.add_argument("--state-file", default=None, help="persist accounts across restarts")
    ln.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve Prometheus /metrics on 127.0.0.1:PORT (default: off)",
    )

    sv = sub.add_parser(
        "services",
        help="local PostgreSQL, Redis and VictoriaMetrics",
        description="Start (up), stop (down) or show the local development "
        "servers on loopback ports, with data under .run/.",
    )
    sv.add_argument("action", choices=["up", "down", "status"])

    db = sub.add_parser("db", help="database operations")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    dbsub.add_parser("migrate", help="apply pending forward-only migrations")

    au = sub.add_parser("audit", help="audit log operations")
    ausub = au.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    av = ausub.add_parser("verify", help="check the audit log's hash chain and its anchors")
    av.add_argument("--no-anchor", action="store_true", help="check the hash chain only")
    av.add_argument("--require-anchor", action="store_true", help="fail when Redis holds no anchor")

    rp = sub.add_parser(
        "report",
        help="spread improvement and accuracy from stored data",
        description="Compute spread improvement versus the market and "
        "directional accuracy per horizon from the time-series store.",
    )
    rp.add_argument("--market", default=None, help="one market (default: all)")
    rp.add_argument("--minutes", type=float, default=60.0, help="window ending now")
    rp.add_argument("--json", action="store_true", help="print one JSON object")

    b = sub.add_parser(
        "backtest",
        help="replay a simulated session, or recorded real data (--data), through the hot path",
        description="Run a seeded simulated session as fast as the CPU "
        "allows through the same quoting, risk and order code as live.",
    )
    b.add_argument("--minutes", type=float, default=10.0, help="simulated minutes (default 10)")
    b.add_argument("--seed", type=int, default=7, help="market seed (default 7)")
    b.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    b.add_argument(
        "--report-dir",
        default="reports/backtest",
        metavar="DIR",
        help="where to write the report with plots (default reports/backtest)",
    )
    b.add_argument("--no-report", action="store_true", help="skip writing the report")
    from cli.backtest import add_arguments as add_backtest_arguments
    from cli.replay import add_arguments as add_replay_arguments

    add_backtest_arguments(b)
    add_replay_arguments(b)

    r = sub.add_parser("research", help="reproduce published market-making experiments")
    rsub = r.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    a = rsub.add_parser(
        "as-table",
        help="Avellaneda & Stoikov (2008), section 4",
        description="Inventory strategy vs symmetric benchmark, as in the "
        "paper's numerical experiment.",
    )
    a.add_argument("--gamma", type=float, default=0.1, help="risk aversion γ (default 0.1)")
    a.add_argument("--paths", type=int, default=1000, help="simulated paths (default 1000)")
    a.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    a.add_argument("--json", action="store_true", help="print one JSON object")

    from cli.api import add_api_arguments
    from cli.control import add_arguments as add_control_arguments
    from cli.control import add_codec_arguments, add_ops_arguments
    from cli.data import add_arguments as add_data_arguments
    from cli.ml import add_evaluate_arguments, add_train_arguments

    add_control_arguments(sub)
    add_data_arguments(sub)
    add_ops_arguments(sub)
    add_api_arguments(sub)
    add_codec_arguments(sub)
    from cli.temporal import add_arguments as add_temporal_arguments

    add_temporal_arguments(sub)

    tr = sub.add_parser(
        "train",
        help="train a direction model on simulated sessions and export it",
        description="Simulate the seeded sessions, train the model (early stopping and "
        "temperature calibration on the last --val-frac of the data) and write model.ts + "
        "card.json to --out.",
    )
    add_train_arguments(tr)
    ev = sub.add_parser(
        "evaluate",
        help="score an exported model and the baselines on held-out sessions",
        description="Retrain the MLP and imbalance baselines on the model's training data "
        "(regenerated from its card), score all on held-out seeds and write a report.",
    )
    add_evaluate_arguments(ev)

    c = sub.add_parser("config", help="validate and print the effective settings")
    c.add_argument("--json", action="store_true", help="print compact JSON on one line")
    return p


def _lazy(module: str, func: str, settings: bool = True) -> Callable[[argparse.Namespace], int]:
    """A command whose module is imported only when it runs, called with the settings and the
    arguments (or the arguments alone): the CLI starts fast whatever it can do."""

    def run(args: argparse.Namespace) -> int:
        fn = getattr(importlib.import_module(module), func)
        return int(fn(load_settings(args.config), args) if settings else fn(args))

    return run


def _cmd_demo(args: argparse.Namespace) -> int:
    if not args.sim:
        from cli.demo import run_platform_demo

        return run_platform_demo(
            load_settings(args.config),
            args.duration,
            args.config,
            keep=args.keep_files,
            plain=args.plain,
        )
    from cli.demo_sim import run_demo

    return run_demo(
        load_settings(args.config),
        duration=args.duration,
        seed=args.seed,
        metrics_port=args.metrics_port,
    )


def _cmd_hotpath(args: argparse.Namespace) -> int:
    from hotpath.main import run_hotpath

    return run_hotpath(
        load_settings(args.config),
        args.market,
        args.duration,
        args.json,
        args.metrics_port,
        args.metrics_host,
    )


def _cmd_localnet(args: argparse.Namespace) -> int:
    from cli.localnet import run_localnet

    return run_localnet(
        load_settings(args.config),
        args.rest_port,
        args.rpc_port,
        args.state_file,
        args.metrics_port,
    )


def _cmd_services(args: argparse.Namespace) -> int:
    from cli.ops import services

    return services(args.action)


def _cmd_db(args: argparse.Namespace) -> int:
    from cli.ops import db_migrate

    return db_migrate(load_settings(args.config))


def _cmd_audit(args: argparse.Namespace) -> int:
    from cli.ops import audit_verify

    return audit_verify(load_settings(args.config), not args.no_anchor, args.require_anchor)


def _cmd_report(args: argparse.Namespace) -> int:
    from cli.report import run_report

    return run_report(load_settings(args.config), args.market, args.minutes, args.json)


def _cmd_worker(args: argparse.Namespace) -> int:
    from cli.control import run_worker

    return run_worker(
        load_settings(args.config),
        args.role,
        args.schedules,
        args.metrics_port,
        args.metrics_host,
        args.sdk_metrics_port,
    )


def _cmd_api(args: argparse.Namespace) -> int:
    from cli.api import run_api

    return run_api(load_settings(args.config), args.host, args.port)


def _cmd_backtest(args: argparse.Namespace) -> int:
    if args.data:
        from cli.replay import run_replay_cmd

        return run_replay_cmd(load_settings(args.config), args)
    from cli.backtest import run_backtest_cmd

    return run_backtest_cmd(load_settings(args.config), args)


def _cmd_research(args: argparse.Namespace) -> int:
    from flashmm.research.as_table import ASParams, format_table, run_as_table, to_json_dict

    params = ASParams(gamma=args.gamma, paths=args.paths, seed=args.seed)
    result = run_as_table(params)
    if args.json:
        print(json.dumps(to_json_dict(result)))
    else:
        print(format_table(result, params))
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    s = load_settings(args.config)
    print(s.model_dump_json(indent=None if args.json else 2))
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _cmd_demo,
    "hotpath": _cmd_hotpath,
    "localnet": _cmd_localnet,
    "backtest": _cmd_backtest,
    "data": _lazy("cli.data", "run", settings=False),
    "train": _lazy("cli.ml", "run_train"),
    "worker": _cmd_worker,
    "market": _lazy("cli.control", "run_market"),
    "temporal": _lazy("cli.temporal", "run"),
    "estop": _lazy("cli.control", "run_estop"),
    "runbook": _lazy("cli.control", "run_runbook"),
    "codec-server": _lazy("cli.control", "run_codec_server", settings=False),
    "deploy-model": _lazy("cli.control", "run_deploy_model"),
    "evaluate": _lazy("cli.ml", "run_evaluate"),
    "services": _cmd_services,
    "db": _cmd_db,
    "audit": _cmd_audit,
    "report": _cmd_report,
    "research": _cmd_research,
    "config": _cmd_config,
    "api": _cmd_api,
    "api-user": _lazy("cli.api", "run_api_user"),
    "api-key": _lazy("cli.api", "run_api_key"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from flashmm import profile

    used = profile.apply(args.command, os.environ)
    if used is not None:
        print(f"flashmm: using the running demo (profile {used})", file=sys.stderr)
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as e:
        print(f"flashmm: configuration error\n{e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"flashmm: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
