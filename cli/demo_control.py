"""The control plane for ``flashmm demo``: a Temporal dev server (with its UI), one worker
process (control + this host's hot paths, schedules created), the operator API (an admin
user whose password is written to a 0600 file, never printed), and every market started
through its TradingLifecycle workflow."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
from pathlib import Path

from flashmm.config import Settings
from flashmm.temporal.search_attributes import DEV_SERVER_SPECS as SEARCH_ATTRIBUTES


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_port(port: int, timeout: float = 30.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < end:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


class ControlPlane:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.token = os.environ.get("FLASHMM_CONTROL_TOKEN") or secrets.token_urlsafe(24)
        self.api = ""
        self.docs = ""
        self.address = ""
        self.ui = ""
        self.procs: dict[str, asyncio.subprocess.Process] = {}  # temporal, worker, api
        self.codec_endpoint = ""
        self._codec_runner: object | None = None
        self._ui_port = 0
        self.hotpath_state: dict[str, dict[str, object]] = {}  # the hot paths' control lines

    def hotpath_env(self, control_port: int) -> dict[str, str]:
        return {
            "FLASHMM_CONTROL_TOKEN": self.token,
            "FLASHMM_HOTPATH__CONTROL_PORT": str(control_port),
            "FLASHMM_HOTPATH__START_STATE": "stopped",
            "FLASHMM_HOTPATH__STATE_DIR": str(self.run_dir / "hotpath"),
        }

    async def start_codec_endpoint(self) -> None:
        """The UI's codec endpoint, in this process: loopback callers only, no token (the dev
        server's UI has no login); production puts the operator's token in front of it."""
        from aiohttp import web

        from flashmm.temporal.codec import EncryptionCodec
        from flashmm.temporal.codec_server import make_app

        self._ui_port = _free_port(8233)
        app = make_app(EncryptionCodec.from_env(), None, f"http://127.0.0.1:{self._ui_port}")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = _free_port(8081)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._codec_runner = runner
        self.codec_endpoint = f"http://127.0.0.1:{port}"

    async def start_server(self) -> None:
        temporal = Path(sys.executable).parent / "temporal"
        port = _free_port(7233)
        ui = self._ui_port or _free_port(8233)
        codec = ["--ui-codec-endpoint", self.codec_endpoint] if self.codec_endpoint else []
        self.procs["temporal"] = await asyncio.create_subprocess_exec(
            str(temporal),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(ui),
            "--db-filename",
            str(self.run_dir / "temporal.db"),
            "--log-level",
            "error",
            *codec,
            *[arg for a in SEARCH_ATTRIBUTES for arg in ("--search-attribute", a)],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        await _wait_port(port)
        self.address = f"127.0.0.1:{port}"
        self.ui = f"http://127.0.0.1:{ui}"

    async def start_worker(
        self, env: dict[str, str], hotpaths: dict[str, str], sdk_metrics_port: int = 0
    ) -> None:
        """``sdk_metrics_port``: the Temporal SDK's own metrics (temporal_*) for Prometheus."""
        wenv = {
            **env,
            "FLASHMM_CONTROL__TEMPORAL_ADDRESS": self.address,
            "FLASHMM_CONTROL__HOTPATHS": json.dumps(hotpaths),
            "FLASHMM_CONTROL_TOKEN": self.token,
        }
        self.procs["worker"] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "worker",
            "all",
            "--schedules",
            *(["--sdk-metrics-port", str(sdk_metrics_port)] if sdk_metrics_port else []),
            env=wenv,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=None,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops us in order
        )

    async def start_api(self, env: dict[str, str], hotpaths: dict[str, str]) -> Path:
        """``flashmm api`` on a free port; returns the admin password file."""
        aenv = {
            **env,
            "FLASHMM_CONTROL__TEMPORAL_ADDRESS": self.address,
            "FLASHMM_CONTROL__HOTPATHS": json.dumps(hotpaths),
            "FLASHMM_CONTROL_TOKEN": self.token,
            "FLASHMM_API__SPOOL_DIR": str(self.run_dir / "api"),
            "FLASHMM_API__DOCS": "true",  # interactive docs in the demo; off by default
        }
        aenv.setdefault("FLASHMM_API_JWT_SECRET", secrets.token_urlsafe(48))
        password = aenv.pop("FLASHMM_API_ADMIN_PASSWORD", "") or secrets.token_urlsafe(18)
        pw_file = self.run_dir / "api-admin-password"
        pw_file.touch(mode=0o600)
        pw_file.write_text(password + "\n")
        cli = [sys.executable, "-m", "cli"]
        for action in ("add", "passwd"):  # a demo database from an earlier run has the user
            p = await asyncio.create_subprocess_exec(
                *cli,
                "api-user",
                action,
                "admin",
                "--role",
                "admin",
                "--password-stdin",
                env=aenv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await p.communicate(password.encode() + b"\n")
            if p.returncode == 0:
                break
        else:
            raise RuntimeError("could not create the demo's API admin user")
        port = _free_port(8000)
        self.procs["api"] = await asyncio.create_subprocess_exec(
            *cli,
            "api",
            "--port",
            str(port),
            env=aenv,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=None,
            start_new_session=True,
        )
        await _wait_port(port)
        self.api = f"http://127.0.0.1:{port}"
        self.docs = f"{self.api}/docs"
        return pw_file

    async def start_markets(self, settings: Settings) -> dict[str, str]:
        """Ensure each market's lifecycle workflow and start it trading."""
        from flashmm.temporal.client import connect
        from workflows.starters import ensure_lifecycle
        from workflows.types import ChangeRequest

        client = await connect(self.address)
        out = {}
        actor = os.environ.get("USER", "demo")
        for m in settings.markets:
            handle = await ensure_lifecycle(client, m.symbol)
            hot = self.hotpath_state.get(m.symbol, {})
            if hot.get("state") == "halted":  # halted before: stays halted, and says so
                await handle.execute_update("halt", ChangeRequest(actor, "halted before"))
                out[m.symbol] = "HALTED (resume: flashmm market resume " + m.symbol + ")"
                continue
            status = await handle.execute_update("start", ChangeRequest(actor, "flashmm demo"))
            out[m.symbol] = str(
                status["state"] if isinstance(status, dict) else getattr(status, "state", status)
            )
        return out

    async def stop(self, *names: str) -> dict[str, str]:
        """Stop the named processes (all when none named), each with SIGTERM then a bounded
        wait; returns one outcome per process for the demo's summary."""
        out: dict[str, str] = {}
        for name in names or tuple(self.procs):
            p = self.procs.pop(name, None)
            if p is None:
                continue
            killed = False
            if p.returncode is None:
                p.terminate()
                try:
                    await asyncio.wait_for(p.wait(), 15)
                except TimeoutError:
                    p.kill()
                    await p.wait()
                    killed = True
            out[name] = "killed after 15 s" if killed else f"exit {p.returncode}"
        if not names and self._codec_runner is not None:
            from aiohttp import web

            runner, self._codec_runner = self._codec_runner, None
            assert isinstance(runner, web.AppRunner)
            await runner.cleanup()
            out["codec endpoint"] = "closed"
        return out
