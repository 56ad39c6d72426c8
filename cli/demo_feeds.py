"""Where ``flashmm demo``'s dashboard gets what its slower panels show: Temporal's recent
workflow executions, the Prometheus alerts and each hot path's model status, refreshed in
the background (:class:`Feeds`), and the tail of the run's log file."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from cli.demo_board import WorkflowView


async def recent_workflows(client: Any, n: int = 6) -> list[WorkflowView]:
    """The ``n`` latest workflow executions (newest first) from a Temporal client."""
    found: list[WorkflowView] = []
    async for wf in client.list_workflows(limit=max(n * 4, 20), page_size=100):
        status = getattr(wf.status, "name", None) or str(wf.status or "?")
        found.append(WorkflowView(wf.workflow_type, wf.id, status, wf.start_time))
    found.sort(key=lambda w: w.started or datetime.min.replace(tzinfo=UTC), reverse=True)
    return found[:n]


def log_tail(path: Path, n: int = 4, width: int = 200) -> list[str]:
    """The last ``n`` non-blank lines of a log file (cheap: reads its last 16 KiB)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [ln[:width] for ln in data.splitlines() if ln.strip()][-n:]


class Feeds:
    """The slower sources of the dashboard, refreshed in the background every ``every_s``
    (so a slow answer never holds up the screen): Temporal's recent workflows and the
    Prometheus alerts. ``prometheus`` is a started ``demo_prometheus.Prometheus`` or None."""

    def __init__(
        self,
        temporal_address: str,
        prometheus: Any,
        hotpaths: dict[str, str] | None = None,
        token: str = "",
        every_s: float = 5.0,
    ) -> None:
        self.address = temporal_address
        self.prometheus = prometheus
        self.hotpaths = hotpaths or {}  # symbol -> control API URL
        self.token = token
        self.models: dict[str, dict[str, Any]] = {}  # symbol -> the control API's "signal"
        self.every_s = every_s
        self.workflows: list[WorkflowView] | None = None
        self.workflows_note = ""
        self.alerts: list[dict[str, Any]] | None = None
        self.alerts_note = "" if prometheus is not None else "Prometheus is not running"

    async def run(self) -> None:
        """Until cancelled."""
        from flashmm.temporal.client import connect

        client = None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            while True:
                try:
                    client = client or await connect(self.address)
                    self.workflows = await asyncio.wait_for(recent_workflows(client), 5)
                    self.workflows_note = ""
                except Exception as e:  # the screen says so and keeps the last list
                    self.workflows_note = f"Temporal did not answer ({type(e).__name__})"
                if self.prometheus is not None:
                    try:
                        self.alerts = await self.prometheus.alerts(http)
                        self.alerts_note = ""
                    except Exception as e:
                        self.alerts = None
                        self.alerts_note = f"Prometheus did not answer ({type(e).__name__})"
                await self._models(http)
                await asyncio.sleep(self.every_s)

    async def _models(self, http: aiohttp.ClientSession) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        for symbol, url in self.hotpaths.items():
            try:
                async with http.get(f"{url}/v1/status", headers=auth) as r:
                    sig = (await r.json()).get("signal")
                self.models[symbol] = sig if isinstance(sig, dict) else {}
            except Exception:  # restarting: the panel shows the status line's figures
                self.models.pop(symbol, None)
