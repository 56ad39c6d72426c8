"""PostgreSQL: ``pg_dump -Fc`` with row counts taken in the very snapshot it dumps, and
``pg_restore --clean --if-exists`` in one transaction.

The password never goes on a command line (``ps`` shows those): it is taken out of the DSN
and handed to the tools in ``PGPASSWORD``.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from flashmm.backup.store import BackupError

_TABLES = """
SELECT n.nspname AS schema, c.relname AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2
"""


class ToolFailedError(BackupError):
    """pg_dump or pg_restore exited with an error (retried: it may be a lost connection)."""

    kind = "ToolFailed"


def pg_bin(name: str, bin_dir: str | None = None) -> str:
    """The newest installed PostgreSQL client tool (pg_dump must not be older than the
    server), or the one in ``bin_dir``."""
    if bin_dir:
        return str(Path(bin_dir) / name)
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools")
    return path


def libpq_args(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the environment that carries the password."""
    parts = urlsplit(dsn)
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), env


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in await conn.fetch(_TABLES):
        table = f"{quote_ident(r['schema'])}.{quote_ident(r['name'])}"
        out[f"{r['schema']}.{r['name']}"] = int(
            await conn.fetchval(f"SELECT count(*) FROM {table}")
        )
    return out


async def row_counts(dsn: str) -> dict[str, int]:
    """Rows per table (``schema.table``) in every user schema."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await _counts(conn)
    finally:
        await conn.close()


async def _run(cmd: list[str], env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate()
    except BaseException:  # cancelled (heartbeat timeout, worker shutdown): stop the tool
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        tool = Path(cmd[0]).name
        raise ToolFailedError(
            f"{tool} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
        )
    return out.decode(errors="replace")


async def dump(dsn: str, out: Path, bin_dir: str | None = None) -> dict[str, object]:
    """``pg_dump -Fc`` of the database into ``out``; returns the row count of each table,
    the server version and the audit chain's head, all read in the snapshot pg_dump uses
    (exported from a repeatable-read transaction held open while it runs), so they match
    the dump exactly."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            counts = await _counts(conn)
            version = await conn.fetchval("SHOW server_version")
            head = await _audit_head(conn)
            url, env = libpq_args(dsn)
            await _run(
                [
                    pg_bin("pg_dump", bin_dir),
                    "--format=custom",
                    "--no-password",
                    f"--snapshot={snapshot}",
                    f"--file={out}",
                    f"--dbname={url}",
                ],
                env,
            )
    finally:
        await conn.close()
    return {"tables": counts, "server_version": str(version), "audit_head": head}


async def _audit_head(conn: asyncpg.Connection) -> dict[str, object] | None:
    """The audit chain's last entry in the dumped snapshot: an anchor kept with the backup
    (docs/deployment.md#the-audit-anchor)."""
    if await conn.fetchval("SELECT to_regclass('public.audit_log')") is None:
        return None
    row = await conn.fetchrow("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    return None if row is None else {"id": int(row["id"]), "hash": str(row["hash"])}


async def restore(dsn: str, dump_file: Path, bin_dir: str | None = None) -> None:
    """Replace the dumped objects in the target database, all or nothing."""
    url, env = libpq_args(dsn)
    await _run(
        [
            pg_bin("pg_restore", bin_dir),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={url}",
            str(dump_file),
        ],
        env,
    )
