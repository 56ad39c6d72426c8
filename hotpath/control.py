"""The hot path's local control API: loopback only, bearer-token auth, idempotent commands.

``POST /v1/commands`` (``{"command_id", "command", "args"}``) applies a command once. An id is
bound to its command and arguments: a retry gets the first answer, the same id with anything
else is refused (422). A halt is applied every time (on a halted market a no-op answering
"halted"). ``GET /v1/status`` reports the state. The desired state, run-time changes (inside
``flashmm.config.bounds``: the configured risk limits are ceilings), model and applied ids
are persisted (``control_state.py``), so a halted market comes back halted after a restart.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from flashmm.config.bounds import RuntimeBounds
from flashmm.domain import market_state
from flashmm.domain.market_state import Command, MarketState, Move, Refusal, RefusalReason
from flashmm.inputs import InputError, check_text, parse_json
from hotpath import control_tracing
from hotpath.control_state import (
    Applied,
    ControlState,
    IdempotencyConflictError,
    fingerprint,
)
from hotpath.loop import QuoteLoop
from hotpath.status import signal_status

log = logging.getLogger(__name__)
_REMEMBER = 1000  # command ids kept for idempotency


class CommandError(ValueError):
    """A command that cannot be applied in the current state or with these arguments."""


# the control API's answer to each refusal of the market state machine (its wire text)
_REFUSED: dict[RefusalReason, str] = {
    RefusalReason.HALTED: "market is halted: resume it first",
    RefusalReason.NOT_HALTED: "market is {state}, not halted",
    RefusalReason.ALREADY_TRADING: "market is {state}",
}


KeySwitcher = Callable[[str], Awaitable[str]]


class ControlServer:
    def __init__(
        self,
        loop: QuoteLoop,
        state_file: Path,
        token: str,
        port: int = 0,
        key_switcher: KeySwitcher | None = None,
        bounds: RuntimeBounds | None = None,
    ) -> None:
        if not token or len(token) < 16:
            raise ValueError("control token must be at least 16 characters")
        self.loop = loop
        self.mm = loop.mm
        self.state_file = state_file
        self._token = token
        self.port = port
        self.key_switcher = key_switcher
        # what the engine was configured with: the risk limits are ceilings for run time
        self.bounds = bounds or RuntimeBounds.build(loop.mm.params, loop.mm.limits)
        self.configured = (loop.mm.params, loop.mm.limits)
        self.ceiling_changes: dict[str, dict[str, Any]] = {}
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
        """At start-up: put the engine in the last state it was told (before quoting).

        Persisted run-time changes are applied only inside today's bounds (a ceiling lowered
        in the settings since wins); a change of the configured ceilings since the last start
        is noted in ``ceiling_changes`` for the audit log."""
        s = self.state
        params, limits = self.configured
        s.quoting, quoting = self._within("quoting", s.quoting)
        s.risk, risk = self._within("risk", s.risk)
        self.mm.set_params(replace(params, **quoting), replace(limits, **risk))
        now = limits.as_dict()
        if s.ceilings and s.ceilings != now:
            self.ceiling_changes = {
                k: {"old": s.ceilings.get(k), "new": v}
                for k, v in now.items()
                if s.ceilings.get(k) != v
            }
            log.warning(
                "risk ceilings changed since the last start",
                extra={"changes": self.ceiling_changes},
            )
        s.ceilings = now
        self.mm.restore(MarketState(s.state), s.reason or "halted before restart")

    def _within(self, section: str, saved: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the saved values still allowed, typed for the engine); the rest is dropped."""
        kept: dict[str, Any] = {}
        typed: dict[str, Any] = {}
        for k, v in saved.items():
            try:
                typed.update(self.bounds.check(section, {k: v}))
                kept[k] = v
            except InputError as e:
                log.warning("saved run-time change dropped: %s", e)
        return kept, typed

    # --- HTTP ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(
            client_max_size=64 * 1024, middlewares=[*control_tracing.middlewares(), self._auth]
        )
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
            "open_orders": st["open_orders"],
            "position_lots": st["position_lots"],
            "model": self.state.model,
            "key_ref": self.state.key_ref,
            "symbol": st["symbol"],
            "signal": signal_status(self.mm.signal),
            "last_cycle_at": self.loop.last_cycle_at,
        }

    async def _command(self, request: web.Request) -> web.Response:
        try:
            body = parse_json(await request.read(), "body", max_depth=8)
            if not isinstance(body, dict):
                raise InputError("body", "must be an object")
            cid = check_text(body.get("command_id"), "command_id", 128)
            command = check_text(body.get("command"), "command", 64)
            args = body.get("args") or {}
            if not cid or not cid.isprintable():
                raise InputError("command_id", "must be 1..128 printable characters")
            if not isinstance(args, dict):
                raise InputError("args", "must be an object")
        except InputError as e:
            return web.json_response({"error": f"bad request: {e}"}, status=400)
        try:
            return web.json_response(await self.execute(cid, command, args))
        except IdempotencyConflictError as e:
            return web.json_response(
                {"command_id": cid[:64], "error": str(e), "conflict": True}, status=422
            )
        except CommandError as e:
            return web.json_response(
                {"command_id": cid, "error": str(e), "state": self.status()}, status=409
            )

    # --- commands -----------------------------------------------------------------------
    async def execute(self, command_id: str, command: str, args: dict[str, Any]) -> dict[str, Any]:
        """Apply once per command id; a repeat of the same command and arguments returns the
        first answer, the same id with anything else is an IdempotencyConflictError. A halt is
        applied every time (it is idempotent itself)."""
        async with self._lock:
            handler = _COMMANDS.get(command)
            if handler is None:
                raise CommandError(f"unknown command {command!r} (known: {sorted(_COMMANDS)})")
            try:
                fp = fingerprint(command, args)
            except ValueError as e:  # NaN or infinity in the arguments
                raise CommandError(f"invalid arguments: {e}") from None
            done = self.state.applied.get(command_id)
            if done is not None and done.conflicts(command, fp):
                raise IdempotencyConflictError(
                    f"command id already used for {done.command!r} with other arguments; "
                    "use a new id for a new command"
                )
            if done is not None and command != "halt":
                return {**done.answer, "replayed": True}
            detail = await control_tracing.run_command(self, command, command_id, handler, args)
            answer = {
                "command_id": command_id,
                "command": command,
                "applied": True,
                "detail": detail,
                "state": self.status(),
                "at": time.time(),
            }
            self.state.applied[command_id] = Applied(command, fp, answer)
            self.state.applied.move_to_end(command_id)
            while len(self.state.applied) > _REMEMBER:
                self.state.applied.popitem(last=False)
            self._save()
            return {**answer, "replayed": done is not None}

    def _transition(self, command: Command) -> Move:
        """The market state machine's answer for this command here (a refusal raises)."""
        out = market_state.apply(MarketState(self.state.state), command)
        if isinstance(out, Refusal):
            raise CommandError(_REFUSED[out.reason].format(state=out.state.value))
        return out

    async def _start(self, args: dict[str, Any]) -> str:
        move = self._transition(Command.START)
        self.state.state, self.state.reason = move.target.value, ""
        self.mm.start()
        return move.target.value

    async def _stop(self, args: dict[str, Any]) -> str:
        move = self._transition(Command.STOP)
        self.mm.stop()
        if move.target is MarketState.STOPPED:  # a halted market stays halted
            self.state.state, self.state.reason = move.target.value, str(args.get("reason", ""))
        self._save()  # durable before the slow part
        left = await self.loop.cancel_all_and_confirm(float(args.get("timeout_s", 5.0)))
        if left:
            raise CommandError(f"stopped, but {left} order(s) still open at the venue")
        return "stopped; no open orders"

    async def _halt(self, args: dict[str, Any]) -> str:
        move = self._transition(Command.HALT)  # always applied (a no-op when halted)
        reason = str(args.get("reason", "halt"))[:200]
        self.state.state, self.state.reason = move.target.value, reason
        self.mm.stop()
        self._save()  # durable first: a crash right after still comes back halted
        await self.loop.halt(reason)
        return move.target.value

    async def _resume(self, args: dict[str, Any]) -> str:
        move = self._transition(Command.RESUME)
        self.mm.resume()
        self.state.state, self.state.reason = move.target.value, ""
        return move.target.value

    async def _daily_reset(self, args: dict[str, Any]) -> dict[str, Any]:
        """New risk day: snapshot, reset the daily loss counters, re-arm the breakers that
        may re-arm (drawdown, daily loss); an operator's halt stays."""
        return self.mm.daily_reset(rearm=self.state.state != MarketState.HALTED.value)

    async def _set_params(self, args: dict[str, Any]) -> dict[str, Any]:
        """Move parameters inside their run-time bounds; answers old and new values."""
        q = args.get("quoting") or {}
        r = args.get("risk") or {}
        if not isinstance(q, dict) or not isinstance(r, dict) or not (q or r):
            raise CommandError("set_params needs {'quoting': {...}} and/or {'risk': {...}}")
        self._transition(Command.SET_PARAMS)
        try:
            params = replace(self.mm.params, **self.bounds.check("quoting", q))
            limits = replace(self.mm.limits, **self.bounds.check("risk", r))
        except InputError as e:
            raise CommandError(f"invalid parameters: {e}") from None
        except (TypeError, ValueError) as e:  # bounds hold, the combination does not
            raise CommandError(f"invalid parameters: {e}") from None
        old_q, old_r = self.mm.params.as_dict(), self.mm.limits.as_dict()
        new_q, new_r = params.as_dict(), limits.as_dict()
        changes = {
            f"{section}.{k}": {"old": old[k], "new": new[k]}
            for section, names, old, new in (
                ("quoting", q, old_q, new_q),
                ("risk", r, old_r, new_r),
            )
            for k in names
            if old[k] != new[k]
        }
        self.mm.set_params(params, limits)
        self.state.quoting.update(q)
        self.state.risk.update(r)
        log.warning("run-time parameters changed", extra={"changes": changes})
        return {"quoting": new_q, "risk": new_r, "changes": changes}

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
        self._transition(Command.ROLLBACK_MODEL)
        sig = self.mm.signal
        rollback = getattr(sig, "rollback", None)
        if rollback is None or not rollback():
            raise CommandError("no previous model to roll back to")
        version = sig.model.version if sig.model else ""  # type: ignore[attr-defined]
        self.state.model = {"version": version, "rolled_back": "true"}
        return {"model": version}

    async def _flatten(self, args: dict[str, Any]) -> dict[str, Any]:
        """Work the position off with reduce-only quotes (REDUCING until resumed)."""
        self.mm.reduce_only(str(args.get("reason", "flatten"))[:200])
        st = self.mm.status()
        return {"risk_state": st["state"], "position_lots": st["position_lots"]}

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
