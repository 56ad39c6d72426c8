"""Operator commands: local services, database migrations, audit-chain verification."""

from __future__ import annotations

import asyncio
import json
import sys

from flashmm.config import Settings


def services(action: str) -> int:
    from flashmm import devservices

    if action == "up":
        devservices.ensure(announce=False)
    elif action == "down":
        devservices.stop()
    print(json.dumps(devservices.status()))
    for note in devservices.notes():  # a foreign server on a configured port; where ours runs
        print(note, file=sys.stderr)
    return 0


def db_migrate(settings: Settings) -> int:
    """Migrate as the owner (``stores.postgres_migrate_dsn``, else ``postgres_dsn``) and set
    up the owner and application roles; passwords come from the environment only."""
    from flashmm.logs import register_secret
    from flashmm.stores.pg.migrate import MigrationError, migrate
    from flashmm.stores.pg.roles import DbRoles

    roles = DbRoles.from_settings(settings.stores)
    for secret in (roles.owner_password, roles.app_password):
        if secret:
            register_secret(secret)
    try:
        applied = asyncio.run(migrate(settings.stores.migrate_dsn(), roles=roles))
    except MigrationError as e:
        print(f"flashmm db migrate: {e}", file=sys.stderr)
        return 1
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    print(f"roles: owner {roles.owner}, application {roles.app}", file=sys.stderr)
    return 0


def audit_verify(settings: Settings, anchors: bool = True, require_anchor: bool = False) -> int:
    """The hash chain, then the anchors kept in Redis: exit 0 intact, 1 broken, 2 when the
    anchors cannot be read (or are required and missing)."""
    import asyncpg
    import redis.asyncio as aioredis

    from flashmm.stores.pg import anchor
    from flashmm.stores.pg.audit import verify

    async def go() -> int:
        conn = await asyncpg.connect(settings.stores.postgres_dsn)
        try:
            v = await verify(conn)
            if not v.ok:
                print(f"audit log BROKEN at entry id {v.first_bad_id}: {v.reason}", file=sys.stderr)
                return 1
            print(f"audit log intact: {v.entries} entries")
            if not anchors:
                return 0
            database = await conn.fetchval("SELECT current_database()")
            r = aioredis.from_url(settings.stores.redis_url, socket_timeout=5.0)
            try:
                kept = await anchor.load(r, database)
            except (OSError, aioredis.RedisError) as e:
                print(f"cannot read the audit anchors from Redis: {e}", file=sys.stderr)
                return 2
            finally:
                await r.aclose()
            a = await anchor.check(conn, kept)
        finally:
            await conn.close()
        if not a.ok:
            print(f"audit log BROKEN against its anchors: {a.reason}", file=sys.stderr)
            return 1
        if not kept:
            print(
                f"no audit anchor in Redis for database {database}: only the chain was checked",
                file=sys.stderr,
            )
            return 2 if require_anchor and v.entries else 0
        print(f"anchors: {a.anchors} match (latest id {max(x.id for x in kept)})")
        return 0

    return asyncio.run(go())
