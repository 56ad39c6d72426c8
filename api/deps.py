"""Route dependencies: the caller's identity (JWT or API key), their permission for the
action, and their rate limit. ``Depends(require(Permission.X, "write"))`` on every route.

Failed credential checks are counted per client address (``auth_failures``): once that
budget is spent, a credential that would need a database lookup (an API key not in the
cache) is refused with 429 before the lookup, and a failed check answers 429, not 401.
A valid token or a cached key still gets in from that address."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from api.auth.roles import Permission, allowed
from api.auth.store import Principal
from api.auth.tokens import TokenError
from api.context import AppContext
from api.errors import ApiError
from api.ratelimit import retry_after

bearer = HTTPBearer(auto_error=False, description="JWT access token from /v1/auth/login")
api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="fmm_... API key")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flashmm"'}


def ctx(request: Request) -> AppContext:
    c: AppContext = request.app.state.ctx
    return c


def client_address(conn: HTTPConnection) -> str:
    """The peer address (no proxy headers are trusted: ``proxy_headers`` is off)."""
    return conn.client.host if conn.client else "unknown"


def _too_many(what: str, wait: float) -> ApiError:
    return ApiError(429, f"too many {what} from this address", {"Retry-After": retry_after(wait)})


def _failed(c: AppContext, address: str | None, message: str) -> ApiError:
    """401 for a failed check, or 429 once the address has no failures left."""
    if address is not None:
        wait = c.limiter.take("auth_failures", address)
        if wait > 0:
            return _too_many("failed authentications", wait)
    return ApiError(401, message, _CHALLENGE)


async def authenticate(
    c: AppContext, token: str | None, key: str | None, address: str | None = None
) -> Principal:
    """The principal for a bearer token or an API key; 401 otherwise (429 once ``address``
    has spent its failure budget; ``None``: not counted)."""
    if not key and token and token.startswith("fmm_"):  # an API key sent as a bearer token
        key, token = token, None
    if key:
        if address is not None and not c.identities.key_cached(key):
            wait = c.limiter.wait("auth_failures", address)
            if wait > 0:  # no database round trip for a flood of made-up keys
                raise _too_many("failed authentications", wait)
        p = await c.identities.check_key(key)
        if p is None:
            raise _failed(c, address, "invalid or revoked API key")
        return p
    if not token:
        raise ApiError(401, "authentication required", _CHALLENGE)
    try:
        claims = c.issuer.verify(token, "access")
    except TokenError as e:
        raise _failed(c, address, str(e)) from None
    user = await c.identities.active_user(claims.subject)
    if user is None:
        raise _failed(c, address, "user disabled or unknown")
    return user


def limit(c: AppContext, cls: str, identity: str) -> None:
    wait = c.limiter.take(cls, identity)
    if wait > 0:
        raise ApiError(429, f"rate limit for {cls} requests", {"Retry-After": retry_after(wait)})


def require(permission: Permission, cls: str = "read") -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        key: str | None = Depends(api_key),
    ) -> Principal:
        c = ctx(request)
        principal = await authenticate(
            c, credentials.credentials if credentials else None, key, client_address(request)
        )
        request.state.principal = principal
        limit(c, cls, principal.actor)
        if not allowed(principal.role, permission):
            raise ApiError(403, f"role {principal.role.value} may not {permission.value}")
        return principal

    return dependency
