"""Forward-only, versioned migrations: ``NNNN_name.sql`` files applied in order, each in its
own transaction, recorded with a checksum. An applied migration whose file changed is an
error (write a new migration instead); an advisory lock keeps concurrent starters safe.

With ``roles`` (``flashmm db migrate``), the run also sets up the two database roles
(``roles.py``): the migrations run as the owner, and the application role gets its rights
afterwards. Without, a database that is up to date is left alone after a read of
``schema_migrations`` (what the services do at start-up as the application role, which can
read it but could not create anything).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from flashmm.stores.pg.roles import DbRoles, RoleError, grant, prepare, with_user

if TYPE_CHECKING:
    from flashmm.config.stores import StoreSettings

MIGRATIONS = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x464D4D  # "FMM"


class MigrationError(RuntimeError):
    """The database and the migration files disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(directory: Path = MIGRATIONS) -> list[Migration]:
    out = []
    for p in sorted(directory.glob("*.sql")):
        m = _NAME.match(p.name)
        if not m:
            raise MigrationError(f"migration file name must be NNNN_name.sql: {p.name}")
        out.append(Migration(int(m.group(1)), m.group(2), p.read_text()))
    versions = [m.version for m in out]
    if versions != list(range(1, len(out) + 1)):
        raise MigrationError(f"migration versions must be 1..n without gaps, got {versions}")
    return out


async def _up_to_date(conn: asyncpg.Connection, migrations: list[Migration]) -> bool:
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return False
    applied = {
        r["version"]: r["checksum"]
        for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
    }
    return applied == {m.version: m.checksum for m in migrations}


async def migrate(
    dsn: str, directory: Path = MIGRATIONS, roles: DbRoles | None = None
) -> list[str]:
    """Apply pending migrations; returns the names applied now. ``roles``: also create the
    owner and application roles, run the migrations as the owner and grant the
    application role its rights (``dsn`` is then the owner's or an admin's)."""
    migrations = load(directory)
    conn = await asyncpg.connect(dsn)
    try:
        if roles is None and await _up_to_date(conn, migrations):
            return []
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            if roles is not None:
                await prepare(conn, roles)
            done = await _apply(conn, migrations)
            if roles is not None:
                await grant(conn, roles)
            return done
        except asyncpg.InsufficientPrivilegeError as e:
            user = await conn.fetchval("SELECT session_user")
            raise MigrationError(
                f"{user} may not migrate this database ({e}); run `flashmm db migrate` with "
                "the owner's or an admin's DSN (stores.postgres_migrate_dsn)"
            ) from None
        except RoleError as e:
            raise MigrationError(str(e)) from None
        finally:
            await conn.execute("RESET ROLE")
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def _apply(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    applied = {r["version"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
    unknown = sorted(set(applied) - {m.version for m in migrations})
    if unknown:
        raise MigrationError(f"database has migrations this code does not know: {unknown}")
    done: list[str] = []
    for m in migrations:
        row = applied.get(m.version)
        if row is not None:
            if row["checksum"] != m.checksum:
                raise MigrationError(
                    f"migration {m.version:04d}_{m.name} changed after it was applied; "
                    "migrations are forward-only: add a new one"
                )
            continue
        async with conn.transaction():
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1,$2,$3)",
                m.version,
                m.name,
                m.checksum,
            )
        done.append(f"{m.version:04d}_{m.name}")
    return done


async def migrate_for_services(st: StoreSettings) -> str:
    """``flashmm db migrate`` for a process that starts the services itself (the demo):
    migrate as the owner with both roles, and return the application role's DSN. Its
    password is the configured one, else a fresh random one; either is registered so that
    no log line shows it."""
    from flashmm.logs import register_secret

    roles = DbRoles.from_settings(st)
    if not roles.app_password:
        roles = replace(roles, app_password=secrets.token_urlsafe(24))
    register_secret(roles.app_password)
    await migrate(st.migrate_dsn(), roles=roles)
    return with_user(st.postgres_dsn, roles.app, roles.app_password)
