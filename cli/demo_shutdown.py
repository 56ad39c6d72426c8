"""How ``flashmm demo`` stops: every process in dependency order, with one summary line each
(fills, net PnL and the orders left on the chain for a hot path)."""

from __future__ import annotations

from typing import Any

import aiohttp

from cli.demo_chain import chain_open_orders
from cli.demo_processes import Proc
from flashmm.config import Settings


async def stop_in_order(
    control: Any,
    children: list[Proc],
    node: Proc,
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
    left = await chain_open_orders(http, rest, addresses, settings)
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
