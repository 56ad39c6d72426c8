"""One view of a market for ``GET /v1/markets`` and ``GET /v1/markets/{market}``: both are
built here, by the same function, so they cannot disagree.

A market has two states and they mean different things:

* the **hot path's** state — whether it trades — from its live record in Redis
  (``risk:{symbol}``, written by the hot path about once a second and at once on a risk
  change, ``hotpath/pnl_record.py``): ``trading``, ``reducing``, ``stopped`` or ``halted``;
* the **lifecycle's** state — the operator's intent — from the ``TradingLifecycle``
  workflow (``STOPPED``, ``TRADING``, ``HALTED``).

``state`` is the hot path's, upper-cased; without a live record it is ``HALTED`` when the
durable ``risk_state`` says halted (a restarted hot path comes back halted), else
``UNKNOWN``. Both vocabularies are the market state machine's
(``flashmm.domain.market_state``: ``Activity`` for the hot path, ``MarketState.lifecycle``
for the lifecycle). ``consistent`` compares the two (``REDUCING`` counts as ``TRADING``; ``None``
when either is unknown); when they differ, ``disagreement`` names both, says since when
(first seen by the API, kept in Redis ``views:disagree:{symbol}``) and what to do.

The lifecycle's ``hotpath`` field is the hot path's answer to the last command the
workflow sent it, not its present state (an emergency stop or the dead-man's switch halts
the hot path directly and only tells the workflow that it is HALTED): it is shown as
``lifecycle.last_command``, never as the hot path's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from api.context import AppContext
from api.errors import ApiError
from api.rows import jsonable, row
from flashmm.domain.market_state import Activity, MarketState, activity_state

LIVE_NUMBERS = (
    "position_notional",
    "position_limit",
    "position_limit_use",
    "daily_pnl",
    "daily_loss",
    "daily_loss_limit",
    "daily_loss_use",
    "drawdown",
    "max_drawdown",
    "breaker_for_s",
)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def live_risk(fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    """The hot path's Redis record as JSON (numbers as numbers, times as ISO 8601)."""
    if not fields:
        return None
    d = {k.decode(): v.decode() for k, v in fields.items()}
    out: dict[str, Any] = {
        "state": d.get("risk_state", ""),  # the risk engine's: active, reducing, halted
        "halted": d.get("risk_state") == "halted",
        "reason": d.get("reason", ""),
        "hotpath_state": d.get("state", ""),  # trading, reducing, stopped, halted
        "since": _iso(float(d.get("since") or 0)),
        "enabled": d.get("enabled") == "1",
        "position_lots": int(d.get("position_lots") or 0),
        "position": d.get("position", "0"),
        "open_orders": int(d.get("open_orders") or 0),
        "breaker": d.get("breaker", ""),
        "stale_data": d.get("stale_data") == "1",
        "updated_at": _iso(float(d.get("updated_at") or 0)),
        "age_s": round(max(0.0, time.time() - float(d.get("updated_at") or 0)), 3),
        "run": d.get("run", ""),
        "source": "hotpath",
    }
    for k in LIVE_NUMBERS:
        with contextlib.suppress(ValueError):
            out[k] = float(d.get(k, "nan"))
    return out


def top_of_book(book: dict[bytes, bytes]) -> dict[str, Any] | None:
    """Best bid and ask of the hot path's Redis book (None without one)."""
    if not book:
        return None
    bids = json.loads(book.get(b"bids_json", b"[]"))
    asks = json.loads(book.get(b"asks_json", b"[]"))
    return {
        "timestamp": book.get(b"timestamp", b"").decode(),
        "best_bid": bids[0] if bids else None,
        "best_ask": asks[0] if asks else None,
    }


def _states(hotpath: str, lifecycle: str) -> tuple[MarketState | None, MarketState | None]:
    """The market states both strings name (None: not one of the vocabulary)."""
    try:
        hot: MarketState | None = activity_state(Activity(hotpath))
    except ValueError:
        hot = None
    try:
        intent: MarketState | None = MarketState.from_lifecycle(lifecycle)
    except ValueError:
        intent = None
    return hot, intent


def agree(hotpath: str, lifecycle: str) -> bool:
    """The rule: the hot path does what the lifecycle asks (reduce-only is still trading)."""
    hot, intent = _states(hotpath, lifecycle)
    return hot is not None and hot is intent


def _why(hotpath: str, lifecycle: str, reason: str, market_id: str) -> str:
    hot, intent = _states(hotpath, lifecycle)
    trades = hot is MarketState.TRADING
    if intent is MarketState.HALTED and trades:
        return (
            "the hot path trades while the lifecycle is HALTED: it was resumed or restarted "
            f"without the lifecycle. Halt it (POST /v1/markets/{market_id}/halt) or resume it "
            f"through the lifecycle (POST /v1/markets/{market_id}/resume)"
        )
    if intent is MarketState.TRADING and hot is MarketState.HALTED:
        return (
            f"the hot path halted{f' ({reason})' if reason else ''} without the lifecycle "
            f"(its risk engine, or a halt outside the lifecycle): halt the market "
            f"(POST /v1/markets/{market_id}/halt), then resume it when it is safe"
        )
    if intent is MarketState.TRADING and hot is MarketState.STOPPED:
        return (
            "the hot path does not trade although the lifecycle says TRADING (it was "
            "restarted, or stopped outside the lifecycle): stop, then start the market"
        )
    if intent is MarketState.STOPPED and trades:
        return "the hot path trades while the lifecycle is STOPPED: stop the market"
    return f"the hot path is {hotpath}, the lifecycle {lifecycle}"


# (id of the context, market) -> (good until, answer): a read at 200/s asks Temporal about
# twice a second per market, and an unreachable Temporal is tried again after a few seconds
# rather than on every read (each try would hold the client lock)
_CACHE: dict[tuple[int, str], tuple[float, tuple[dict[str, Any] | None, str | None]]] = {}
CACHE_S = 0.5
UNREACHABLE_CACHE_S = 5.0


def forget(c: AppContext, symbol: str) -> None:
    """Drop the cached lifecycle answer: the API just changed it (its own change is read back
    at once, in both views alike, not up to ``CACHE_S`` later)."""
    _CACHE.pop((id(c), symbol), None)


async def _lifecycle(c: AppContext, symbol: str) -> tuple[dict[str, Any] | None, str | None]:
    """The lifecycle's status, cached for ``CACHE_S`` (``UNREACHABLE_CACHE_S`` while
    Temporal cannot be reached)."""
    key = (id(c), symbol)
    now = time.monotonic()
    hit = _CACHE.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    got = await _ask_lifecycle(c, symbol)
    why = got[1] or ""
    down = got[0] is None and ("nreachable" in why or "in time" in why)
    _CACHE[key] = (now + (UNREACHABLE_CACHE_S if down else CACHE_S), got)
    return got


async def _ask_lifecycle(c: AppContext, symbol: str) -> tuple[dict[str, Any] | None, str | None]:
    """The lifecycle's status (its last command answer renamed), or why there is none."""
    try:
        from workflows.types import LifecycleStatus, lifecycle_id

        client = await c.temporal()
        handle = client.get_workflow_handle(lifecycle_id(symbol))
        status = await c.temporal_call(handle.query("status", result_type=LifecycleStatus))
    except ApiError as e:
        return None, e.message
    except Exception as e:  # not started yet, or no worker to answer the query
        return None, type(e).__name__
    d = jsonable(asdict(status))
    last = d.pop("hotpath", None) or None
    if last is not None:
        last = {**last, "note": "the hot path's answer to the lifecycle's last command"}
    d["last_command"] = last
    return d, None


async def hot_records(c: AppContext, symbols: list[str]) -> dict[str, dict[str, Any]]:
    """Positions, top of book and the live risk record from Redis, per market (the market
    views and ``/v1/positions``); empty when Redis is down (stale is worse)."""
    out: dict[str, dict[str, Any]] = {s: {} for s in symbols}
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        pipe = c.redis.pipeline(transaction=False)
        for s in symbols:
            pipe.hgetall(f"positions:{s}")
            pipe.hgetall(f"orderbook:{s}")
            pipe.hgetall(f"risk:{s}")
            pipe.get(f"views:disagree:{s}")
        got = await asyncio.wait_for(pipe.execute(), 1.0)
        for i, s in enumerate(symbols):
            pos, book, risk, seen = got[4 * i : 4 * i + 4]
            out[s]["position"] = {k.decode(): v.decode() for k, v in pos.items()} or None
            out[s]["book"] = top_of_book(book)
            out[s]["live"] = live_risk(risk)
            out[s]["seen"] = seen
    return out


async def _since(c: AppContext, symbol: str, pair: tuple[str, str] | None, seen: Any) -> float:
    """When the API first saw this disagreement (now, if it is new); forgets it once the two
    agree. Redis down: now."""
    key = f"views:disagree:{symbol}"
    now = time.time()
    with contextlib.suppress(RedisError, OSError, TimeoutError, ValueError, TypeError):
        if pair is None:
            if seen is not None:
                await asyncio.wait_for(c.redis.delete(key), 1.0)
            return now
        if seen is not None:
            old = json.loads(seen)
            if (old.get("hotpath"), old.get("lifecycle")) == pair:
                return float(old["since"])
        doc = {"hotpath": pair[0], "lifecycle": pair[1], "since": now}
        await asyncio.wait_for(c.redis.set(key, json.dumps(doc), ex=7 * 86_400), 1.0)
    return now


async def markets(c: AppContext, symbols: list[str]) -> list[dict[str, Any]]:
    """Each market's one view (the same for the list and for one market)."""
    risk_rows, hot, *lifecycles = await asyncio.gather(
        c.pool.fetch(
            "SELECT market, state, halted, reason, updated_at FROM risk_state "
            "WHERE market = ANY($1::text[])",
            symbols,
        ),
        hot_records(c, symbols),
        *(_lifecycle(c, s) for s in symbols),
    )
    durable = {r["market"]: row(r) for r in risk_rows}
    out = []
    for s, (lifecycle, lifecycle_error) in zip(symbols, lifecycles, strict=True):
        m = c.settings.market(s)
        mid = s.replace("/", "-")
        h = hot[s]
        live = h.get("live")
        record = durable.get(s)
        if live is not None:
            hot_state = live["hotpath_state"]
            state, source = hot_state.upper(), "hotpath"
        elif record is not None and record["halted"]:
            halted = MarketState.HALTED
            state, source, hot_state = halted.lifecycle, "risk_state", halted.value
        else:
            state, source, hot_state = "UNKNOWN", "none", None
        intent = lifecycle["state"] if lifecycle else None
        consistent = None if hot_state is None or intent is None else agree(hot_state, intent)
        pair = (hot_state, intent) if consistent is False and hot_state and intent else None
        disagreement = None
        if pair is not None:
            since = await _since(c, s, pair, h.get("seen"))
            disagreement = {
                "hotpath": state,
                "lifecycle": intent,
                "since": _iso(since),
                "hotpath_since": live["since"] if live else None,
                "why": _why(hot_state or "", intent or "", (live or {}).get("reason", ""), mid),
            }
        elif consistent is True:
            await _since(c, s, None, h.get("seen"))
        view: dict[str, Any] = {
            "symbol": s,
            "id": mid,
            "tick_size": str(m.tick_size),
            "lot_size": str(m.lot_size),
            "state": state,
            "state_source": source,
            "intent": intent,
            "consistent": consistent,
            "disagreement": disagreement,
            # the hot path's live risk state; without one, the durable record (or null)
            "risk": live if live is not None else record,
            "risk_record": record,
            "position": h.get("position"),
            "book": h.get("book"),
            "lifecycle": lifecycle,
        }
        if lifecycle_error is not None:
            view["lifecycle_error"] = lifecycle_error
        out.append(view)
    return out
