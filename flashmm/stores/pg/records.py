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
}


def args(rec: Record) -> tuple[str, tuple[Any, ...]]:
    """(SQL, positional arguments) for a record; raises KeyError/ValueError if malformed."""
    sql, names = SQL[rec["kind"]]
    return sql, tuple(rec[n] for n in names)
