"""PostgreSQL roles: the migration owner and the application role.

The owner owns every table, sequence and function and runs the DDL. The services connect as
the application role: it reads and writes the trading tables but may only INSERT and SELECT
the audit log, and since it owns nothing it cannot ALTER a table or switch a trigger off.
``migrate(..., roles=...)`` calls ``prepare`` (create the roles, hand every object to the
owner, SET ROLE to it) before the migrations and ``grant`` after them, on every run, so a
new table gets its grants and a changed password is applied.

Passwords are sent as SCRAM-SHA-256 verifiers computed here, never in clear text, so neither
a server log nor ``pg_stat_activity`` can show them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

if TYPE_CHECKING:
    from flashmm.config.stores import StoreSettings

T = TypeVar("T")
_ITERATIONS = 4096
# the audit log is append-only for the services; the migration bookkeeping is read-only
_APPEND_ONLY = ("audit_log",)
_READ_ONLY = ("schema_migrations",)


class RoleError(RuntimeError):
    """The roles cannot be set up as required (a missing right, an unsafe role)."""


@dataclass(frozen=True, slots=True)
class DbRoles:
    owner: str = "flashmm_owner"
    app: str = "flashmm_app"
    owner_password: str = field(default="", repr=False)
    app_password: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, st: StoreSettings) -> DbRoles:
        return cls(st.pg_owner_role, st.pg_app_role, st.pg_owner_password(), st.pg_app_password())


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored).decode()}:{b64(server).decode()}"
    )


def verifier_matches(stored: str | None, password: str) -> bool:
    """Whether a stored SCRAM verifier is the one of ``password``."""
    try:
        head, keys = (stored or "").split("$", 1)[1].split("$")
        iterations, salt = head.split(":")
        expect = scram_verifier(password, base64.b64decode(salt), int(iterations))
    except (ValueError, IndexError):
        return False
    return hmac.compare_digest(expect.rsplit("$", 1)[1], keys)


def with_user(dsn: str, user: str, password: str = "") -> str:
    """``dsn`` with its user (and password) replaced: the application role's DSN."""
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


async def _retry(op: Callable[[], Awaitable[T]]) -> T:
    """Roles are cluster-wide: migrations of other databases may change the same role at
    the same moment (a duplicate CREATE ROLE, "tuple concurrently updated")."""
    for attempt in range(20):
        try:
            return await op()
        except (asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError):
            if attempt == 19:
                raise
        except asyncpg.InternalServerError as e:
            if "concurrently" not in str(e) or attempt == 19:
                raise
        await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def _ensure_role(conn: asyncpg.Connection, name: str, login: bool, password: str) -> None:
    superuser = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = session_user")
    pw = f" PASSWORD {literal(scram_verifier(password))}" if password else ""
    attrs = "LOGIN" if login else "NOLOGIN"
    row = await conn.fetchrow(
        "SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", name
    )
    if row is None:
        await _retry(
            lambda: conn.execute(
                f"CREATE ROLE {ident(name)} {attrs} NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"NOBYPASSRLS NOINHERIT{pw}"
            )
        )
        return
    if row["rolsuper"] or row["rolbypassrls"]:
        raise RoleError(f"role {name} is a superuser or bypasses row security: not safe")
    if password:
        if superuser:
            current = await conn.fetchval(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1", name
            )
            if row["rolcanlogin"] == login and verifier_matches(current, password):
                return
        await _retry(lambda: conn.execute(f"ALTER ROLE {ident(name)} {attrs}{pw}"))
    elif row["rolcanlogin"] != login and login:
        await _retry(lambda: conn.execute(f"ALTER ROLE {ident(name)} LOGIN"))


async def prepare(conn: asyncpg.Connection, roles: DbRoles) -> None:
    """Create the roles if missing, set their passwords, give every object of the public
    schema to the owner, and SET ROLE to it so what the migrations create is the owner's."""
    me = await conn.fetchrow("SELECT rolname, rolsuper FROM pg_roles WHERE rolname = session_user")
    if me["rolname"] == roles.app:
        raise RoleError(
            f"migrations run as {roles.app}, the application role: use the owner or an "
            "admin (stores.postgres_migrate_dsn)"
        )
    if me["rolname"] != roles.owner:
        await _ensure_role(conn, roles.owner, bool(roles.owner_password), roles.owner_password)
    await _ensure_role(conn, roles.app, True, roles.app_password)
    if await conn.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", roles.app, roles.owner):
        revoke = f"REVOKE {ident(roles.owner)} FROM {ident(roles.app)}"
        await _retry(lambda: conn.execute(revoke))
    member = await conn.fetchval("SELECT pg_has_role(session_user, $1, 'MEMBER')", roles.owner)
    if me["rolname"] != roles.owner and not me["rolsuper"] and not member:
        await _retry(lambda: conn.execute(f"GRANT {ident(roles.owner)} TO session_user"))
    owner = ident(roles.owner)
    if me["rolname"] != roles.owner:
        await conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}")
    await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    await _take_ownership(conn, roles.owner)
    await conn.execute(f"SET ROLE {owner}")


async def _take_ownership(conn: asyncpg.Connection, owner: str) -> None:
    """Tables first (their serial sequences follow them), then what is left."""
    query = """SELECT c.relname, c.relkind::text AS relkind FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind::text = ANY($1::text[])
                  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $2)"""
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    for group in (["r", "p"], ["v", "m", "S"]):
        for r in await conn.fetch(query, group, owner):
            what = kinds[r["relkind"]]
            await conn.execute(f"ALTER {what} public.{ident(r['relname'])} OWNER TO {ident(owner)}")
    for r in await conn.fetch(
        """SELECT p.oid::regprocedure::text AS sig FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public'
              AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)""",
        owner,
    ):
        await conn.execute(f"ALTER ROUTINE {r['sig']} OWNER TO {ident(owner)}")


async def grant(conn: asyncpg.Connection, roles: DbRoles) -> None:
    """The application role's rights, from scratch: read and write the trading tables, only
    INSERT and SELECT the audit log, only SELECT the migration bookkeeping."""
    app = ident(roles.app)
    await conn.execute(f"SET ROLE {ident(roles.owner)}")
    await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {app}, PUBLIC")
    await conn.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}"
    )
    for table in _APPEND_ONLY + _READ_ONLY:
        await conn.execute(f"REVOKE ALL ON public.{ident(table)} FROM {app}")
        rights = "SELECT, INSERT" if table in _APPEND_ONLY else "SELECT"
        await conn.execute(f"GRANT {rights} ON public.{ident(table)} TO {app}")
    await conn.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {app}, PUBLIC")
    await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}")
    await conn.execute("RESET ROLE")
    await conn.execute(f"GRANT USAGE ON SCHEMA public TO {app}")
    db = await conn.fetchval("SELECT current_database()")
    await conn.execute(f"GRANT CONNECT ON DATABASE {ident(db)} TO {app}")
