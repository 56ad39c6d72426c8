"""The localnet as a child process for the benchmarks: started on free ports, ready when
it prints its addresses."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def start_localnet() -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """(the process, its ready line: rest, rpc, chain_id)."""
    node = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "localnet",
        "--rest-port",
        "0",
        "--rpc-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert node.stdout is not None
    try:
        ready: dict[str, Any] = json.loads(await asyncio.wait_for(node.stdout.readline(), 30))
    except BaseException:
        node.kill()
        await node.wait()
        raise
    return node, ready
