"""Read-only trading state: markets, positions, open orders, fills, PnL, risk.

Lists are newest first with keyset pagination (``limit``, ``cursor``) and filters. Hot state
comes from Redis (what the hot path published last), records from PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from api import market_views
from api.auth.roles import Permission
from api.auth.store import Principal
from api.context import AppContext
from api.deps import ctx, require
from api.errors import COMMON, ApiError
from api.models import Page
from api.rows import decode_cursor, encode_cursor, jsonable, row
from flashmm.inputs import check_datetime, check_text

router = APIRouter(prefix="/v1", responses=COMMON, tags=["trading"])
READ = require(Permission.READ)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: COMMON[422] | {"description": "unknown market"}}
OPEN_STATES = ["pending_new", "open", "partially_filled", "pending_cancel"]
ORDER_STATES = "^(open|pending_new|partially_filled|pending_cancel|filled|cancelled|rejected)$"


@router.get("/markets", name="markets.list")
async def list_markets(
    request: Request,
    _: Principal = Depends(READ),  # noqa: B008
) -> list[dict[str, Any]]:
    """Every market's one view (``api/market_views.py``): ``state`` is what its hot path
    does, ``intent`` its lifecycle's state, ``consistent`` whether they agree."""
    c = ctx(request)
    return await market_views.markets(c, c.markets)


@router.get("/markets/{market}", name="markets.get", responses=NOT_FOUND)
async def get_market(
    market: str,
    request: Request,
    _: Principal = Depends(READ),  # noqa: B008
) -> dict[str, Any]:
    """The market's view, exactly as in the list: the hot path's state, the lifecycle's
    (its status from Temporal when reachable) and whether they agree."""
    c = ctx(request)
    symbol = c.market(market)
    return (await market_views.markets(c, [symbol]))[0]


@router.get("/positions", name="positions.list")
async def positions(
    request: Request,
    market: str | None = Query(None, max_length=32),
    _: Principal = Depends(READ),  # noqa: B008
) -> list[dict[str, Any]]:
    c = ctx(request)
    symbols = [c.market(market)] if market else c.markets
    snaps, hot = await asyncio.gather(
        c.pool.fetch(
            "SELECT DISTINCT ON (market) market, ts, position, avg_price, realized, unrealized, "
            "fees, net_pnl FROM position_snapshots WHERE market = ANY($1::text[]) "
            "ORDER BY market, ts DESC",
            symbols,
        ),
        market_views.hot_records(c, symbols),
    )
    snap = {r["market"]: row(r) for r in snaps}
    return [{"market": s, "snapshot": snap.get(s), "live": hot[s].get("position")} for s in symbols]


@router.get("/orders", response_model=Page, name="orders.list")
async def orders(
    request: Request,
    market: str | None = Query(None, max_length=32),
    state: str = Query("open", pattern=ORDER_STATES + "|^all$"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=512),
    _: Principal = Depends(READ),  # noqa: B008
) -> Page:
    """Open orders by default (``state=all`` for every state)."""
    c = ctx(request)
    states = OPEN_STATES if state == "open" else None if state == "all" else [state]
    where, args = _filters(c, market, cursor, "created_at", "client_id")
    if states is not None:
        args.append(states)
        where.append(f"state = ANY(${len(args)}::text[])")
    rows = await c.pool.fetch(
        "SELECT client_id, market, side, price, quantity, state, venue_id, reason, created_at, "
        f"updated_at FROM orders {_where(where)} ORDER BY created_at DESC, client_id DESC "
        f"LIMIT {limit + 1}",
        *args,
    )
    return _page(rows, limit, "created_at", "client_id")


@router.get("/fills", response_model=Page, name="fills.list")
async def fills(
    request: Request,
    market: str | None = Query(None, max_length=32),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=512),
    _: Principal = Depends(READ),  # noqa: B008
) -> Page:
    c = ctx(request)
    where, args = _filters(c, market, cursor, "ts", "fill_id")
    if since is not None:
        args.append(check_datetime(since, ("query", "since")))
        where.append(f"ts >= ${len(args)}")
    if until is not None:
        args.append(check_datetime(until, ("query", "until")))
        where.append(f"ts < ${len(args)}")
    rows = await c.pool.fetch(
        "SELECT fill_id, client_id, market, side, price, quantity, fee, liquidity, ts "
        f"FROM fills {_where(where)} ORDER BY ts DESC, fill_id DESC LIMIT {limit + 1}",
        *args,
    )
    return _page(rows, limit, "ts", "fill_id")


@router.get("/pnl", name="pnl.get")
async def pnl(
    request: Request,
    market: str | None = Query(None, max_length=32),
    start: date | None = Query(None, alias="from"),  # noqa: B008
    end: date | None = Query(None, alias="to"),  # noqa: B008
    _: Principal = Depends(READ),  # noqa: B008
) -> dict[str, Any]:
    """Daily PnL rows in [from, to] (inclusive; UTC days) and their totals per market.

    The hot paths write today's row as they trade (``hotpath/pnl_record.py``): ``net_pnl``,
    ``fills`` and ``volume`` (quote currency), and ``realized``, ``unrealized``, ``fees``,
    ``runs`` (the hot-path runs that traded that day) and ``updated_at`` from the row's
    details; rows written by other tools may lack those."""
    c = ctx(request)
    if start and end and start > end:
        raise ApiError(422, "'from' must not be after 'to'")
    symbols = [c.market(market)] if market else c.markets
    rows = await c.pool.fetch(
        "SELECT market, day, net_pnl, fills, volume, details FROM daily_pnl "
        "WHERE market = ANY($1::text[]) AND ($2::date IS NULL OR day >= $2) "
        "AND ($3::date IS NULL OR day <= $3) ORDER BY day DESC, market LIMIT 1000",
        symbols,
        start,
        end,
    )
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = totals.setdefault(r["market"], {"net_pnl": 0, "fills": 0, "volume": 0})
        t["net_pnl"] += r["net_pnl"]
        t["fills"] += r["fills"]
        t["volume"] += r["volume"]
    return {"days": [pnl_day(r) for r in rows], "totals": jsonable(totals)}


def pnl_day(r: Any) -> dict[str, Any]:
    """A ``daily_pnl`` row with the hot paths' figures summed over their runs."""
    out = row(r)
    details = out.pop("details", None)
    runs = details.get("runs") if isinstance(details, dict) else None
    if isinstance(runs, dict) and runs:
        figs = [f for f in runs.values() if isinstance(f, dict)]
        for k in ("realized", "unrealized", "fees"):
            out[k] = repr(sum(float(f.get(k) or 0.0) for f in figs))
        out["runs"] = len(figs)
        last = max((float(f.get("ts") or 0.0) for f in figs), default=0.0)
        out["updated_at"] = datetime.fromtimestamp(last, UTC).isoformat() if last else None
    return out


@router.get("/risk", name="risk.get")
async def risk(
    request: Request,
    _: Principal = Depends(READ),  # noqa: B008
) -> dict[str, Any]:
    """Each market's risk state and the limits it trades under."""
    c = ctx(request)
    rows = await c.pool.fetch(
        "SELECT market, state, halted, reason, updated_at FROM risk_state ORDER BY market"
    )
    limits = {k: jsonable(v) for k, v in asdict(c.settings.risk_limits()).items()}
    bounds = c.settings.runtime_bounds().describe()  # what run-time changes may move
    return {"markets": [row(r) for r in rows], "limits": limits, "bounds": bounds}


def _filters(
    c: AppContext, market: str | None, cursor: str | None, ts_col: str, key_col: str
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if market:
        args.append(c.market(market))
        where.append(f"market = ${len(args)}")
    if cursor:
        args += cursor_position(cursor)
        where.append(f"({ts_col}, {key_col}) < (${len(args) - 1}, ${len(args)})")
    return where, args


def cursor_position(cursor: str) -> list[Any]:
    """A cursor's (time, key) under the input policy: a forged one holding NUL or a time
    PostgreSQL cannot take is a 422, not a 500."""
    ts, key = decode_cursor(cursor)
    return [check_datetime(ts, ("query", "cursor")), check_text(key, ("query", "cursor"), 512)]


def _where(where: list[str]) -> str:
    return ("WHERE " + " AND ".join(where)) if where else ""


def _page(rows: list[Any], limit: int, ts_col: str, key_col: str) -> Page:
    items = [row(r) for r in rows[:limit]]
    nxt = None
    if len(rows) > limit:
        last = rows[limit - 1]
        nxt = encode_cursor(last[ts_col], str(last[key_col]))
    return Page(items=items, next_cursor=nxt)
