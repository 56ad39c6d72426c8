"""The processes ``flashmm demo`` starts (``python -m cli ...`` in their own session, so
Ctrl-C reaches the demo only): :class:`Proc` keeps a child's latest JSON status line and the
line announcing its control API; :func:`supervise` reports a hot path that died and starts it
again. Also the free loopback ports the children listen on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any


class Proc:
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


async def spawn(name: str, args: list[str], env: dict[str, str]) -> Proc:
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
    return Proc(name, proc, args, env)


async def supervise(children: list[Proc], dead: dict[str, float], delay_s: float) -> None:
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
            fresh = await spawn(c.name, c.args, c.env)
            fresh.restarts = c.restarts + 1
            children[i] = fresh
            fresh.reporter = asyncio.create_task(_report_restart(fresh))


async def _report_restart(p: Proc) -> None:
    with contextlib.suppress(RuntimeError):
        await wait_control(p)
        state = str(p.control.get("state", "?"))
        hint = f" (resume: flashmm market resume {p.name})" if state == "halted" else ""
        print(
            f"flashmm demo: {p.name} hot path restarted ({p.restarts}), {state}{hint}",
            file=sys.stderr,
            flush=True,
        )


async def wait_control(p: Proc, timeout: float = 60.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not p.control:
        if p.proc.returncode is not None or asyncio.get_running_loop().time() > end:
            raise RuntimeError(f"{p.name}: hot path did not open its control API")
        await asyncio.sleep(0.1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
