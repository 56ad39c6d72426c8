"""The hot path's local control API: loopback only, bearer-token auth, idempotent commands.

``POST /v1/commands`` with ``{"command_id", "command", "args"}`` applies a command once: a
retried id gets the recorded answer, not a second application. ``GET /v1/status`` reports
the state. The desired state (stopped / trading / halted), the parameters and the model are
persisted after every change, so a restarted hot path comes back as it was last told — a
halted market stays halted.

Commands: start, stop (cancel all, confirm none open), halt (emergency), resume,
set_params (validated), load_model (path + version, hot swap), switch_key (key reference).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from hotpath.loop import QuoteLoop

log = logging.getLogger(__name__)
STATES = ("stopped", "trading", "halted")
_REMEMBER = 1000  # command ids kept for idempotency


class CommandError(ValueError):
    """A command that cannot be applied in the current state or with these arguments."""


@dataclass
class ControlState:
    state: str = "stopped"
    reason: str = ""
    quoting: dict[str, Any] = field(default_factory=dict)
    risk: dict[str, Any] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    key_ref: str = ""
    applied: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "quoting": self.quoting,
            "risk": self.risk,
            "model": self.model,
            "key_ref": self.key_ref,
            "applied": list(self.applied.items()),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ControlState:
        s = cls(
            d.get("state", "stopped"),
            d.get("reason", ""),
            d.get("quoting", {}),
            d.get("risk", {}),
            d.get("model", {}),
            d.get("key_ref", ""),
        )
        if s.state not in STATES:
            raise ValueError(f"control state file has unknown state {s.state!r}")
        s.applied = OrderedDict((k, v) for k, v in d.get("applied", []))
        return s


KeySwitcher = Callable[[str], Awaitable[str]]


class ControlServer:
    def __init__(
        self,
        loop: QuoteLoop,
        state_file: Path,
        token: str,
        port: int = 0,
        key_switcher: KeySwitcher | None = None,
    ) -> None:
        if not token or len(token) < 16:
            raise ValueError("control token must be at least 16 characters")
        self.loop = loop
        self.mm = loop.mm
        self.state_file = state_file
        self._token = token
        self.port = port
        self.key_switcher = key_switcher
        self.state = self._load()
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None

    # --- persistence --------------------------------------------------------------------
    def _load(self) -> ControlState:
        if self.state_file.exists():
            return ControlState.from_json(json.loads(self.state_file.read_text()))
        return ControlState()

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state.to_json()))
        os.replace(tmp, self.state_file)

    def apply_persisted(self) -> None:
        """At start-up: put the engine in the last state it was told (before quoting)."""
        s = self.state
        if s.quoting:
            self.mm.params = replace(self.mm.params, **_typed(self.mm.params, s.quoting))
        if s.risk:
            self.mm.risk.limits = replace(
                self.mm.risk.limits, **_typed(self.mm.risk.limits, s.risk)
            )
        self.mm.enabled = s.state == "trading"
        if s.state == "halted":
            self.mm.risk.halt(s.reason or "halted before restart")

    # --- HTTP ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024, middlewares=[self._auth])
        app.add_routes(
            [web.get("/v1/status", self._status), web.post("/v1/commands", self._command)]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    def status(self) -> dict[str, Any]:
        st = self.mm.status()
        return {
            "desired": self.state.state,
            "reason": self.state.reason,
            "risk_state": st["state"],
            "open_orders": len(self.mm.om.live),
            "position_lots": st["position_lots"],
            "model": self.state.model,
            "key_ref": self.state.key_ref,
            "symbol": st["symbol"],
            "signal": _signal_status(self.mm.signal),
        }

    async def _command(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            cid = body["command_id"]
            command = body["command"]
            args = body.get("args") or {}
            if not isinstance(cid, str) or not cid or len(cid) > 128:
                raise ValueError("command_id must be a string of 1..128 characters")
            if not isinstance(args, dict):
                raise ValueError("args must be an object")
        except (ValueError, KeyError, TypeError) as e:
            return web.json_response({"error": f"bad request: {e}"}, status=400)
        try:
            return web.json_response(await self.execute(cid, str(command), args))
        except CommandError as e:
            return web.json_response(
                {"command_id": cid, "error": str(e), "state": self.status()}, status=409
            )

    # --- commands -----------------------------------------------------------------------
    async def execute(self, command_id: str, command: str, args: dict[str, Any]) -> dict[str, Any]:
        """Apply once per command id; a repeat returns the first answer."""
        async with self._lock:
            done = self.state.applied.get(command_id)
            if done is not None:
                return {**done, "replayed": True}
            handler = _COMMANDS.get(command)
            if handler is None:
                raise CommandError(f"unknown command {command!r} (known: {sorted(_COMMANDS)})")
            detail = await handler(self, args)
            answer = {
                "command_id": command_id,
                "command": command,
                "applied": True,
                "detail": detail,
                "state": self.status(),
                "at": time.time(),
            }
            self.state.applied[command_id] = answer
            while len(self.state.applied) > _REMEMBER:
                self.state.applied.popitem(last=False)
            self._save()
            return {**answer, "replayed": False}

    async def _start(self, args: dict[str, Any]) -> str:
        if self.state.state == "halted":
            raise CommandError("market is halted: resume it first")
        self.state.state, self.state.reason = "trading", ""
        self.mm.enabled = True
        return "trading"

    async def _stop(self, args: dict[str, Any]) -> str:
        self.mm.enabled = False
        if self.state.state != "halted":
            self.state.state, self.state.reason = "stopped", str(args.get("reason", ""))
        self._save()  # durable before the slow part
        left = await self.loop.cancel_all_and_confirm(float(args.get("timeout_s", 5.0)))
        if left:
            raise CommandError(f"stopped, but {left} order(s) still open at the venue")
        return "stopped; no open orders"

    async def _halt(self, args: dict[str, Any]) -> str:
        reason = str(args.get("reason", "halt"))[:200]
        self.state.state, self.state.reason = "halted", reason
        self.mm.enabled = False
        self._save()  # durable first: a crash right after still comes back halted
        await self.loop.halt(reason)
        return "halted"

    async def _resume(self, args: dict[str, Any]) -> str:
        if self.state.state != "halted":
            raise CommandError(f"market is {self.state.state}, not halted")
        self.mm.risk.resume()
        self.state.state, self.state.reason = "trading", ""
        self.mm.enabled = True
        return "trading"

    async def _daily_reset(self, args: dict[str, Any]) -> dict[str, Any]:
        """New risk day: snapshot, reset the daily loss counters, re-arm the breakers that
        may re-arm (drawdown, daily loss); an operator's halt stays."""
        mm = self.mm
        pos = mm.om.position
        mid = mm.book.mid
        pnl = pos.net_pnl(mid) if mid else pos.realized - pos.fees
        risk = mm.risk
        snapshot = {
            "pnl_total": pnl,
            "pnl_day": pnl - risk.day_start_pnl,
            "fills": pos.fill_count,
            "position_lots": pos.lots,
            "state_before": risk.state.value,
            "reason_before": risk.halt_reason,
        }
        risk.daily_reset(pnl)
        rearmed = False
        if self.state.state != "halted" and risk.halt_reason in (
            "max_drawdown",
            "daily_loss_limit",
        ):
            risk.resume()
            rearmed = True
        return {**snapshot, "rearmed": rearmed, "state_after": risk.state.value}

    async def _set_params(self, args: dict[str, Any]) -> dict[str, Any]:
        q = args.get("quoting") or {}
        r = args.get("risk") or {}
        if not isinstance(q, dict) or not isinstance(r, dict) or not (q or r):
            raise CommandError("set_params needs {'quoting': {...}} and/or {'risk': {...}}")
        try:
            params = replace(self.mm.params, **_typed(self.mm.params, q))
            limits = replace(self.mm.risk.limits, **_typed(self.mm.risk.limits, r))
        except (TypeError, ValueError) as e:
            raise CommandError(f"invalid parameters: {e}") from None
        self.mm.params, self.mm.risk.limits = params, limits
        self.state.quoting.update(q)
        self.state.risk.update(r)
        return {"quoting": params.as_dict(), "risk": limits.as_dict()}

    async def _load_model(self, args: dict[str, Any]) -> dict[str, str]:
        path = args.get("path")
        if not isinstance(path, str) or not path:
            raise CommandError("load_model needs a 'path'")
        load = getattr(self.mm.signal, "load_and_promote", None)
        if load is None:
            raise CommandError("this hot path runs without a model signal")
        try:
            m = await load(path)
        except Exception as e:
            raise CommandError(f"model not loaded: {e}") from None
        self.state.model = {"path": path, "version": str(args.get("version") or m.version)}
        return self.state.model

    async def _shadow_model(self, args: dict[str, Any]) -> dict[str, str]:
        """Run a candidate beside the live model (after each cycle) without quoting on it."""
        path = args.get("path")
        sig = self.mm.signal
        if not isinstance(path, str) or not path:
            raise CommandError("shadow_model needs a 'path'")
        if not hasattr(sig, "shadow"):
            raise CommandError("this hot path runs without a model signal")
        from hotpath.inference import load_model

        try:
            m = await asyncio.to_thread(load_model, path)
        except Exception as e:
            raise CommandError(f"shadow model not loaded: {e}") from None
        sig.shadow = m
        return {"shadow": m.version}

    async def _rollback_model(self, args: dict[str, Any]) -> dict[str, str]:
        sig = self.mm.signal
        rollback = getattr(sig, "rollback", None)
        if rollback is None or not rollback():
            raise CommandError("no previous model to roll back to")
        version = sig.model.version if sig.model else ""  # type: ignore[attr-defined]
        self.state.model = {"version": version, "rolled_back": "true"}
        return {"model": version}

    async def _flatten(self, args: dict[str, Any]) -> dict[str, Any]:
        """Work the position off with reduce-only quotes (REDUCING until resumed)."""
        self.mm.risk.reduce_only(str(args.get("reason", "flatten"))[:200])
        return {"risk_state": self.mm.risk.state.value, "position_lots": self.mm.om.position.lots}

    async def _feed_failover(self, args: dict[str, Any]) -> dict[str, Any]:
        """Leave the current market-data endpoint for the next one in the list."""
        feed = getattr(self.loop.venue, "feed", None)
        if feed is None or not hasattr(feed, "fail_over"):
            raise CommandError("this venue has no switchable feed")
        before = feed.endpoint
        await feed.fail_over()
        return {"from": before or "", "endpoints": list(feed.cfg.endpoints)}

    async def _switch_key(self, args: dict[str, Any]) -> dict[str, str]:
        ref = args.get("key_ref")
        if not isinstance(ref, str) or not ref:
            raise CommandError("switch_key needs a 'key_ref' (a keystore reference)")
        if self.key_switcher is None:
            raise CommandError("this hot path cannot switch keys")
        try:
            address = await self.key_switcher(ref)
        except Exception as e:
            raise CommandError(f"key not switched: {e}") from None
        self.state.key_ref = ref
        return {"key_ref": ref, "address": address}


_COMMANDS: dict[str, Callable[[ControlServer, dict[str, Any]], Awaitable[Any]]] = {
    "start": ControlServer._start,
    "stop": ControlServer._stop,
    "halt": ControlServer._halt,
    "resume": ControlServer._resume,
    "set_params": ControlServer._set_params,
    "daily_reset": ControlServer._daily_reset,
    "shadow_model": ControlServer._shadow_model,
    "flatten": ControlServer._flatten,
    "feed_failover": ControlServer._feed_failover,
    "rollback_model": ControlServer._rollback_model,
    "load_model": ControlServer._load_model,
    "switch_key": ControlServer._switch_key,
}


def _signal_status(signal: Any) -> dict[str, Any]:
    status = getattr(signal, "status", None)
    if status is None:
        return {}
    st: dict[str, Any] = status()
    st["accuracy"] = {h: (None if a != a else a) for h, a in st["accuracy"].items()}  # NaN
    shadow_log = getattr(signal, "shadow_log", ())
    if shadow_log:
        st["shadow_agreement"] = sum(live == sh for _, live, sh in shadow_log) / len(shadow_log)
        st["shadow_samples"] = len(shadow_log)
    return st


def _typed(obj: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Coerce JSON values to the types of ``obj``'s fields; unknown names are errors."""
    import dataclasses
    import enum

    fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    out: dict[str, Any] = {}
    for k, v in values.items():
        if k not in fields:
            raise ValueError(f"unknown parameter {k!r}")
        cur = fields[k]
        out[k] = (
            type(cur)(v)
            if isinstance(cur, enum.Enum | int | float) and not isinstance(cur, bool)
            else v
        )
    return out
