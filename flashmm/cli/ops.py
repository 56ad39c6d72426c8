"""Operator commands: local services, database migrations, audit-chain verification."""

from __future__ import annotations

import asyncio
import json
import sys

from flashmm.config import Settings


def services(action: str) -> int:
    from flashmm import devservices

    if action == "up":
        devservices.ensure()
    elif action == "down":
        devservices.stop()
    print(json.dumps(devservices.status()))
    return 0


def db_migrate(settings: Settings) -> int:
    from flashmm.stores.pg.migrate import migrate

    applied = asyncio.run(migrate(settings.stores.postgres_dsn))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def audit_verify(settings: Settings) -> int:
    import asyncpg

    from flashmm.stores.pg.audit import verify

    async def go() -> int:
        conn = await asyncpg.connect(settings.stores.postgres_dsn)
        try:
            v = await verify(conn)
        finally:
            await conn.close()
        if v.ok:
            print(f"audit log intact: {v.entries} entries")
            return 0
        print(f"audit log BROKEN at entry id {v.first_bad_id}: {v.reason}", file=sys.stderr)
        return 1

    return asyncio.run(go())
