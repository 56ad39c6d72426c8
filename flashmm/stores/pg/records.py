"""The records the hot path persists, as plain JSON-able dicts (so they can be journaled),
and the idempotent SQL that stores each kind: a record written twice is stored once."""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]

# kind -> (SQL, field order). Timestamps are epoch seconds; numbers travel as strings.
SQL: dict[str, tuple[str, tuple[str, ...]]] = {
    "fill": (
        """INSERT INTO fills (fill_id, client_id, market, side, price, quantity, fee, liquidity,
                              ts)
           VALUES ($1, $2, $3, $4, $5::numeric, $6::numeric, $7::numeric, $8, to_timestamp($9))
           ON CONFLICT (fill_id) DO NOTHING""",
        ("fill_id", "client_id", "market", "side", "price", "quantity", "fee", "liquidity", "ts"),
    ),
    "order": (
        """INSERT INTO orders (client_id, market, side, price, quantity, state, venue_id, reason,
                               created_at, updated_at)
           VALUES ($1, $2, $3, $4::numeric, $5::numeric, $6, $7, $8, to_timestamp($9),
                   to_timestamp($9))
           ON CONFLICT (client_id) DO UPDATE SET
               state = EXCLUDED.state,
               venue_id = COALESCE(EXCLUDED.venue_id, orders.venue_id),
               reason = COALESCE(EXCLUDED.reason, orders.reason),
               updated_at = EXCLUDED.updated_at
           WHERE orders.updated_at <= EXCLUDED.updated_at""",
        ("client_id", "market", "side", "price", "quantity", "state", "venue_id", "reason", "ts"),
    ),
    "position": (
        """INSERT INTO position_snapshots (market, ts, position, avg_price, realized, unrealized,
                                          fees, net_pnl)
           VALUES ($1, to_timestamp($2), $3::numeric, $4::numeric, $5::numeric, $6::numeric,
                   $7::numeric, $8::numeric)
           ON CONFLICT (market, ts) DO NOTHING""",
        ("market", "ts", "position", "avg_price", "realized", "unrealized", "fees", "net_pnl"),
    ),
    "risk": (
        """INSERT INTO risk_state (market, state, halted, reason, updated_at)
           VALUES ($1, $2, $3, $4, to_timestamp($5))
           ON CONFLICT (market) DO UPDATE SET state = EXCLUDED.state,
               halted = EXCLUDED.halted, reason = EXCLUDED.reason,
               updated_at = EXCLUDED.updated_at
           WHERE risk_state.updated_at <= EXCLUDED.updated_at""",
        ("market", "state", "halted", "reason", "ts"),
    ),
    # one hot-path run's totals for a UTC day: the row's columns are the sum over runs, each
    # run's own figures kept under details.runs.<run> (a restarted hot path starts from zero
    # and adds to the day; the same record written twice, or an older one after a newer one,
    # changes nothing)
    "daily_pnl": (
        """INSERT INTO daily_pnl (market, day, net_pnl, fills, volume, details)
           VALUES ($1, to_date($2, 'YYYY-MM-DD'), $3::numeric, $4::integer, $5::numeric,
                   jsonb_build_object('runs', jsonb_build_object($6::text, $7::jsonb)))
           ON CONFLICT (market, day) DO UPDATE SET
               net_pnl = daily_pnl.net_pnl + EXCLUDED.net_pnl - COALESCE(
                   (daily_pnl.details #>> ARRAY['runs', $6::text, 'net_pnl'])::numeric, 0),
               fills = daily_pnl.fills + EXCLUDED.fills - COALESCE(
                   (daily_pnl.details #>> ARRAY['runs', $6::text, 'fills'])::integer, 0),
               volume = daily_pnl.volume + EXCLUDED.volume - COALESCE(
                   (daily_pnl.details #>> ARRAY['runs', $6::text, 'volume'])::numeric, 0),
               details = jsonb_set(
                   daily_pnl.details || jsonb_build_object(
                       'runs', COALESCE(daily_pnl.details -> 'runs', '{}'::jsonb)),
                   ARRAY['runs', $6::text], $7::jsonb)
           WHERE COALESCE((daily_pnl.details #>> ARRAY['runs', $6::text, 'ts'])::float8, 0)
                 <= ($7::jsonb ->> 'ts')::float8""",
        ("market", "day", "net_pnl", "fills", "volume", "run", "figures"),
    ),
}


def args(rec: Record) -> tuple[str, tuple[Any, ...]]:
    """(SQL, positional arguments) for a record; raises KeyError/ValueError if malformed."""
    sql, names = SQL[rec["kind"]]
    return sql, tuple(rec[n] for n in names)
