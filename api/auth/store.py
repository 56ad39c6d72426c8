"""Users, API keys and refresh tokens in PostgreSQL, with a short cache in front so an
authenticated request costs no database round trip.

An entry is looked up at most every ``cache_s``. An entry older than that but younger than
twice that is still served while one lookup refreshes it in the background, and concurrent
misses share one lookup: a cached token never waits for the database, and 200 requests with
one token cost one query, not 200. Disabling a user or revoking a key through this process
takes effect at once; through another replica within ``2 * cache_s``. Password hashes are
checked on a worker thread (scrypt releases the GIL), not on the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from api.auth import apikeys
from api.auth.passwords import DUMMY_HASH, hash_password, verify_password
from api.auth.roles import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: ``user:alice`` or ``apikey:<id>``, with the role it acts with."""

    kind: str  # user | apikey
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


class IdentityStore:
    def __init__(self, pool: asyncpg.Pool, cache_s: float = 5.0) -> None:
        self.pool = pool
        self.cache_s = cache_s
        self._users: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._keys: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lookups: dict[tuple[str, str], asyncio.Future[dict[str, Any] | None]] = {}
        self._epoch = 0  # bumped by every invalidation: a lookup begun before is not cached

    # --- users --------------------------------------------------------------------------
    async def create_user(self, username: str, password: str, role: Role) -> None:
        h = hash_password(password)
        try:
            await self.pool.execute(
                "INSERT INTO api_users (username, password_hash, role) VALUES ($1, $2, $3)",
                username,
                h,
                role.value,
            )
        except asyncpg.UniqueViolationError:
            raise ValueError(f"user {username!r} exists") from None

    async def set_password(self, username: str, password: str) -> bool:
        h = hash_password(password)
        done = await self.pool.execute(
            "UPDATE api_users SET password_hash = $2 WHERE username = $1", username, h
        )
        return bool(done.endswith(" 1"))

    async def list_users(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT username, role, disabled, created_at FROM api_users ORDER BY username"
        )
        return [dict(r) for r in rows]

    async def disable_user(self, username: str) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "UPDATE api_users SET disabled = true WHERE username = $1", username
            )
            await conn.execute(
                "UPDATE api_refresh_tokens SET revoked_at = now() "
                "WHERE username = $1 AND revoked_at IS NULL",
                username,
            )
        self._invalidate(self._users, username)
        return bool(done.endswith(" 1"))

    async def check_password(self, username: str, password: str) -> Principal | None:
        row = await self.pool.fetchrow(
            "SELECT password_hash, role, disabled FROM api_users WHERE username = $1", username
        )
        stored = row["password_hash"] if row else DUMMY_HASH
        ok = await asyncio.to_thread(verify_password, password, stored)
        if not ok or row is None or row["disabled"]:
            return None
        return Principal("user", username, Role(row["role"]))

    async def active_user(self, username: str) -> Principal | None:
        """The user as stored now (role may have changed since the token was issued)."""
        row = await self._cached(
            self._users,
            username,
            "SELECT role, disabled FROM api_users WHERE username = $1",
        )
        if row is None or row["disabled"]:
            return None
        return Principal("user", username, Role(row["role"]))

    # --- API keys -----------------------------------------------------------------------
    async def create_key(self, name: str, role: Role, created_by: str) -> tuple[str, str]:
        key_id, key, h = apikeys.new_key()
        await self.pool.execute(
            "INSERT INTO api_keys (key_id, name, secret_hash, role, created_by) "
            "VALUES ($1, $2, $3, $4, $5)",
            key_id,
            name,
            h,
            role.value,
            created_by,
        )
        return key_id, key

    async def list_keys(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT key_id, name, role, created_by, created_at, revoked_at, last_used_at "
            "FROM api_keys ORDER BY created_at, key_id"
        )
        return [dict(r) for r in rows]

    async def revoke_key(self, key_id: str) -> bool:
        done = await self.pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        self._invalidate(self._keys, key_id)
        return bool(done.endswith(" 1"))

    def key_cached(self, key: str) -> bool:
        """Whether checking ``key`` needs no database round trip (malformed or cached)."""
        parsed = apikeys.parse(key)
        if parsed is None:
            return True
        hit = self._keys.get(parsed[0])
        return hit is not None and time.monotonic() - hit[0] < 2 * self.cache_s

    async def check_key(self, key: str) -> Principal | None:
        parsed = apikeys.parse(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = await self._cached(
            self._keys,
            key_id,
            "SELECT secret_hash, role, revoked_at FROM api_keys WHERE key_id = $1",
        )
        if row is None or row["revoked_at"] is not None:
            return None
        if not apikeys.matches(secret, row["secret_hash"]):
            return None
        return Principal("apikey", key_id, Role(row["role"]))

    # --- refresh tokens -----------------------------------------------------------------
    async def remember_refresh(self, jti: str, username: str, expires_at: int) -> None:
        await self.pool.execute(
            "INSERT INTO api_refresh_tokens (jti, username, expires_at) VALUES ($1, $2, $3)",
            jti,
            username,
            datetime.fromtimestamp(expires_at, UTC),
        )

    async def spend_refresh(self, jti: str, username: str, replaced_by: str) -> bool:
        """Mark the token used. False when it was already spent or revoked: then every
        refresh token of the user is revoked (reuse means it leaked)."""
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "UPDATE api_refresh_tokens SET revoked_at = now(), replaced_by = $3 "
                "WHERE jti = $1 AND username = $2 AND revoked_at IS NULL "
                "AND expires_at > now()",
                jti,
                username,
                replaced_by,
            )
            if done.endswith(" 1"):
                return True
            await conn.execute(
                "UPDATE api_refresh_tokens SET revoked_at = now() "
                "WHERE username = $1 AND revoked_at IS NULL",
                username,
            )
            return False

    async def revoke_refresh(self, jti: str) -> None:
        await self.pool.execute(
            "UPDATE api_refresh_tokens SET revoked_at = now() WHERE jti = $1 "
            "AND revoked_at IS NULL",
            jti,
        )

    # --- cache --------------------------------------------------------------------------
    async def _cached(
        self, cache: dict[str, tuple[float, dict[str, Any] | None]], key: str, sql: str
    ) -> dict[str, Any] | None:
        hit = cache.get(key)
        if hit is not None:
            age = time.monotonic() - hit[0]
            if age < self.cache_s:
                return hit[1]
            if age < 2 * self.cache_s:  # serve it; one lookup refreshes it meanwhile
                self._lookup(cache, key, sql)
                return hit[1]
        return await asyncio.shield(self._lookup(cache, key, sql))

    def _lookup(
        self, cache: dict[str, tuple[float, dict[str, Any] | None]], key: str, sql: str
    ) -> Awaitable[dict[str, Any] | None]:
        """The lookup of ``key`` in flight, started if there is none."""
        slot = (sql, key)
        running = self._lookups.get(slot)
        if running is not None:
            return running
        task = asyncio.ensure_future(self._fetch(cache, key, sql))
        self._lookups[slot] = task

        def done(t: asyncio.Future[dict[str, Any] | None]) -> None:
            self._lookups.pop(slot, None)
            if not t.cancelled():
                t.exception()  # retrieved here; the waiters (if any) get it too

        task.add_done_callback(done)
        return task

    async def _fetch(
        self, cache: dict[str, tuple[float, dict[str, Any] | None]], key: str, sql: str
    ) -> dict[str, Any] | None:
        epoch, now = self._epoch, time.monotonic()
        row = await self.pool.fetchrow(sql, key)
        value = dict(row) if row is not None else None
        if epoch == self._epoch:
            if len(cache) > 10_000:  # drop what is too old to serve, else start over
                for k in [k for k, (at, _) in cache.items() if now - at >= 2 * self.cache_s]:
                    del cache[k]
                if len(cache) > 10_000:
                    cache.clear()
            cache[key] = (now, value)
        return value

    def _invalidate(self, cache: dict[str, tuple[float, dict[str, Any] | None]], key: str) -> None:
        self._epoch += 1
        cache.pop(key, None)
